"""issue 17: how a Ray loader starts and what a dying driver leaves behind.

Each test runs a training script (``ray_driver.py``) as a child process: one starts
its own local Ray, the others join the session's cluster through ``RAY_ADDRESS``.
Whatever ends the script (SIGKILL, Ctrl-C), nothing of it may keep running.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time

import psutil
import pytest

pytest.importorskip("ray")
ROOT = pathlib.Path(__file__).resolve().parents[2]
READY = "stoker-driver-ready"  # as in ray_driver.py, which cannot be imported here
# The child imports Ray, connects (or starts a local instance) and starts actors.
_READY_TIMEOUT_S = 60.0
# Ray notices a dead driver by its lost connection; its processes go within seconds.
_GONE_TIMEOUT_S = 30.0


class Driver:
    """The child script, its stderr collected on a thread."""

    def __init__(self, loaders: int, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.ray_driver", str(loaders)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.stderr: list[str] = []
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        self.stderr.extend(self.proc.stderr)

    def ready(self) -> dict:
        """The JSON line the script prints once its long epoch delivers a batch."""
        box: list[str] = []

        def read() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:  # Ray's echoed log lines come first
                if line.startswith(READY):
                    box.append(line[len(READY) :])
                    return

        t = threading.Thread(target=read, daemon=True)
        t.start()
        t.join(_READY_TIMEOUT_S)
        assert box, f"the driver did not start: {''.join(self.stderr)}"
        return json.loads(box[0])

    def end(self, sig: int) -> int:
        """Send ``sig``; the exit code once the script is gone."""
        self.proc.send_signal(sig)
        code = self.proc.wait(_GONE_TIMEOUT_S)
        self._reader.join(5)
        return code

    def __enter__(self) -> Driver:
        return self

    def __exit__(self, *exc: object) -> None:
        # Whatever failed, the script is ended (by its pid) and its pipes closed.
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(_GONE_TIMEOUT_S)
        self._reader.join(5)
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.proc.stdout.close()
        self.proc.stderr.close()


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def running(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            pass
    return alive


# Ray's dashboard and runtime-env agents outlive a SIGKILLed local instance by a
# minute: they try to tell the lost driver that their raylet died, with a fixed 60 s
# timeout (ray/_private/utils.py, publish_error_to_driver), then exit.
RAY_AGENTS = ("ray::DashboardAgent", "ray::RuntimeEnvAgent")
_AGENTS_GONE_S = 90.0


def _kill_local_driver() -> list[int]:
    with Driver(loaders=2, env=child_env()) as driver:
        info = driver.ready()
        assert info["pids"], "a local Ray instance starts processes"
        assert driver.end(signal.SIGKILL) == -signal.SIGKILL
    said = [line for line in driver.stderr if "started a local Ray instance" in line]
    assert len(said) == 1, driver.stderr  # three loaders, one instance, said once
    return info["pids"]


def _left(pids: list[int], within_s: float, ignore: tuple[str, ...]) -> list[str]:
    def names() -> list[str]:
        out = []
        for pid in running(pids):
            with contextlib.suppress(psutil.NoSuchProcess):
                out.append(psutil.Process(pid).name())
        return [n for n in out if n not in ignore]

    deadline = time.monotonic() + within_s
    while names() and time.monotonic() < deadline:
        time.sleep(0.2)
    return names()


@pytest.mark.timeout(180)
def test_local_ray_starts_once_says_so_and_dies_with_a_killed_driver():
    pids = _kill_local_driver()
    left = _left(pids, _GONE_TIMEOUT_S, ignore=RAY_AGENTS)
    assert not left, f"still running after the driver was killed: {left}"
    # Ray's agents exit on their own a minute later (the slow test below waits for
    # it); this test's own leftovers are ended here, by pid.
    for pid in running(pids):
        with contextlib.suppress(psutil.NoSuchProcess):
            psutil.Process(pid).kill()


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_ray_agents_of_a_killed_local_driver_exit_within_90_s():
    pids = _kill_local_driver()
    assert not _left(pids, _AGENTS_GONE_S, ignore=()), "Ray agents still running"


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "sig", [signal.SIGKILL, signal.SIGINT], ids=["sigkill", "ctrl-c"]
)
def test_a_driver_on_a_cluster_takes_its_actors_when_it_ends(ray_cluster, sig):
    from tests.ray_cluster import live_actors, wait_no_actors

    before = set(live_actors())
    with Driver(loaders=0, env=child_env(RAY_ADDRESS=ray_cluster.address)) as driver:
        info = driver.ready()
        assert len(set(live_actors()) - before) == 2  # the long loader's two workers
        assert not any("started a local Ray" in line for line in driver.stderr)
        code = driver.end(sig)
    assert code != 0
    if sig == signal.SIGINT:
        assert "KeyboardInterrupt" in "".join(driver.stderr)
    assert not wait_no_actors(_GONE_TIMEOUT_S)
    assert info["first_batch_s"] < _READY_TIMEOUT_S
