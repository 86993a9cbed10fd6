"""Tests of the benches' own code (their schedules, tuning choices and bookkeeping); pytest
collects them with the rest (pyproject's testpaths)."""
