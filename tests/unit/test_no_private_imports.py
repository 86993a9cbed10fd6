"""No module of the project reaches into another module's ``_private`` names.

Every module under api/, worker/, spamq/ and bench/ is parsed (nothing is imported). A finding
is ``from x import _y`` where ``x`` is a project module, or ``m._y`` where ``m`` names a
project module imported here (``import spamq.jobs.store``, ``from spamq.jobs import schema``).
Dunder names (``__version__``) are public.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("api", "worker", "spamq", "bench")


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(dotted: str) -> bool:
    base = ROOT.joinpath(*dotted.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _absolute(node: ast.ImportFrom, here: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = here.split(".") if is_package else here.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _dotted(node: ast.expr) -> str | None:
    """``a.b.c`` as text, or None if it is not a plain name chain."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return ".".join([node.id, *reversed(parts)])


def findings_in(path: Path) -> list[str]:
    shown = str(path.relative_to(ROOT))
    return findings(path.read_text(encoding="utf-8"), _module_name(path), shown,
                    is_package=path.name == "__init__.py")


def findings(source: str, here: str, shown: str, *, is_package: bool = False) -> list[str]:
    """What the module ``here`` (its text ``source``, named ``shown`` in the findings) takes
    of other project modules' private names."""
    tree = ast.parse(source, filename=shown)
    modules: dict[str, str] = {}  # a local name -> the project module it is bound to
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in PACKAGES:
                    local = alias.asname or alias.name.split(".")[0]
                    modules[local] = alias.name if alias.asname else local
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(node, here, is_package)
            if source.split(".")[0] not in PACKAGES:
                continue
            for alias in node.names:
                if _private(alias.name) and source != here:
                    found.append(f"{shown}:{node.lineno}: from {source} import {alias.name}")
                elif _is_module(f"{source}.{alias.name}"):
                    modules[alias.asname or alias.name] = f"{source}.{alias.name}"
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or not _private(node.attr):
            continue
        chain = _dotted(node.value)
        if chain is None or chain.split(".")[0] not in modules:
            continue
        head, *rest = chain.split(".")
        target = ".".join([modules[head], *rest])
        if _is_module(target) and target != here:
            found.append(f"{shown}:{node.lineno}: {chain}.{node.attr}")
    return found


def test_no_module_uses_another_modules_private_names():
    found = [f for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))
             for f in findings_in(path)]
    assert found == [], "\n".join(found)


def test_the_check_finds_both_kinds():
    """The checker itself: private names imported from, or read off, project modules; not a
    module's own, not an object's attribute, not a public or dunder name."""
    source = ("from spamq.jobs.part import _hidden\nfrom spamq.jobs import schema\n"
              "from . import part\nimport spamq.jobs.part\nimport spamq.jobs.records as rec\n"
              "from spamq.jobs.probe import _mine\n"
              "a = schema._lua_set\nb = spamq.jobs.part._z\nc = rec._q\nd = part._p\n"
              "e = schema.ENDED\nf = other._private\ng = schema.__doc__\n")
    found = findings(source, "spamq.jobs.probe", "probe.py")
    assert [f.split(": ", 1)[1] for f in found] == [
        "from spamq.jobs.part import _hidden", "schema._lua_set", "spamq.jobs.part._z",
        "rec._q", "part._p"]
