"""device_prefetch: batches as jax.Arrays placed ahead, optionally sharded."""

from __future__ import annotations

import gc
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

jax = pytest.importorskip("jax")

import stoker  # noqa: E402
from stoker.adapters.jax import device_prefetch, local_batch_sharding  # noqa: E402
from tests import sources, sources_proc  # noqa: E402

pytestmark = pytest.mark.timeout(60)
TWO_DEVICES = pytest.mark.skipif(
    len(jax.local_devices()) < 2,
    reason="needs XLA_FLAGS=--xla_force_host_platform_device_count=2 before jax loads",
)


def prefetch_threads() -> list[threading.Thread]:
    # Named "<loader id>-...-prefetch": tests/conftest.py's autouse check (threads
    # named "loader-*") already fails any test that leaves one running.
    return [t for t in threading.enumerate() if t.name.endswith("-prefetch")]


class Records:
    """Batch ``i``: a dict with an image array, labels, a name and a Python int."""

    def __init__(self, n: int = 6, rows: int = 4) -> None:
        self.n, self.rows = n, rows

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        return {
            "image": np.full((self.rows, 3), i, np.float32),
            "label": np.arange(self.rows, dtype=np.int32) + i,
            "name": f"batch {i}",
            "index": i,
        }


def test_batches_arrive_as_device_arrays_with_structure_kept():
    with device_prefetch(stoker.Loader(Records(), workers=3), size=2) as batches:
        assert len(batches) == 6
        got = list(batches)
    assert [b["index"] for b in got] == list(range(6))
    b = got[3]
    assert isinstance(b["image"], jax.Array) and b["name"] == "batch 3"
    assert b["image"].devices() == {jax.devices()[0]}
    np.testing.assert_array_equal(np.asarray(b["label"]), np.arange(4) + 3)


@TWO_DEVICES
def test_local_sharding_splits_the_batch_over_the_devices_for_a_jit_step():
    @jax.jit
    def step(image, label):
        return (image.sum(axis=1) + label).sum()

    loader = stoker.Loader(Records(n=4, rows=8), workers=2)
    with device_prefetch(loader, sharding="local") as batches:
        for i, b in enumerate(batches):
            assert b["image"].sharding == local_batch_sharding()
            shards = b["image"].addressable_shards
            assert sorted(s.device.id for s in shards) == [0, 1]
            assert all(s.data.shape == (4, 3) for s in shards)
            assert (
                float(step(b["image"], b["label"])) == 8 * 3 * i + sum(range(8)) + 8 * i
            )


@TWO_DEVICES
def test_a_batch_that_cannot_be_split_says_the_fix():
    loader = stoker.Loader(Records(n=3, rows=3), workers=1)
    with device_prefetch(loader, sharding="local") as batches:
        with pytest.raises(stoker.ConfigError, match="multiple of 2"):
            list(batches)


def test_a_device_or_sharding_object_is_used_as_given():
    device = jax.devices()[-1]
    with device_prefetch(stoker.Loader(Records(n=2)), sharding=device) as batches:
        assert all(b["image"].devices() == {device} for b in batches)


def test_kept_device_arrays_from_process_workers_stay_valid():
    loader = stoker.Loader(
        sources_proc.Arrays(n=30, shape=(16, 512)),
        workers=2,
        use_multiprocessing=True,
        max_queue_size=2,
        # JAX warns at every os.fork (its threads); forkserver forks before them.
        start_method="forkserver",
    )
    with device_prefetch(loader, size=3) as batches:
        kept = list(batches)
    gc.collect()
    for i, (x, y) in enumerate(kept):
        assert int(y[0]) == i
        np.testing.assert_array_equal(np.asarray(x), np.full((16, 512), i, np.uint8))


def test_errors_keep_their_type_and_leaving_a_pass_stops_the_stage():
    loader = stoker.Loader(sources.FailsAt(bad=(4,), n=10), workers=2)
    with device_prefetch(loader) as batches:
        seen = []
        with pytest.raises(KeyError, match="missing record 4"):
            for b in batches:
                seen.append(int(b[0]))
        assert seen == [0, 1, 2, 3]
        for i, _ in enumerate(batches):
            if i == 1:
                break
        gc.collect()
        assert not prefetch_threads()


def test_state_covers_the_batches_taken_not_those_on_the_device():
    def make():
        return stoker.Loader(sources.Indexed(n=10), workers=2, shuffle=True, seed=4)

    with device_prefetch(make(), size=4) as batches:
        taken = []
        for x, _ in batches:
            taken.append(int(x[0]))
            if len(taken) == 3:
                time.sleep(0.2)  # the stage fills up meanwhile
                state = batches.state_dict()
                break
    with device_prefetch(make()) as resumed:
        resumed.load_state_dict(state)
        rest = [int(x[0]) for x, _ in resumed]
    assert sorted(taken + rest) == list(range(10))


def test_close_with_a_slow_batch_in_flight_does_not_hang():
    batches = device_prefetch(stoker.Loader(sources.Slow(sleep=0.3, n=10), workers=2))
    it = iter(batches)
    next(it)
    start = time.monotonic()
    batches.close()
    batches.close()
    assert time.monotonic() - start < 5
    with pytest.raises(stoker.LoaderClosed):
        iter(batches)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"size": 0}, "size=0"),
        ({"sharding": "global"}, "only name is 'local'"),
        ({"sharding": 3}, "sharding of type int"),
    ],
)
def test_bad_arguments_say_the_fix(kwargs, match):
    with stoker.Loader(Records(n=2)) as loader:
        with pytest.raises(stoker.ConfigError, match=match):
            device_prefetch(loader, **kwargs)
    with pytest.raises(stoker.ConfigError, match="wrap the source"):
        device_prefetch(Records())  # type: ignore[arg-type]


def test_missing_jax_names_the_extra():
    code = "import sys; sys.modules['jax'] = None\nimport stoker.adapters.jax"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "pip install 'stoker[jax]'" in result.stderr


def test_exports_are_sorted_and_defined_here():
    import stoker.adapters.jax as module

    assert module.__all__ == sorted(module.__all__)
    own = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and getattr(value, "__module__", None) == module.__name__
    }
    assert own == set(module.__all__)
