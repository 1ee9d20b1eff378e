"""Imports only point down the layers of ARCHITECTURE.md (checked on the source)."""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2] / "stoker"

# Every module of stoker falls under exactly one rule: the longest prefix that names
# it. A rule lists the stoker modules it may import (as prefixes); PUBLIC is the
# public API (``import stoker`` / ``from stoker import X``), ANY is anything.
# Third-party imports are checked only where a layer must stay framework-free.
PUBLIC = "stoker"
ANY = "*"
BASE = {
    "stoker._errors",
    "stoker._types",
    "stoker._options",
    "stoker._ray_options",
    "stoker._tree",
}
ALLOWED = {
    # layer 0: stdlib + numpy
    "stoker._errors": set(),
    "stoker._types": {"stoker._errors"},
    "stoker._options": {"stoker._errors", "stoker._ray_options"},
    "stoker._tree": set(),
    "stoker._ray_options": {"stoker._errors"},
    "stoker._state": {"stoker._errors"},
    "stoker._sharding": {"stoker._errors"},
    # layer 1: the engine
    "stoker._engine": {"stoker._engine", *BASE},
    # layer 2: the Loader and the tracker
    "stoker._loader": {"stoker._engine", "stoker._state", *BASE},
    "stoker.track": {"stoker.track", "stoker._errors", "stoker._types"},
    "stoker.__main__": {"stoker.cli"},
    # layer 3: on the public API only
    "stoker.testing": {PUBLIC, "stoker._loader", *BASE},
    "stoker.bench": {PUBLIC, "stoker.bench", "stoker.track", "stoker._tree"},
    "stoker.adapters": {PUBLIC, "stoker.adapters", "stoker.track", "stoker._tree"},
    # layer 4: front ends of the library
    "stoker.demo": {
        PUBLIC,
        "stoker.demo",
        "stoker.bench",
        "stoker.adapters",
        "stoker.track",
    },
    # layer 4: the dashboard reads through stoker.track's public names only
    "stoker.ui": {"stoker.ui", "stoker.track", "stoker._errors"},
    "stoker.tune": {PUBLIC, "stoker.tune", "stoker.bench"},
    # layer 4: sweeps launch runs through the tracker; `--ray` finds and starts Ray
    # exactly as the Loader's Ray backend does (one place says how), issue 17
    "stoker.sweep": {
        PUBLIC,
        "stoker.sweep",
        "stoker.track",
        "stoker.bench",
        "stoker._engine._ray_connect",
    },
    # layer 5: the CLI may import anything, lazily inside each command
    "stoker.cli": {ANY},
}
# The package's own __init__ re-exports from anywhere below it.
ALLOWED["stoker"] = {ANY}
FRAMEWORKS = {
    "keras",
    "torch",
    "jax",
    "tensorflow",
    "click",
    "rich",
    "sqlalchemy",
    "ray",
}
NUMPY_ONLY = (*BASE, "stoker._state", "stoker._sharding", "stoker._engine")
# The Ray backend's modules import Ray, lazily: only a loader with backend="ray"
# imports them (feeds._BACKENDS), so `import stoker` never does.
RAY_MODULES = (
    "stoker._engine.ray",
    "stoker._engine._ray_actor",
    "stoker._engine._ray_connect",
    "stoker._engine._ray_run",
)


def rule_for(name: str) -> str:
    """The longest prefix in ALLOWED that names module ``name``."""
    found = [p for p in ALLOWED if name == p or name.startswith(p + ".")]
    assert found, f"{name} is under no layering rule: add it to ALLOWED"
    return max(found, key=len)


def module_name(path: pathlib.Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from stoker import X` is X itself (public name or module), not `stoker`
            if node.module != "stoker":
                found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return found


FILES = sorted(ROOT.rglob("*.py"))


def allowed_import(m: str, allowed: set[str]) -> bool:
    """Whether a module under a rule allowing ``allowed`` may import ``m``."""
    if ANY in allowed:
        return True  # the package __init__ and the CLI
    if any(m == a or m.startswith(a + ".") for a in allowed if a not in (PUBLIC, ANY)):
        return True
    top = m.split(".")[1] if m.count(".") >= 1 else ""
    is_package = f"stoker.{top}" in ALLOWED
    public_name = m == "stoker" or (m.count(".") == 1 and not top.startswith("_"))
    return PUBLIC in allowed and public_name and not is_package


@pytest.mark.parametrize("path", FILES, ids=lambda p: module_name(p))
def test_imports_point_down(path):
    name = module_name(path)
    rule = rule_for(name)
    mods = imports(path)
    stoker_mods = {m for m in mods if m == "stoker" or m.startswith("stoker.")}
    bad = {m for m in stoker_mods if not allowed_import(m, ALLOWED[rule])}
    assert not bad, f"{name} imports {sorted(bad)} (rule {rule})"
    if name.startswith(NUMPY_ONLY):
        heavy = {m.split(".")[0] for m in mods} & FRAMEWORKS
        if name in RAY_MODULES:
            heavy -= {"ray"}
        assert not heavy, f"{name} imports {sorted(heavy)}"
    if name.startswith("stoker.ui"):
        private = {m for m in mods if m.startswith("stoker.track._")}
        assert not private, f"{name} reaches into the tracker: {sorted(private)}"
    if name.startswith("stoker.ui"):
        private = {m for m in mods if m.startswith("stoker.track._")}
        assert not private, f"{name} reaches into the tracker: {sorted(private)}"
    if name.startswith(("stoker.bench", "stoker.adapters", "stoker.testing")):
        private = {m for m in mods if m.startswith("stoker._engine")}
        assert not private, f"{name} reaches into the engine: {sorted(private)}"
