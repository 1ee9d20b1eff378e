"""``stoker.bench`` as a library: workloads, measurement, sweep, report, chart."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import time

import numpy as np
import pytest

import stoker
from stoker import bench
from stoker.bench import monitor, report, runners
from stoker.bench.files import FilesSource
from stoker.bench.workloads import BigSource, CpuSource, LatencySource, TinySource

pytestmark = pytest.mark.timeout(60)


def test_builtin_batches_have_the_documented_shapes(tmp_path, monkeypatch):
    monkeypatch.setenv("STOKER_BENCH_CACHE", str(tmp_path))
    x, y = LatencySource(3, latency=0.0)[2]
    assert (x.shape, x.dtype.type, y.shape) == ((128, 28, 28, 1), np.float32, (128,))
    x, y = BigSource(2)[1]
    assert (x.shape, x.dtype.type, y.shape) == ((64, 224, 224, 3), np.uint8, (64,))
    assert not np.array_equal(BigSource(2)[0][0], x)
    x, y = CpuSource(2, ops=640)[1]
    assert x.shape == (10,) and x.dtype == np.float32
    assert TinySource(5)[4].tolist() == [4]
    files = FilesSource(3, files=4, size=16, per_batch=3)
    x, y = files[1]
    assert (x.shape, x.dtype.type) == ((3, 16, 16, 3), np.uint8)
    assert len(list(files.folder.glob("*.jpg"))) == 4
    assert x.std() > 5  # decoded pictures, not zeros
    with pytest.raises(IndexError):
        TinySource(5)[5]


def test_files_are_generated_once_and_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("STOKER_BENCH_CACHE", str(tmp_path))
    first = FilesSource(1, files=2, size=8, fmt="png", per_batch=2)
    stamp = (first.folder / "00000.png").stat().st_mtime_ns
    second = FilesSource(1, files=2, size=8, fmt="png", per_batch=2)
    assert second.folder == first.folder
    assert (second.folder / "00000.png").stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == [first.folder.name]  # no staging


@pytest.mark.parametrize(
    "source", [LatencySource(4, 0.0), BigSource(2), CpuSource(2, ops=64), TinySource(3)]
)
def test_sources_pickle_for_process_workers(source):
    copy = pickle.loads(pickle.dumps(source))
    a, b = source[1], copy[1]
    for u, v in zip(
        a if isinstance(a, tuple) else (a,),
        b if isinstance(b, tuple) else (b,),
        strict=True,
    ):
        np.testing.assert_array_equal(u, v)
    if isinstance(source, BigSource):  # the 9.6 MB base stays behind
        assert len(pickle.dumps(source)) < 1000


def test_make_workload_rejects_bad_values():
    with pytest.raises(stoker.ConfigError, match="unknown workload 'fast'"):
        bench.make_workload("fast")
    with pytest.raises(stoker.ConfigError, match="batches=0"):
        bench.make_workload("tiny", batches=0)
    with pytest.raises(stoker.ConfigError, match="only to the 'latency'"):
        bench.make_workload("cpu", latency=0.1)
    w = bench.make_workload("latency", batches=7, latency=0.5)
    assert (len(w.source), w.source.latency) == (7, 0.5)


def test_measure_counts_batches_bytes_and_time():
    source = LatencySource(6, latency=0.01)
    setting = bench.Setting("stoker", "thread", workers=3, queue=2)
    sample = bench.measure(bench.StokerRunner(), source, setting, step_s=0.01)
    assert sample.batches == 6
    assert sample.bytes == 6 * (128 * 28 * 28 * 4 + 128 * 8)
    assert 0.06 <= sample.real_s < 2  # 6 consumer steps of 10 ms at least
    assert 0 <= sample.wait_s < sample.real_s
    assert sample.peak_rss_bytes > 10e6


def test_monitor_sees_own_cpu_memory_and_child_cpu():
    with monitor.Monitor() as m:
        end = time.process_time() + 0.2
        while time.process_time() < end:
            pass
        block = np.ones(100_000_000, dtype=np.uint8)  # 100 MB, touched
        time.sleep(0.1)  # long enough for a few samples
        del block
    assert m.usage is not None
    assert m.usage.user_s + m.usage.sys_s >= 0.15
    assert m.usage.peak_rss_bytes >= 100e6
    busy = "import time\nt=time.process_time()+0.3\nwhile time.process_time()<t: pass"
    with monitor.Monitor() as m:
        subprocess.run([sys.executable, "-c", busy], check=True, timeout=30)
    assert m.usage is not None
    assert m.usage.user_s + m.usage.sys_s >= 0.25  # the child's CPU is counted


class Broken(runners.Runner):
    name = "stoker"

    def iterate(self, source, setting, extras):
        raise stoker.ConfigError("processes are not in this build")
        yield  # a generator, like every runner


def test_sweep_medians_speedup_and_unavailable_settings(monkeypatch):
    calls = []
    real = bench.StokerRunner.iterate

    def iterate(self, source, setting, extras):
        calls.append(setting)
        if setting.mode == "process":
            return Broken().iterate(source, setting, extras)
        return real(self, source, setting, extras)

    monkeypatch.setattr(bench.StokerRunner, "iterate", iterate)
    progress = []
    result = bench.sweep(
        bench.make_workload("latency", batches=8, latency=0.02),
        workers=[1, 4],
        modes=["thread", "process"],
        queues=[2],
        repeat=3,
        progress=lambda d, t, label: progress.append((d, t, label)),
    )
    assert progress[0] == (0, 15, "serial (no loader)")
    assert progress[-1] == (15, 15, "done")
    # a setting that cannot run is tried once, not once per repeat
    assert sum(s.mode == "process" for s in calls) == 2
    rows = {(r["loader"], r["mode"], r["workers"]): r for r in bench.rows(result)}
    assert rows[("stoker", "process", 1)]["status"] == "unavailable"
    assert (
        "processes are not in this build" in rows[("stoker", "process", 4)]["message"]
    )
    w4 = rows[("stoker", "thread", 4)]
    assert w4["repeats"] == 3
    assert w4["batches_per_s_min"] <= w4["batches_per_s"] <= w4["batches_per_s_max"]
    # 20 ms per batch: 4 threads beat the serial loop clearly (ideal 4x)
    assert w4["speedup"] > 1.5
    assert w4["efficiency"] == pytest.approx(w4["speedup"] / 4)
    top = bench.best(result)
    assert top is not None and top["workers"] == 4
    doc = json.loads(json.dumps(bench.to_dict(result, "stoker bench latency")))
    assert tuple(doc) == report.TOP_FIELDS
    assert doc["grid"] == {
        "workers": [1, 4],
        "modes": ["thread", "process"],
        "queues": [2],
        "repeat": 3,
        "compare": [],
        "step_s": 0.0,
    }


def test_sweep_rejects_a_bad_grid():
    w = bench.make_workload("tiny", batches=2)
    with pytest.raises(stoker.ConfigError, match="workers="):
        bench.sweep(w, workers=[0])
    with pytest.raises(stoker.ConfigError, match="repeat="):
        bench.sweep(w, repeat=0)


def test_chart_is_a_png_and_needs_matplotlib(tmp_path, monkeypatch):
    result = bench.sweep(
        bench.make_workload("tiny", batches=20),
        workers=[1, 2],
        modes=["thread"],
        queues=[1, 4],
        repeat=1,
    )
    path = bench.draw_chart(result, tmp_path / "c.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(stoker.ConfigError, match=r"pip install 'stoker\[charts\]'"):
        bench.draw_chart(result, tmp_path / "d.png")


def test_record_puts_the_sweep_in_the_tracking_store(tmp_path):
    track = pytest.importorskip("stoker.track")
    result = bench.sweep(
        bench.make_workload("tiny", batches=30),
        workers=[1, 2],
        modes=["thread"],
        repeat=1,
    )
    store = str(tmp_path / "store.db")
    run = bench.record(result, store=store)
    got = track.get_run(run.id, store=store)
    assert (got["name"], got["status"]) == ("bench-tiny", "finished")
    assert got["tags"] == {"kind": "bench", "workload": "tiny"}
    assert got["params"]["grid.workers"] == [1, 2]
    # one point per worker count, at step = workers: the run's plot is the bench chart
    series = got["metrics"]["stoker.thread.q10.batches_per_s"]
    assert (series["count"], series["step"]) == (2, 2)
    assert series["last"] == pytest.approx(bench.rows(result)[2]["batches_per_s"])
    assert got["metrics"]["serial.speedup"]["last"] == 1.0


def test_process_workers_cpu_is_counted():
    # stoker's process workers are forkserver children, which `time` and
    # getrusage(RUSAGE_CHILDREN) never see: the sampler must count them.
    source = CpuSource(4, ops=400_000)  # ~70 ms of Python per batch
    setting = bench.Setting("stoker", "process", workers=2, queue=2)
    t = time.process_time()
    for i in range(4):
        source[i]
    serial_cpu = time.process_time() - t
    try:
        sample = bench.measure(bench.StokerRunner(), source, setting)
    except stoker.ConfigError as exc:  # a build without process workers
        pytest.skip(str(exc))
    assert sample.batches == 4
    assert sample.user_s + sample.sys_s >= 0.8 * serial_cpu
