"""What the tests share: fixtures, fakes and builders used by more than one test module.

Test modules import shared code from here (or get fixtures from a conftest.py), never from
another test module, and never from bench/ (tests/unit/test_layering.py checks both).
"""
