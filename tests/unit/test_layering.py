"""Tests and benches share code through two named places only: tests/helpers/ (and conftest.py
files) for tests, bench/lib.py for benches. Neither imports the other's modules, and no test
module imports another test module."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def imports_in(source: str) -> list[tuple[int, str]]:
    """(line, module) of every absolute import in ``source``, function-level ones included."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found += [(node.lineno, node.module)]
    return sorted(found)


def imports_of(folder: str) -> list[tuple[str, int, str]]:
    return [(str(path.relative_to(REPO)), line, module)
            for path in sorted((REPO / folder).rglob("*.py"))
            for line, module in imports_in(path.read_text(encoding="utf-8"))]


def under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_no_test_module_imports_bench() -> None:
    assert [i for i in imports_of("tests") if under(i[2], "bench")] == []


def test_no_bench_module_imports_tests() -> None:
    assert [i for i in imports_of("bench") if under(i[2], "tests")] == []


def test_test_modules_share_code_only_through_helpers_and_conftest() -> None:
    def shared(module: str) -> bool:
        return under(module, "tests.helpers") or module.rsplit(".", 1)[-1] == "conftest"

    assert [i for i in imports_of("tests") if under(i[2], "tests") and not shared(i[2])] == []


def test_the_checks_see_imports_inside_functions() -> None:
    source = "import os\n\n\ndef f():\n    from bench.lib import x\n    import tests.helpers\n"
    assert imports_in(source) == [(1, "os"), (5, "bench.lib"), (6, "tests.helpers")]
