"""The public surface: a sorted, complete __all__; `import stoker` needs numpy only."""

from __future__ import annotations

import subprocess
import sys

import stoker


def test_all_is_sorted_and_matches_public_names():
    assert stoker.__all__ == sorted(stoker.__all__)
    # Submodules are not API unless exported on purpose (`stoker.track` is callable).
    public = {
        name
        for name in dir(stoker)
        if not name.startswith("_")
        and (not isinstance(getattr(stoker, name), type(sys)) or name in stoker.__all__)
    }
    assert public == set(stoker.__all__)


def test_import_needs_only_numpy():
    code = (
        "import sys, stoker; "
        "heavy = {'click', 'rich', 'psutil', 'keras', 'torch', 'jax', 'matplotlib', "
        "'sqlalchemy', 'PIL', 'sklearn', 'ray'} & set(sys.modules); "
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
