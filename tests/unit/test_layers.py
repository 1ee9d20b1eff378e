"""Imports only point down the layers of ARCHITECTURE.md (checked on the source)."""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2] / "stoker"

# package prefix -> stoker modules it may import (prefixes); third-party imports are
# checked only where a layer must stay framework-free.
ALLOWED = {
    "stoker._errors": {"stoker._errors"},
    "stoker._types": {"stoker._errors"},
    "stoker._options": {"stoker._errors"},
    "stoker._engine": {
        "stoker._engine",
        "stoker._errors",
        "stoker._types",
        "stoker._options",
    },
    "stoker.track": {"stoker.track", "stoker._errors", "stoker._types"},
    # Layer 4: the dashboard reads through stoker.track's public names only.
    "stoker.ui": {"stoker.ui", "stoker.track", "stoker._errors"},
}
FRAMEWORKS = {"keras", "torch", "jax", "tensorflow", "click", "rich", "sqlalchemy"}
NUMPY_ONLY = ("stoker._errors", "stoker._types", "stoker._options", "stoker._engine")


def module_name(path: pathlib.Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return found


FILES = sorted(ROOT.rglob("*.py"))


@pytest.mark.parametrize("path", FILES, ids=lambda p: module_name(p))
def test_imports_point_down(path):
    name = module_name(path)
    mods = imports(path)
    for prefix, allowed in ALLOWED.items():
        if name == prefix or name.startswith(prefix + "."):
            bad = {
                m
                for m in mods
                if m.startswith("stoker")
                and m != "stoker"
                and not any(m == a or m.startswith(a + ".") for a in allowed)
            }
            bad |= {m for m in mods if m == "stoker"}
            assert not bad, f"{name} imports {sorted(bad)} (layer {prefix})"
    if name.startswith(NUMPY_ONLY):
        heavy = {m.split(".")[0] for m in mods} & FRAMEWORKS
        assert not heavy, f"{name} imports {sorted(heavy)}"
    if name.startswith("stoker.ui"):
        private = {m for m in mods if m.startswith("stoker.track._")}
        assert not private, f"{name} reaches into the tracker: {sorted(private)}"
    if name.startswith(("stoker.bench", "stoker.adapters", "stoker.testing")):
        private = {m for m in mods if m.startswith("stoker._engine")}
        assert not private, f"{name} reaches into the engine: {sorted(private)}"
