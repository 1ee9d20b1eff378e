"""Bad options raise ConfigError naming the value and the fix."""

from __future__ import annotations

import sys
import types

import pytest

import stoker
from tests import sources


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"workers": 0}, "workers=0"),
        ({"workers": 2.5}, "workers=2.5"),
        ({"workers": True}, "workers=True"),
        ({"workers": "many"}, "or 'auto'"),
        ({"max_queue_size": "big"}, "max_queue_size='big'"),
        ({"max_memory": 0}, "max_memory=0"),
        ({"max_memory": 1.5}, "fraction of the available memory"),
        ({"max_memory": "1G"}, "max_memory='1G'"),
        ({"trace": 3}, "trace=3"),
        ({"trace_batches": 0}, "trace_batches=0"),
        ({"max_queue_size": 0}, "max_queue_size=0"),
        ({"seed": -1}, "seed=-1"),
        ({"batch_size": 0}, "batch_size=0"),
        ({"drop_last": True}, "drop_last=True needs batch_size"),
        ({"steps_per_epoch": 0}, "steps_per_epoch=0"),
        ({"timeout": 0}, "timeout=0"),
        ({"timeout": "soon"}, "timeout='soon'"),
        (
            {"start_method": "clone", "use_multiprocessing": True},
            "start_method='clone'",
        ),
        ({"max_queue_bytes": -5, "use_multiprocessing": True}, "max_queue_bytes=-5"),
        ({"use_multiprocessing": "yes"}, "use_multiprocessing='yes'"),
        # Options that would do nothing on threads are refused, never ignored.
        ({"start_method": "fork"}, "start_method='fork' applies to process workers"),
        ({"max_queue_bytes": 10**6}, "max_queue_bytes=1000000 applies to process"),
        ({"reseed_globals": True}, "reseed_globals=True applies to process workers"),
        ({"shard": (2, 2)}, r"shard=\(2, 2\)"),
        ({"shard": (0,)}, "index, count"),
    ],
)
def test_bad_option(kwargs, match):
    with pytest.raises(stoker.ConfigError, match=match) as info:
        stoker.Loader(sources.Indexed(n=4), **kwargs)
    assert isinstance(info.value, ValueError)  # ConfigError is also a ValueError


def test_bad_sources_point_to_the_fix():
    with pytest.raises(stoker.ConfigError, match="from_generator"):
        stoker.Loader(x for x in range(3))
    with pytest.raises(stoker.ConfigError, match="__getitem__"):
        stoker.Loader(42)
    with pytest.raises(stoker.ConfigError, match="no length"):
        stoker.Loader(type("NoLen", (), {"__getitem__": lambda s, i: i})())


def test_lists_and_arrays_are_sources():
    with stoker.Loader([1, 2, 3], workers=2) as loader:
        assert list(loader) == [1, 2, 3]


def test_empty_source_gives_empty_epochs():
    with stoker.Loader([], workers=2) as loader:
        assert len(loader) == 0
        assert list(loader) == [] and list(loader) == []


def test_keras_pydataset_without_len_uses_num_batches():
    class PyDatasetLike:
        num_batches = 3

        def __getitem__(self, i):
            return i

    with stoker.Loader(PyDatasetLike(), workers=2) as loader:
        assert list(loader) == [0, 1, 2]


def test_options_are_keyword_only():
    with pytest.raises(TypeError, match="positional"):
        stoker.Loader(sources.Indexed(n=4), *[8])
    with pytest.raises(TypeError, match="positional"):
        stoker.Loader.from_generator(lambda w, n: iter(()), *[4])  # type: ignore[call-arg]


def test_fork_is_the_default_start_method_on_linux(monkeypatch):
    from stoker._options import default_start_method

    monkeypatch.delenv("STOKER_START_METHOD", raising=False)
    assert default_start_method() == "fork"
    monkeypatch.setenv("STOKER_START_METHOD", "spawn")
    assert default_start_method() == "spawn"
    monkeypatch.delenv("STOKER_START_METHOD")
    bridge = types.SimpleNamespace(_at_fork_handler_installed=False)
    monkeypatch.setitem(sys.modules, "jax._src.xla_bridge", bridge)
    assert default_start_method() == "fork"  # JAX imported (Keras does), not started
    bridge._at_fork_handler_installed = True  # JAX started: it warns at every fork
    assert default_start_method() == "forkserver"
