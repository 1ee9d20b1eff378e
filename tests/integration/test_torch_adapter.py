"""TorchLoader: tensors with the batch structure kept, the background stage, state."""

from __future__ import annotations

import collections
import gc
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import stoker  # noqa: E402
from stoker.adapters.torch import TorchLoader, to_tensors  # noqa: E402
from tests import sources, sources_proc  # noqa: E402

pytestmark = pytest.mark.timeout(60)
Pair = collections.namedtuple("Pair", "image label")
# The stage on this CPU machine: device="cpu" runs the same thread, queue and copies.
PATHS = [
    pytest.param({}, id="direct"),
    pytest.param({"device": "cpu", "pin_memory": True}, id="stage"),
]


def prefetch_threads() -> list[threading.Thread]:
    # Named "<loader id>-...-prefetch": tests/conftest.py's autouse check (threads
    # named "loader-*") already fails any test that leaves one running.
    return [t for t in threading.enumerate() if t.name.endswith("-prefetch")]


class Nested:
    """Batch ``i``: a dict holding a named tuple, a list, text and a numpy scalar."""

    def __len__(self) -> int:
        return 6

    def __getitem__(self, i: int):
        return {
            "pair": Pair(np.full((2, 3), i, np.uint8), np.int64(i)),
            "extra": [np.arange(3, dtype=np.float32) * i, f"batch {i}"],
            "names": np.array(["a", "b"]),
            "index": i,
        }


@pytest.mark.parametrize("path", PATHS)
def test_structure_is_kept_and_arrays_become_tensors(path):
    with TorchLoader(stoker.Loader(Nested(), workers=3), **path) as tl:
        assert len(tl) == 6 and tl.dataset is tl.loader.source and tl.batch_size is None
        batches = list(tl)
    assert [b["index"] for b in batches] == list(range(6))
    b = batches[4]
    assert isinstance(b, dict) and isinstance(b["pair"], Pair)
    assert b["pair"].image.dtype == torch.uint8 and b["pair"].image.shape == (2, 3)
    assert torch.equal(b["pair"].image, torch.full((2, 3), 4, dtype=torch.uint8))
    assert b["pair"].label.ndim == 0 and int(b["pair"].label) == 4
    assert isinstance(b["extra"], list) and b["extra"][1] == "batch 4"
    assert torch.equal(b["extra"][0], torch.tensor([0.0, 4.0, 8.0]))
    assert isinstance(b["names"], np.ndarray)  # no tensor type for strings


def test_arrays_are_shared_not_copied_unless_sharing_would_be_wrong():
    arr = np.arange(12, dtype=np.float32).reshape(3, 4)
    shared = to_tensors((arr,))[0]
    assert shared.data_ptr() == arr.ctypes.data  # torch.from_numpy: no copy
    frozen = np.arange(4)
    frozen.flags.writeable = False
    reversed_ = np.arange(4)[::-1]
    # no "not writable" warning (an error here) and no negative-stride error
    a, b = to_tensors([frozen, reversed_])
    assert a.data_ptr() != frozen.ctypes.data and a.tolist() == [0, 1, 2, 3]
    assert b.tolist() == [3, 2, 1, 0]


def test_kept_tensors_from_process_workers_stay_valid():
    """The shared-memory slot rule: a kept tensor keeps its slot and its content."""
    n = 40  # far more batches than the ring has slots (max_queue_size + workers + 1)
    loader = stoker.Loader(
        sources_proc.Arrays(n=n, shape=(32, 1024)),
        workers=2,
        use_multiprocessing=True,
        max_queue_size=2,
        start_method="fork",
    )
    with TorchLoader(loader) as tl:
        kept = []
        for epoch in range(2):
            for x, y in tl:
                kept.append((epoch, x, y))
            gc.collect()
            for _, x, y in kept:  # every earlier batch still holds its own content
                i = int(y[0])
                assert torch.equal(
                    x, torch.full((32, 1024), i % 251, dtype=torch.uint8)
                )
    assert [int(y[0]) for _, _, y in kept] == list(range(n)) * 2


@pytest.mark.parametrize("path", PATHS)
def test_worker_errors_keep_their_type_at_their_position(path):
    loader = stoker.Loader(sources.FailsAt(bad=(5,), n=12), workers=3)
    with TorchLoader(loader, **path) as tl:
        seen = []
        with pytest.raises(KeyError, match="missing record 5"):
            for (x,) in ((b,) for b in tl):
                seen.append(int(x[0]))
        assert seen == [0, 1, 2, 3, 4]
        assert not prefetch_threads()


def test_a_failing_transfer_is_raised_in_the_loop():
    tl = TorchLoader(stoker.Loader(sources.Indexed(n=8), workers=2), device="cpu")
    with tl:
        real = tl._staged._transfer

        def broken(batch):
            raise MemoryError("pinned pool exhausted")

        tl._staged._transfer = broken
        with pytest.raises(MemoryError, match="pinned pool"):
            list(tl)
        tl._staged._transfer = real
        assert len(list(tl)) == 8  # the next pass is whole


@pytest.mark.parametrize("how", ["break", "raise", "drop"])
def test_leaving_a_pass_stops_the_stage_and_the_next_pass_is_whole(how):
    tl = TorchLoader(stoker.Loader(sources.Indexed(n=10), workers=2), device="cpu")
    with tl:
        if how == "break":
            for i, _ in enumerate(tl):
                if i == 2:
                    break
        elif how == "raise":
            with pytest.raises(ArithmeticError):
                for i, _ in enumerate(tl):
                    if i == 2:
                        raise ArithmeticError("loss is nan")
        else:
            it = iter(tl)
            next(it)
            del it
        gc.collect()
        assert not prefetch_threads()
        assert [int(x[0]) for x, _ in tl] == list(range(10))


def test_close_with_a_slow_batch_in_flight_does_not_hang():
    loader = stoker.Loader(sources.Slow(sleep=0.3, n=20), workers=2)
    tl = TorchLoader(loader, device="cpu", prefetch=4)
    it = iter(tl)
    next(it)
    start = time.monotonic()
    tl.close()
    tl.close()  # idempotent
    assert time.monotonic() - start < 5
    with pytest.raises(stoker.LoaderClosed):
        iter(tl)


def test_the_stage_keeps_at_most_prefetch_batches_ahead():
    from stoker.adapters._prefetch import Prefetcher

    pulled = []

    def numbers():
        for i in range(100):
            pulled.append(i)
            yield i

    stage = Prefetcher(numbers(), lambda b: (b, None), 3, name="test-prefetch")
    assert next(stage) == 0
    time.sleep(0.3)  # the stage runs ahead while the "step" takes its time
    assert len(pulled) == 1 + 3
    assert [next(stage) for _ in range(5)] == [1, 2, 3, 4, 5]
    stage.close()


@pytest.mark.parametrize("ordered", [True, False])
def test_state_inside_the_loop_covers_the_batches_taken_not_those_prefetched(ordered):
    def make():
        return stoker.Loader(
            sources.Jittery(n=12), workers=3, shuffle=True, seed=7, ordered=ordered
        )

    with TorchLoader(make(), device="cpu", prefetch=4) as tl:
        taken = []
        for x, _ in tl:
            taken.append(int(x[0]))
            if len(taken) == 5:
                time.sleep(0.2)  # let the stage run ahead of the loop
                state = tl.state_dict()
                break
    with TorchLoader(make(), device="cpu") as resumed:
        resumed.load_state_dict(state)
        rest = [int(x[0]) for x, _ in resumed]
    assert sorted(taken + rest) == list(range(12))


def counting_stream(worker: int, workers: int):
    yield from (np.full(3, i) for i in range(1000))


def test_a_generator_loaders_state_is_the_snapshot_at_the_batch_taken():
    loader = stoker.Loader.from_generator(counting_stream, steps_per_epoch=8, workers=1)
    with TorchLoader(loader, device="cpu", prefetch=4) as tl:
        for i, _ in enumerate(tl):
            if i == 2:
                time.sleep(0.2)  # the stage runs ahead meanwhile
                state = tl.state_dict()
        assert tl.state_dict()["epoch"] == 1  # a finished pass: the loader's own
    assert state["kind"] == "generator"
    assert (state["epoch"], state["position"]) == (0, 3)
    assert state["stream"]["taken"] == [3]  # three items of the one stream


def test_set_epoch_follows_the_distributed_sampler_habit():
    def order(tl):
        return [int(x[0]) for x, _ in tl]

    def make():
        return TorchLoader(
            stoker.Loader(sources.Indexed(n=8), workers=2, shuffle=True, seed=3)
        )

    with make() as reference:
        epochs = [order(reference) for _ in range(3)]
    with make() as tl:
        tl.set_epoch(0)  # the epoch it is at: nothing changes
        assert order(tl) == epochs[0]
        tl.set_epoch(2)
        assert order(tl) == epochs[2] and tl.loader.epoch == 3
        it = iter(TorchLoader(tl.loader, device="cpu"))
        next(it)
        with pytest.raises(stoker.ConfigError):
            tl.set_epoch(-1)
        del it


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"prefetch": 0}, "prefetch=0"),
        ({"device": "cuda"}, "no CUDA device"),
        ({"device": "warp-drive"}, "not a torch device"),
    ],
)
def test_bad_options_say_the_fix(kwargs, match):
    if "cuda" in str(kwargs) and torch.cuda.is_available():
        pytest.skip("a CUDA device exists here")
    with stoker.Loader(sources.Indexed(n=2)) as loader:
        with pytest.raises(stoker.ConfigError, match=match):
            TorchLoader(loader, **kwargs)
    with pytest.raises(stoker.ConfigError, match="wrap"):
        TorchLoader([np.zeros(2)])  # type: ignore[arg-type]


def test_pinning_is_a_no_op_without_an_accelerator():
    with TorchLoader(stoker.Loader(sources.Indexed(n=3)), pin_memory=True) as tl:
        assert tl.pins == torch.cuda.is_available()
        assert len(list(tl)) == 3
        assert "pin_memory=True" in repr(tl)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_batches_are_copied_on_a_side_stream_and_match():
    loader = stoker.Loader(sources_proc.Arrays(n=12, shape=(64, 256)), workers=2)
    with TorchLoader(loader, device="cuda", pin_memory=True, prefetch=3) as tl:
        assert tl.pins
        for i, (x, y) in enumerate(tl):
            assert x.is_cuda and y.is_cuda
            assert int(y[0]) == i
            assert torch.equal(x.cpu(), torch.full((64, 256), i, dtype=torch.uint8))


def test_fifty_staged_loaders_leave_no_thread_or_fd():
    gc.collect()
    threads, fds = threading.active_count(), len(os.listdir("/proc/self/fd"))
    for k in range(50):
        loader = stoker.Loader(sources.Indexed(n=6), workers=2, seed=k)
        with TorchLoader(loader, device="cpu", prefetch=2) as tl:
            for i, _ in enumerate(tl):
                if k % 2 and i == 2:
                    break
    gc.collect()
    deadline = time.monotonic() + 5
    while threading.active_count() > threads and time.monotonic() < deadline:
        time.sleep(0.02)
    assert threading.active_count() == threads
    assert len(os.listdir("/proc/self/fd")) <= fds


def test_missing_torch_names_the_extra():
    code = "import sys; sys.modules['torch'] = None\nimport stoker.adapters.torch"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "pip install 'stoker[torch]'" in result.stderr


def test_exports_are_sorted_and_defined_here():
    import stoker.adapters.torch as module

    assert module.__all__ == sorted(module.__all__)
    own = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and getattr(value, "__module__", None) == module.__name__
    }
    assert own == {"TorchLoader"} and set(module.__all__) == {
        "TorchLoader",
        "to_tensors",
    }
