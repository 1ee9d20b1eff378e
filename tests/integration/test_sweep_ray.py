"""issue 17: `stoker sweep ... --ray`: trials as Ray tasks on the session's cluster.

The CLI runs in a subprocess that joins the session's Ray cluster (no second Ray
instance is started); the lost-node test adds worker nodes to that cluster with
``tests/integration/test_ray_cluster.add_two_nodes`` and runs the sweep in this
process, which is connected to it already.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import stoker.track.api as T
from stoker import ConfigError
from stoker.track._liveness import process_alive

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.timeout(150)

TINY = """
import os, socket
import stoker
a = stoker.param("a", default=0)
b = stoker.param("b", default="x")
print(f"trial on {socket.gethostname()} a={a} b={b} "
      f"fixed={os.environ.get('TINY_FIXED')}", flush=True)
with stoker.track("tiny", sample=False, capture=False) as run:
    run.log(v=a * 10)
    if a == 2 and b == "y" and not os.environ.get("TINY_FIXED"):
        raise RuntimeError("boom on purpose")
"""

# Writes its own pid and its child's, then waits: for the stop and lost-node tests.
SLEEPER = """
import os, subprocess, sys, time
import stoker
a = stoker.param("a", default=0)
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
with open(f"pids-{a}.tmp", "w") as f:
    f.write(f"{os.getpid()} {child.pid}")
os.replace(f"pids-{a}.tmp", f"pids-{a}")
with stoker.track("sleeper", capture=False, sample=False):
    if os.environ.get("SLEEPER_FAST"):
        sys.exit(0)
    time.sleep(120)
"""


def _script(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def _sweep_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "stoker", "sweep", "--no-chart", *args]


def _sweep(tmp_path: Path, *args: str, store, env: dict | None = None):
    return subprocess.run(
        _sweep_argv(*args),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "STOKER_STORE": str(store), **(env or {})},
    )


def _pids(files: list[Path], proc=None, timeout_s: float = 60) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while not all(f.exists() for f in files):
        assert time.monotonic() < deadline, "the trials did not start"
        assert proc is None or proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    return [int(p) for f in files for p in f.read_text().split()]


def _gone(pids: list[int], timeout_s: float = 10) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while any(process_alive(p, None) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return [p for p in pids if process_alive(p, None)]


def test_a_2x2_grid_as_ray_tasks_then_resume(tmp_path, ray_cluster):
    tiny = _script(tmp_path, "tiny.py", TINY)
    store = tmp_path / "s.db"
    grid = ["--grid", "a=1,2", "--grid", "b=x,y"]
    cmd = ["--name", "g", "--ray", ray_cluster.address, *grid]
    proc = _sweep(tmp_path, *cmd, "--", sys.executable, str(tiny), store=store)
    assert proc.returncode == 1, proc.stderr  # a trial failed; the sweep went on
    assert "trial a=2,b=y#1 failed: exit code 1: RuntimeError: boom on purpose" in (
        proc.stderr
    )
    sweep = T.get_sweep("g", store)
    assert sweep["options"]["ray"] == {
        "address": ray_cluster.address,
        "num_cpus": 1.0,
        "num_gpus": 0.0,
        "resources": {},
    }
    # The head has 2 CPUs and a trial reserves 1: two at once by default.
    assert sweep["options"]["parallel"] == 2
    status = {t["trial"]: t["status"] for t in sweep["trials"]}
    assert status == {
        "a=1,b=x#1": "finished",
        "a=1,b=y#1": "finished",
        "a=2,b=x#1": "finished",
        "a=2,b=y#1": "failed",
    }
    failed = next(t for t in sweep["trials"] if t["status"] == "failed")
    assert failed["returncode"] == 1 and "boom on purpose" in failed["log_tail"]
    runs = T.list_runs(store, tags={"sweep": "g"})
    by_trial = {r["tags"]["sweep_trial"]: r for r in runs}
    assert by_trial["a=2,b=x#1"]["params"] == {"a": 2, "b": "x"}
    # The output streamed back into the trial's log on this machine.
    log = (tmp_path / ".stoker/sweeps/g/a=1_b=y_1.log").read_text()
    assert "a=1 b=y fixed=None" in log
    assert "sweep g (finished)" in proc.stdout

    # --resume places trials on Ray again (recorded with the sweep), and the
    # driver's environment reaches them.
    proc = _sweep(tmp_path, "--resume", "g", store=store, env={"TINY_FIXED": "1"})
    assert proc.returncode == 0, proc.stderr
    sweep = T.get_sweep("g", store)
    assert {t["status"] for t in sweep["trials"]} == {"finished"}
    assert len(T.list_runs(store, tags={"sweep": "g"})) == 5  # only one ran again
    log = (tmp_path / ".stoker/sweeps/g/a=2_b=y_1.log").read_text()
    assert "a=2 b=y fixed=1" in log


def test_ctrl_c_stops_every_ray_trial_and_leaves_no_orphan(tmp_path, ray_cluster):
    sleeper = _script(tmp_path, "sleeper.py", SLEEPER)
    store = tmp_path / "s.db"
    argv = _sweep_argv(
        "--name",
        "c",
        "--ray",
        ray_cluster.address,
        "--grid",
        "a=1,2",
        "--",
        sys.executable,
        str(sleeper),
    )
    proc = subprocess.Popen(
        argv,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "STOKER_STORE": str(store)},
    )
    pids = _pids([tmp_path / "pids-1", tmp_path / "pids-2"], proc)
    assert all(process_alive(p, None) for p in pids)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert not _gone(pids), "orphans left"
    sweep = T.get_sweep("c", store)
    assert sweep["status"] == "stopped"
    assert {t["status"] for t in sweep["trials"]} == {"stopped"}
    # SIGINT first: the trials' runs recorded the interruption themselves.
    assert {r["status"] for r in T.list_runs(store)} == {"killed"}


def test_handle_stop_before_and_after_the_trial_started(
    tmp_path, ray_cluster, monkeypatch
):
    from stoker.sweep._ray_launch import RayLauncher

    sleeper = _script(tmp_path, "sleeper.py", SLEEPER)
    launcher = RayLauncher(store=str(tmp_path / "s.db"))
    argv = [sys.executable, str(sleeper)]
    monkeypatch.chdir(tmp_path)
    running = launcher.start(argv, {"STOKER_PARAMS": '{"a": 7}'}, tmp_path / "7.log")
    pids = _pids([tmp_path / "pids-7"])
    # The head's 2 CPUs: one trial runs, a third waits for a CPU.
    other = launcher.start(argv, {"STOKER_PARAMS": '{"a": 8}'}, tmp_path / "8.log")
    waiting = launcher.start(argv, {"STOKER_PARAMS": '{"a": 9}'}, tmp_path / "9.log")
    _pids([tmp_path / "pids-8"])
    assert waiting.poll() is None and waiting.started is None
    assert waiting.stop(grace_s=2) < 0
    assert running.stop(grace_s=2) != 0 and running.lost is None
    assert other.stop(grace_s=2) != 0
    assert not _gone(pids), "orphans left"
    assert not (tmp_path / "pids-9").exists()


def test_trials_write_into_the_team_store(tmp_path, ray_cluster, pg_url):
    tiny = _script(tmp_path, "tiny.py", TINY)
    args = ["--name", "pg", "--ray", ray_cluster.address, "--grid", "a=1,3"]
    proc = _sweep(
        tmp_path,
        *args,
        "--json",
        "--metric",
        "v",
        "--",
        sys.executable,
        str(tiny),
        store=pg_url,
    )
    assert proc.returncode == 0, proc.stderr
    table = json.loads(proc.stdout)
    assert [(r["a"], r["finished"], r["metric"]) for r in table["rows"]] == [
        (1, 1, 10.0),
        (3, 1, 30.0),
    ]
    assert len(T.list_runs(pg_url, tags={"sweep": "pg"})) == 2


def test_what_the_cluster_cannot_do_is_refused_up_front(
    tmp_path, ray_cluster, monkeypatch
):
    from stoker.sweep._ray_launch import RayLauncher

    with pytest.raises(ConfigError, match="no node of the Ray cluster.*CPU=64"):
        RayLauncher(num_cpus=64, store=str(tmp_path / "s.db"))
    with pytest.raises(ConfigError, match="no node of the Ray cluster.*GPU=1"):
        RayLauncher(num_gpus=1, store=str(tmp_path / "s.db"))
    monkeypatch.setattr(RayLauncher, "cluster_is_local", lambda self: False)
    with pytest.raises(ConfigError, match=r"--ray with a local store.*postgresql"):
        RayLauncher(store=str(tmp_path / "s.db"))
    # The team store is fine on any cluster.
    RayLauncher(store="postgresql://u:p@db.example/stoker")
    proc = _sweep(
        tmp_path, "--ray-cpus", "2", "--grid", "a=1", "--", "true", store="s.db"
    )
    assert proc.returncode == 2 and "go with --ray" in proc.stderr


def test_a_trial_sees_the_node_then_the_driver_then_its_own_variables():
    from stoker.sweep._ray_trial import DEVICE_VARS, trial_env

    node = {"PATH": "/node/bin", "HOSTNAME": "node", "CUDA_VISIBLE_DEVICES": "3"}
    driver = {
        "PATH": "/driver/bin",
        "HOSTNAME": "laptop",
        "RAY_ADDRESS": "10.0.0.1:6379",
        "MY_FLAG": "1",
        "CUDA_VISIBLE_DEVICES": "0,1",
        "STOKER_STORE": "driver.db",
    }
    trial = {"STOKER_STORE": "postgresql://db/x", "STOKER_PARAMS": "{}"}
    env = trial_env(node, driver, trial)
    assert env == {
        "PATH": "/driver/bin",
        "HOSTNAME": "node",  # the driver's describes the driver's machine
        "MY_FLAG": "1",
        "CUDA_VISIBLE_DEVICES": "0,1",
        "STOKER_STORE": "postgresql://db/x",
        "STOKER_PARAMS": "{}",
    }
    # A trial with GPUs keeps the devices Ray gave it on the node.
    assert trial_env(node, driver, trial, DEVICE_VARS)["CUDA_VISIBLE_DEVICES"] == "3"


def test_without_ray_the_error_names_the_pip_command(tmp_path):
    code = (
        "import sys; sys.modules['ray'] = None; "
        "import stoker.sweep; assert 'ray' not in [m for m in sys.modules if "
        "sys.modules[m] is not None]; "
        "from stoker.cli import main; main()"
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            "sweep",
            "--no-chart",
            "--ray",
            "--grid",
            "a=1",
            "--",
            "true",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "STOKER_STORE": str(tmp_path / "s.db")},
    )
    assert proc.returncode == 1, proc.stderr
    assert "pip install 'stoker[ray]'" in proc.stderr


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_trial_on_a_lost_node_is_killed_and_resume_reruns_it(tmp_path, ray_cluster):
    from tests.integration.test_ray_cluster import NODE_RESOURCE, add_two_nodes

    sleeper = _script(tmp_path, "sleeper.py", SLEEPER)
    store = tmp_path / "s.db"
    log = tmp_path / ".stoker/sweeps/lost/a=1_1.log"
    nodes = add_two_nodes(ray_cluster)
    cluster, _ = next(nodes)
    try:
        argv = _sweep_argv(
            *["--name", "lost", "--ray", ray_cluster.address, "--grid", "a=1"],
            *["--ray-resource", f"{NODE_RESOURCE}=1", "--"],
            *[sys.executable, str(sleeper)],
        )
        proc = subprocess.Popen(
            argv,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "STOKER_STORE": str(store)},
        )
        pids = _pids([tmp_path / "pids-1"], proc)
        # The log's first line names the trial's node.
        where = log.read_text().split("on node ")[1].split()[0]
        (victim,) = [n for n in cluster.worker_nodes if n.node_id.startswith(where)]
        cluster.remove_node(victim, allow_graceful=False)
        t0 = time.monotonic()
        _, err = proc.communicate(timeout=60)
        print(f"lost node noticed in {time.monotonic() - t0:.1f} s")
        assert proc.returncode == 1, err
        assert f"trial a=1#1 killed: killed: node {where}" in err
        assert "run the killed trials again with `stoker sweep --resume lost`" in err
        (trial,) = T.get_sweep("lost", store)["trials"]
        assert trial["status"] == "killed" and trial["returncode"] is None
        assert f"node {where}" in trial["error"] and "was lost" in trial["error"]
        assert "NodeDiedError" in trial["error"] and "was lost" in trial["log_tail"]
        assert not _gone(pids), "orphans left"
    finally:
        next(nodes, None)
    # --resume runs it again; the recorded placement asks for the lost nodes'
    # resource, so --ray places it anew (on the head).
    (tmp_path / "pids-1").unlink()
    proc = _sweep(
        tmp_path,
        *["--resume", "lost", "--ray", ray_cluster.address],
        store=store,
        env={"SLEEPER_FAST": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    (trial,) = T.get_sweep("lost", store)["trials"]
    assert trial["status"] == "finished"
