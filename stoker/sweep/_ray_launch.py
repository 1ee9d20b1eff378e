"""Sweep trials as Ray tasks: ``stoker sweep ... --ray [ADDRESS]``.

Rule: each trial is one Ray task (``max_retries=0``: a trial is never re-run behind
the sweep's back) reserving ``num_cpus``, ``num_gpus`` and ``resources``; it runs
the trial's command as a subprocess on whichever node Ray placed it, in the sweep's
working directory, and streams the output into the trial's log file here
(``_ray_trial``). :meth:`RayTrial.poll` never blocks (``ray.wait(timeout=0)``).
:meth:`RayTrial.stop` stops the trial's whole process group on its node, SIGINT then
SIGKILL as ``LocalLauncher`` does, and only then lets the task go.

A trial whose node or worker is lost (any Ray error that is not the trial's own
exit) ends with :attr:`RayTrial.lost` set, naming the node: the sweep records it
'killed', and ``--resume`` runs it again.

Which clusters may use a local SQLite store: only a cluster whose nodes all run on
this machine (a local ``ray.init``, ``ray.cluster_utils.Cluster``, ``ray start`` on
this host), because a trial elsewhere cannot open the file. Anything else needs the
team store (``postgresql://``); a node that joins later is refused per trial.

Ray is found and started as the Loader's Ray backend does it
(``stoker._engine._ray_connect``), so ``--ray`` with no address starts or joins the
same local instance, takes ``auto``, ``RAY_ADDRESS`` and ``ray://``, and says so once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import stoker.track.api as T
from stoker import ConfigError, RayOptions
from stoker._engine._ray_connect import connect, load_ray
from stoker.sweep import _ray_trial
from stoker.sweep._launch import STOP_GRACE_S

# After the group is stopped, the task yields its exit code within this long.
_EXIT_WAIT_S = 10.0
# The stop task itself: scheduling on a live node takes well under this.
_REAP_MARGIN_S = 30.0
_POLL_S = 0.05


def _remote(ray: Any) -> tuple[Any, Any]:
    """The trial task and the stop task, defined once per process."""
    global _TASKS
    if _TASKS is None:
        trial = ray.remote(max_retries=0)(_ray_trial.run_trial)
        reap = ray.remote(max_retries=0, num_cpus=0)(_ray_trial.reap)
        _TASKS = (trial, reap)
    return _TASKS


_TASKS: tuple[Any, Any] | None = None


def _lost_reason(ray: Any, exc: BaseException) -> str | None:
    """Why the infrastructure ended a trial, or None when the error is the task's
    own (a bug here, or a cancel)."""
    errors = ray.exceptions
    if isinstance(exc, errors.TaskCancelledError):
        return None
    if isinstance(exc, errors.RayTaskError):
        cause = getattr(exc, "cause", None)
        if isinstance(cause, errors.RayError) and not isinstance(
            cause, (errors.RayTaskError, errors.TaskCancelledError)
        ):
            return _lost_reason(ray, cause)
        return None
    if isinstance(exc, errors.RayError):
        first = str(exc).strip().splitlines()
        return f"{type(exc).__name__}: {first[0] if first else ''}".strip()
    return None


class RayTrial:
    """A trial running as a Ray task (the ``Handle`` of :class:`RayLauncher`)."""

    def __init__(self, ray: Any, gen: Any, log_path: Path, reap_task: Any) -> None:
        self._ray = ray
        self._gen = gen
        self._reap = reap_task
        self._log = log_path.open("ab")
        self.started: _ray_trial.TrialStarted | None = None
        self.returncode: int | None = None
        #: Set when the trial ended because its node or worker was lost.
        self.lost: str | None = None

    def _write(self, data: bytes) -> None:
        self._log.write(data)
        self._log.flush()

    def _end(self, code: int) -> int:
        self.returncode = code
        self._log.close()
        return code

    def _take(self, item: Any) -> None:
        if isinstance(item, bytes):
            self._write(item)
        elif isinstance(item, _ray_trial.TrialStarted):
            self.started = item
            # Which machine ran it, at the top of its log (its error is the last line).
            self._write(f"stoker sweep --ray: on {item.describe()}\n".encode())
        elif isinstance(item, _ray_trial.TrialExit):
            self.returncode = item.returncode

    def poll(self) -> int | None:
        """The exit code once the trial ended, else None; never blocks."""
        if self._log.closed:
            return self.returncode
        ray = self._ray
        while True:
            ready, _ = ray.wait([self._gen], timeout=0)
            if not ready:
                return None
            try:
                self._take(ray.get(next(self._gen)))
            except StopIteration:
                if self.returncode is None:
                    self._write(b"stoker sweep --ray: the trial task ended early\n")
                    return self._end(1)
                return self._end(self.returncode)
            except ray.exceptions.RayError as exc:
                return self._failed(exc)

    def _failed(self, exc: BaseException) -> int:
        reason = _lost_reason(self._ray, exc)
        where = self.started.describe() if self.started else "its node"
        if reason is not None:
            self.lost = f"killed: {where} was lost ({reason})"
            self._write(f"\nstoker sweep --ray: {self.lost}\n".encode())
            return self._end(-signal.SIGKILL)
        if isinstance(exc, self._ray.exceptions.TaskCancelledError):
            return self._end(-signal.SIGINT)
        self._write(f"\nstoker sweep --ray: the trial task failed: {exc}\n".encode())
        return self._end(1)

    def stop(self, grace_s: float = STOP_GRACE_S) -> int:
        """Stop the trial's process group on its node, then the task; see the
        module docstring. Returns the exit code."""
        ray = self._ray
        if self.poll() is not None:
            return self.returncode if self.returncode is not None else 1
        if self.started is None:
            # Not started yet (waiting for resources): the cancel's KeyboardInterrupt
            # stops a child it may have started meanwhile.
            ray.cancel(self._gen, force=False)
        else:
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            strategy = NodeAffinitySchedulingStrategy(self.started.node_id, soft=False)
            ref = self._reap.options(scheduling_strategy=strategy).remote(
                self.started.pgid, grace_s
            )
            try:
                ray.get(ref, timeout=grace_s + _REAP_MARGIN_S)
            except (ray.exceptions.RayError, TimeoutError):
                ray.cancel(self._gen, force=False)
        deadline = time.monotonic() + grace_s + _EXIT_WAIT_S
        while time.monotonic() < deadline:
            code = self.poll()
            if code is not None:
                return code
            time.sleep(_POLL_S)
        # The worker is stuck: kill it; its child dies with it (PR_SET_PDEATHSIG).
        ray.cancel(self._gen, force=True)
        self._write(b"\nstoker sweep --ray: the trial task was killed\n")
        return self._end(-signal.SIGKILL)


def _this_host_ips() -> set[str]:
    names = {"127.0.0.1", "localhost", socket.gethostname()}
    with contextlib.suppress(OSError):
        names |= set(socket.gethostbyname_ex(socket.gethostname())[2])
    return names


class RayLauncher:
    """Runs each trial of a sweep as a Ray task; see the module docstring.

    Args:
        address: the cluster (``"auto"``, ``"ray://host:10001"``, ``"host:6379"``);
            None: this process's cluster, else ``RAY_ADDRESS``, else a local one.
        num_cpus: CPUs each trial reserves (fractions allowed).
        num_gpus: GPUs each trial reserves; Ray gives the trial its own
            ``CUDA_VISIBLE_DEVICES``, which wins over the driver's.
        resources: custom Ray resources each trial reserves, e.g. ``{"big_box": 1}``.
        store: the sweep's store; a local SQLite file is refused on a cluster with
            nodes on other machines.

    Raises:
        ConfigError: Ray is missing, the cluster cannot be joined, no node can hold
            one trial, or the store is a local file on a multi-machine cluster.
    """

    def __init__(
        self,
        address: str | None = None,
        num_cpus: float = 1.0,
        resources: Mapping[str, float] | None = None,
        num_gpus: float = 0.0,
        store: str | None = None,
    ) -> None:
        # RayOptions validates the address, the CPUs and the resources for us.
        opts = RayOptions(
            address=address, num_cpus=num_cpus, resources=dict(resources or {})
        )
        if not opts.num_cpus:
            raise ConfigError(f"--ray-cpus {num_cpus}: a trial needs more than 0 CPUs")
        if isinstance(num_gpus, bool) or not (
            isinstance(num_gpus, (int, float)) and num_gpus >= 0
        ):
            raise ConfigError(f"--ray-gpus {num_gpus!r}: expected a number >= 0")
        self.num_cpus = float(num_cpus)
        self.num_gpus = float(num_gpus)
        self.resources = dict(opts.resources)
        self._ray = ray = load_ray()
        connect(ray, opts)
        self._trial, self._reap = _remote(ray)
        self.nodes = [n for n in ray.nodes() if n.get("Alive")]
        self._check_fits()
        self.local_store_host: str | None = None
        if not isinstance(T.resolve_path(store), str):  # a file, not a URL
            if not self.cluster_is_local():
                raise ConfigError(
                    "--ray with a local store: trials on other machines cannot write "
                    "to it; pass --store postgresql://... (docs/team.md)"
                )
            self.local_store_host = socket.gethostname()

    def _check_fits(self) -> None:
        need = {"CPU": self.num_cpus, **self.resources}
        if self.num_gpus:
            need["GPU"] = self.num_gpus
        if any(
            all(n.get("Resources", {}).get(k, 0.0) >= v for k, v in need.items())
            for n in self.nodes
        ):
            return
        have = "; ".join(
            ", ".join(
                f"{k}={v:g}"
                for k, v in sorted(n.get("Resources", {}).items())
                if k == "CPU" or k in need
            )
            for n in self.nodes
        )
        raise ConfigError(
            "no node of the Ray cluster can run a trial that needs "
            + ", ".join(f"{k}={v:g}" for k, v in need.items())
            + f" (the nodes have: {have or 'nothing'}): ask for less (--ray-cpus, "
            "--ray-gpus, --ray-resource) or add a node with these resources"
        )

    def cluster_is_local(self) -> bool:
        """Whether every node of the cluster runs on this machine."""
        here = _this_host_ips()
        return all(
            n.get("NodeManagerAddress") in here or n.get("NodeManagerHostname") in here
            for n in self.nodes
        )

    def capacity(self) -> int:
        """How many trials the cluster runs at once: its CPUs / CPUs per trial."""
        cpus = sum(n.get("Resources", {}).get("CPU", 0.0) for n in self.nodes)
        return max(1, int(cpus // self.num_cpus))

    def start(
        self, argv: Sequence[str], env: Mapping[str, str], log_path: Path
    ) -> RayTrial:
        """Submit the trial's task; its output goes to ``log_path``."""
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.write_bytes(b"")
        gen = self._trial.options(
            num_cpus=self.num_cpus,
            num_gpus=self.num_gpus,
            resources=self.resources or None,
        ).remote(
            list(argv),
            os.getcwd(),
            dict(os.environ),
            dict(env),
            self.local_store_host,
            STOP_GRACE_S,
            _ray_trial.DEVICE_VARS if self.num_gpus else (),
        )
        return RayTrial(self._ray, gen, log_path, self._reap)
