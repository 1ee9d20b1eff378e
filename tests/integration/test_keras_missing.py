"""Without a usable Keras, importing the adapter says what to install or set."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.keras, pytest.mark.timeout(60)]


def _import_adapter(prelude: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    code = f"{prelude}\nimport stoker.adapters.keras"
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env
    )


def test_missing_keras_names_the_extra():
    result = _import_adapter(
        "import sys; sys.modules['keras'] = None", dict(os.environ)
    )
    assert result.returncode != 0
    assert "pip install 'stoker[keras]'" in result.stderr


def test_missing_backend_names_keras_backend():
    if importlib.util.find_spec("keras") is None:
        pytest.skip("keras is not installed")
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    # Keras falls back to TensorFlow; block it, as on a machine without it.
    result = _import_adapter("import sys; sys.modules['tensorflow'] = None", env)
    assert result.returncode != 0
    assert "KERAS_BACKEND=torch" in result.stderr, result.stderr[-2000:]
