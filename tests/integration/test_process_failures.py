"""Process workers that die, are interrupted, orphaned, or cannot be pickled."""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

import stoker
from tests import sources, sources_proc

pytestmark = pytest.mark.timeout(60)
REPO = Path(__file__).resolve().parents[2]
# Workers must be gone this soon after close(), Ctrl-C or the parent's death.
STOP_S = 1.0


def loader(source, method="fork", **options):
    options.setdefault("workers", 2)
    options.setdefault("timeout", 30)
    return stoker.Loader(
        source, use_multiprocessing=True, start_method=method, **options
    )


def alive(pids) -> list[int]:
    out = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.append(pid)
        except psutil.NoSuchProcess:
            pass
    return out


def wait_gone(pids, timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while alive(pids) and time.monotonic() < deadline:
        time.sleep(0.02)
    return alive(pids)


@pytest.mark.parametrize(
    ("method", "how", "exitcode", "words"),
    [
        ("fork", "exit", 3, "os._exit"),
        ("fork", "SIGKILL", -9, "out-of-memory"),
        ("forkserver", "SIGKILL", -9, "out-of-memory"),
        ("spawn", "SIGBUS", -7, "shared memory is full"),
    ],
)
def test_a_dead_worker_raises_worker_crashed_within_a_second(
    tmp_path, method, how, exitcode, words
):
    src = sources_proc.DiesOnce(3, how, str(tmp_path / "died"), n=12)
    with loader(src, method) as ld:
        got = []
        with pytest.raises(stoker.WorkerCrashed) as info:
            for b in ld:
                got.append(int(b[1][0]))
                t_last = time.monotonic()
        waited = time.monotonic() - t_last
        err = info.value
        assert got == [0, 1, 2] and waited < STOP_S
        assert err.index == 3 and err.exitcode == exitcode and err.worker in (0, 1)
        assert words in str(err) and "batch 3" in str(err)
        # The next epoch runs on fresh workers.
        assert [int(y[0]) for _, y in ld] == list(range(12))


def test_a_worker_killed_between_epochs_is_reported_then_replaced():
    with loader(sources_proc.Pids(n=6)) as ld:
        list(ld)
        victim = ld._feed.backend.pids[0]
        os.kill(victim, signal.SIGKILL)
        wait_gone([victim], 5)
        with pytest.raises(stoker.WorkerCrashed, match="while idle") as info:
            list(ld)
        assert info.value.index is None and info.value.exitcode == -9
        assert [int(b[0]) for b in ld] == list(range(6))
        assert victim not in ld._feed.backend.pids


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_an_unpicklable_source_names_the_attribute(method):
    with loader(sources_proc.WithLock(), method) as ld:
        with pytest.raises(stoker.SerializationError, match=r"source\.reader\.lock"):
            list(ld)
    with loader(sources_proc.WithLock(), "fork") as ld:  # fork needs no pickle
        assert len(list(ld)) == 4


def test_a_kept_batch_keeps_its_content():
    with loader(sources_proc.Arrays(n=20, shape=(16, 1024)), max_queue_size=1) as ld:
        kept = list(ld) + list(ld)
    for k, (x, y) in enumerate(kept):
        assert (x == k % 20).all() and y[0] == k % 20, f"batch {k} was overwritten"


def test_close_stops_a_worker_stuck_in_a_long_batch():
    ld = loader(sources.Slow(sleep=30, n=4), timeout=0.3)
    with pytest.raises(stoker.LoaderTimeout):
        list(ld)  # both workers are now 30 s inside source[i]
    pids = ld._feed.backend.pids
    t0 = time.monotonic()
    ld.close()
    assert time.monotonic() - t0 < STOP_S
    assert wait_gone(pids, STOP_S) == []


def test_break_then_garbage_collection_stops_the_workers():
    # Slow enough that the first batch's wait starts both workers (pool.py).
    ld = loader(sources.Slow(sleep=0.05, n=50))
    for _ in ld:
        break
    pids = ld._feed.backend.pids
    assert len(alive(pids)) == 2
    del ld
    gc.collect()
    assert wait_gone(pids, STOP_S) == []


def test_an_exception_in_the_training_step_stops_the_workers():
    with pytest.raises(ZeroDivisionError):
        with loader(sources_proc.Pids(n=50)) as ld:
            pids = []
            for _ in ld:
                pids = ld._feed.backend.pids
                1 / 0  # noqa: B018
    assert wait_gone(pids, STOP_S) == []


SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {repo!r})
    import psutil, stoker
    from tests import sources
    if __name__ == "__main__":
        loader = stoker.Loader(sources.Slow(sleep=0.3, n=1000), workers=2,
                               use_multiprocessing=True, start_method={method!r})
        for i, b in enumerate(loader):
            if i == 0:
                kids = psutil.Process().children(recursive=True)
                print("PIDS", *[k.pid for k in kids], flush=True)
    """
)


def python_shm() -> set[str]:
    """/dev/shm entries Python or stoker could have made (others come and go)."""
    return {
        n for n in os.listdir("/dev/shm") if n.startswith(("stoker", "psm_", "sem."))
    }


def run_script(method: str) -> tuple[subprocess.Popen, list[int]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT.format(repo=str(REPO), method=method)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    line = proc.stdout.readline()
    assert line.startswith("PIDS"), (line, proc.stderr.read())
    return proc, [int(p) for p in line.split()[1:]]


@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
def test_ctrl_c_stops_everything(method):
    shm_before = python_shm()
    proc, pids = run_script(method)
    assert len(alive(pids)) >= 2
    t0 = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    _, err = proc.communicate(timeout=10)
    assert time.monotonic() - t0 < 5, "exit took too long"
    assert "KeyboardInterrupt" in err
    assert wait_gone(pids, STOP_S) == []
    assert python_shm() <= shm_before


@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
def test_workers_exit_when_the_parent_is_killed(method):
    shm_before = python_shm()
    proc, pids = run_script(method)
    proc.kill()
    proc.communicate(timeout=10)
    assert wait_gone(pids, STOP_S + 1.0) == []
    assert python_shm() <= shm_before


def test_a_source_class_the_workers_cannot_import_is_explained():
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(REPO)!r})
        import numpy as np, stoker
        class Local:  # in `python -c`: a spawned worker cannot import it
            def __len__(self): return 2
            def __getitem__(self, i): return np.zeros(1)
        if __name__ == "__main__":
            loader = stoker.Loader(Local(), workers=1, use_multiprocessing=True,
                                   start_method="spawn", timeout=30)
            try:
                list(loader)
            except stoker.SerializationError as exc:
                print("ERROR", exc)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert "ERROR process worker 0 could not unpickle the source" in out.stdout, out
    assert "module level in an importable file" in out.stdout


def test_closing_one_fork_loader_is_immediate_while_another_runs():
    # The second loader's workers must not keep the first one's sockets open.
    with loader(sources_proc.Pids(n=4)) as other:
        list(other)
        ld = loader(sources_proc.Pids(n=4))
        list(ld)
        list(other)  # forked after `ld`: must not hold `ld`'s consumer ends
        pids = ld._feed.backend.pids
        t0 = time.monotonic()
        ld.close()
        assert wait_gone(pids, STOP_S) == []
        # Hung up at once: well under the grace period plus SIGTERM (a generous
        # bound on a shared machine; the benchmarks time it).
        assert time.monotonic() - t0 < 2.0


def test_break_cancels_the_queued_batches_at_once():
    with loader(sources.Slow(sleep=0.2, n=40), max_queue_size=10) as ld:
        for _ in ld:
            break
        # 12 batches were in flight; only the 2 being computed still run.
        t0 = time.monotonic()
        assert ld._pending_end.join(STOP_S)
        assert time.monotonic() - t0 < 0.5
