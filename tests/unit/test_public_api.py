"""The public surface: a sorted, complete __all__; `import stoker` needs numpy only."""

from __future__ import annotations
import __future__

import importlib
import subprocess
import sys
import types

import pytest

import stoker


def public_names(module: types.ModuleType) -> set[str]:
    """The names a user sees: no underscore; classes and functions defined in this
    package (not helpers it imported, like ``typing.Any``); constants; and modules
    only when exported on purpose (``stoker.track`` is callable)."""
    all_ = set(getattr(module, "__all__", ()))
    # A package owns what its modules define; a plain module shares its package's.
    own = module.__name__
    if not hasattr(module, "__path__"):
        own = own.rpartition(".")[0]

    def shown(name: str) -> bool:
        value = getattr(module, name)
        if isinstance(value, types.ModuleType):
            return name in all_
        if isinstance(value, __future__._Feature):  # `from __future__ import ...`
            return False
        defined_in = getattr(value, "__module__", None)
        if callable(value) or defined_in == "typing":
            return bool(defined_in) and defined_in.startswith(own)
        return True  # a constant

    return {name for name in dir(module) if not name.startswith("_") and shown(name)}


# Every public package, and the tests of those that need a framework elsewhere
# (the adapters: tests/integration/test_{torch,jax}_adapter.py).
PACKAGES = [
    "stoker",
    "stoker.track",
    "stoker.track.api",
    "stoker.bench",
    "stoker.sweep",
    "stoker.testing",
    "stoker.demo",
    "stoker.adapters.keras",
]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_is_sorted_and_matches_public_names(name):
    module = importlib.import_module(name)
    assert module.__all__ == sorted(module.__all__), f"{name}.__all__ is not sorted"
    assert public_names(module) == set(module.__all__), name


def test_the_public_surfaces_stay_small():
    track = importlib.import_module("stoker.track")
    bench = importlib.import_module("stoker.bench")
    assert len(track.__all__) <= 16 and len(bench.__all__) <= 17
    assert "jsonable" not in track.__all__  # helpers live in stoker.track.api


def test_import_needs_only_numpy():
    code = (
        "import sys, stoker; "
        "heavy = {'click', 'rich', 'psutil', 'keras', 'torch', 'jax', 'matplotlib', "
        "'sqlalchemy', 'PIL', 'sklearn', 'psycopg', 'ray'} & set(sys.modules); "
        "print(sorted(heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert out.stdout.strip() == "[]"


def test_errors_hierarchy():
    assert issubclass(stoker.ConfigError, ValueError)
    assert issubclass(stoker.LoaderTimeout, TimeoutError)
    assert issubclass(stoker.LoaderClosed, RuntimeError)
    assert issubclass(stoker.WorkerCrashed, stoker.WorkerError)
    assert issubclass(stoker.SerializationError, stoker.WorkerError)
    for cls in (
        stoker.ConfigError,
        stoker.WorkerError,
        stoker.LoaderTimeout,
        stoker.LoaderClosed,
        stoker.StoreError,
    ):
        assert issubclass(cls, stoker.StokerError)


def test_one_version_and_a_licence():
    import importlib.metadata
    from pathlib import Path

    assert importlib.metadata.version("stoker") == stoker.__version__
    licence = Path(__file__).resolve().parents[2] / "LICENSE"
    assert "Apache License" in licence.read_text()[:200]
