"""The sweep loop: start trials up to ``parallel`` at once, record each, stop cleanly.

Rules:

- the sweep and every trial are recorded in the store before and after the trial
  runs, so ``stoker runs compare --sweep NAME`` and ``--resume`` see the truth even
  when the sweep itself is killed;
- a trial's process gets its identity through the environment (``STOKER_SWEEP``,
  ``STOKER_SWEEP_TRIAL``, ``STOKER_PARAMS``, ``STOKER_STORE``): ``stoker.track``
  tags its run and records the params, ``stoker.param`` reads them;
- a failed trial (non-zero exit) is recorded with its exit code, its error (the
  last line of its output) and the tail of its log, and the sweep goes on;
- a trial the infrastructure ended (its Ray node was lost: the handle's ``lost``
  says why, see ``Handle``) is recorded 'killed' with that reason as its error and
  no exit code: it did not fail, it was not run to the end;
- Ctrl-C (KeyboardInterrupt) stops every running trial (``Handle.stop``: the whole
  process group), records them and the sweep as 'stopped', then re-raises;
- ``resume``: the trials whose last record is 'finished' are not run again (failed,
  stopped and killed ones are).

Every wait is a poll every :data:`_POLL_S`; nothing blocks on a trial.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import stoker.track.api as T
from stoker import ConfigError
from stoker.sweep._grid import Trial, render, trials
from stoker.sweep._launch import Handle, Launcher, LocalLauncher

_POLL_S = 0.05
_LOG_TAIL_LINES = 40
_LOG_TAIL_BYTES = 16_384


@dataclasses.dataclass(frozen=True)
class SweepOptions:
    """What to sweep and how. Validated on creation.

    Attributes:
        grid: parameter name -> the values to try (see ``parse_grid``).
        command: the program to run per trial, e.g. ``["python", "train.py"]``.
        repeat: how many times each combination runs (the table shows medians).
        parallel: trials running at once (1: one after another, as timing needs);
            None: 1 on this machine, and on Ray as many as the cluster's CPUs hold
            (its CPUs divided by the CPUs each trial reserves).
        as_args: also pass each param as ``--NAME=VALUE`` to the command.
        name: the sweep's name; default ``sweep-<date>-<time>``.
        store: the store (path or URL); default ``$STOKER_STORE`` or the local one.
        log_dir: where trial logs go; default ``.stoker/sweeps/<name>``.
        ray: how trials were placed on Ray (``address``, ``num_cpus``,
            ``resources``), recorded with the sweep so that ``--resume`` places
            them the same way; None: trials run on this machine.
    """

    grid: Mapping[str, Sequence[Any]]
    command: Sequence[str]
    repeat: int = 1
    parallel: int | None = 1
    as_args: bool = False
    name: str | None = None
    store: str | None = None
    log_dir: Path | None = None
    ray: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if not self.command:
            raise ConfigError(
                "a sweep needs a command after `--`, e.g. "
                "stoker sweep --grid workers=1,2 -- python train.py"
            )
        if not self.grid:
            raise ConfigError("a sweep needs at least one --grid NAME=V1,V2,...")
        if self.repeat < 1:
            raise ConfigError(f"repeat={self.repeat}: use 1 or more")
        if self.parallel is not None and self.parallel < 1:
            raise ConfigError(f"parallel={self.parallel}: use 1 or more")


@dataclasses.dataclass
class TrialResult:
    """What one trial did (also what the progress callback sees)."""

    trial: Trial
    status: str  # 'finished', 'failed', 'stopped' or 'killed'
    returncode: int | None
    wall_s: float
    run_id: int | None
    error: str | None


def _store_string(store: str | None) -> str:
    return str(T.resolve_path(store))  # a path made absolute, or the URL


def _tail(path: Path) -> str:
    try:
        with path.open("rb") as f:
            f.seek(max(0, path.stat().st_size - _LOG_TAIL_BYTES))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return T.mask("\n".join(text.splitlines()[-_LOG_TAIL_LINES:]))


def _error_line(tail: str, returncode: int) -> str:
    lines = [ln.strip() for ln in tail.splitlines() if ln.strip()]
    last = lines[-1] if lines else ""
    return f"exit code {returncode}" + (f": {last}" if last else "")


class Sweep:
    """One sweep being run; use :func:`run_sweep`."""

    def __init__(
        self,
        options: SweepOptions,
        launcher: Launcher,
        on_change: Callable[[Sweep], None],
    ) -> None:
        self.options = options
        self.name = options.name or dt.datetime.now().strftime("sweep-%Y%m%d-%H%M%S")
        self.store = _store_string(options.store)
        self.log_dir = options.log_dir or Path(".stoker") / "sweeps" / self.name
        self._launcher = launcher
        self.parallel = options.parallel or getattr(launcher, "capacity", lambda: 1)()
        self._on_change = on_change
        self.todo: collections.deque[Trial] = collections.deque()
        self.running: dict[str, tuple[Trial, Handle, float]] = {}
        self.results: list[TrialResult] = []
        self.total = 0
        self.skipped = 0  # finished in an earlier attempt (resume)

    def _record_trial(self, trial: Trial, **cols: Any) -> None:
        T.record_trial(self.name, trial.key, trial.params, self.store, **cols)

    def _env(self, trial: Trial) -> dict[str, str]:
        return {
            T.SWEEP_ENV: self.name,
            T.TRIAL_ENV: trial.key,
            T.PARAMS_ENV: json.dumps(dict(trial.params)),
            T.STORE_ENV: self.store,
        }

    def _argv(self, trial: Trial) -> list[str]:
        argv = list(self.options.command)
        if self.options.as_args:
            argv += [f"--{k}={render(v)}" for k, v in trial.params.items()]
        return argv

    def _log_path(self, trial: Trial) -> Path:
        safe = "".join(c if c.isalnum() or c in "=.-_" else "_" for c in trial.key)
        return self.log_dir / f"{safe}.log"

    def _start(self, trial: Trial) -> None:
        started = time.time()
        self._record_trial(trial, status="running", started_at=started, ended_at=None)
        handle = self._launcher.start(
            self._argv(trial), self._env(trial), self._log_path(trial)
        )
        self.running[trial.key] = (trial, handle, started)

    def _run_id(self, trial: Trial) -> int | None:
        return T.trial_run_id(self.name, trial.key, self.store)

    def _finish(
        self, trial: Trial, handle: Handle, code: int, started: float, stopped: bool
    ) -> None:
        ended = time.time()
        tail = _tail(self._log_path(trial))
        returncode: int | None = code
        # Only launchers that place trials on other machines know of lost nodes.
        lost = getattr(handle, "lost", None)
        if stopped:
            status, error = "stopped", "stopped by Ctrl-C"
        elif lost:
            status, error, returncode = "killed", str(lost), None
        elif returncode == 0:
            status, error = "finished", None
        else:
            status, error = "failed", _error_line(tail, code)
        run_id = self._run_id(trial)
        self._record_trial(
            trial,
            status=status,
            run_id=run_id,
            ended_at=ended,
            returncode=returncode,
            error=error,
            log_tail=tail,
        )
        result = TrialResult(trial, status, returncode, ended - started, run_id, error)
        self.results.append(result)
        del self.running[trial.key]

    def plan(self, resume: bool) -> None:
        """Record the sweep and decide which trials to run."""
        opts = self.options
        all_trials = trials(opts.grid, opts.repeat)
        done: set[str] = set()
        if resume:
            previous = T.get_sweep(self.name, self.store)
            done = {t["trial"] for t in previous["trials"] if t["status"] == "finished"}
        self.todo.extend(t for t in all_trials if t.key not in done)
        self.total = len(all_trials)
        self.skipped = self.total - len(self.todo)
        T.record_sweep(
            self.name,
            command=[T.mask(a) for a in opts.command],
            grid={k: list(v) for k, v in opts.grid.items()},
            options={
                "repeat": opts.repeat,
                "parallel": self.parallel,
                "as_args": opts.as_args,
                **({"ray": dict(opts.ray)} if opts.ray is not None else {}),
            },
            store=self.store,
        )

    def loop(self) -> str:
        """Run the planned trials; returns the sweep's final status."""
        try:
            while self.todo or self.running:
                while self.todo and len(self.running) < self.parallel:
                    self._start(self.todo.popleft())
                    self._on_change(self)
                for trial, handle, started in list(self.running.values()):
                    code = handle.poll()
                    if code is not None:
                        self._finish(trial, handle, code, started, stopped=False)
                        self._on_change(self)
                time.sleep(_POLL_S)
        except KeyboardInterrupt:
            for trial, handle, started in list(self.running.values()):
                code = handle.stop()
                self._finish(trial, handle, code, started, stopped=True)
            T.record_sweep(self.name, status="stopped", store=self.store)
            self._on_change(self)
            raise
        T.record_sweep(self.name, status="finished", store=self.store)
        return "finished"


def run_sweep(
    options: SweepOptions,
    *,
    resume: bool = False,
    launcher: Launcher | None = None,
    on_change: Callable[[Sweep], None] = lambda _: None,
) -> Sweep:
    """Run a sweep (or, with ``resume``, what an earlier run of it did not finish).

    Args:
        options: the grid, command and settings; with ``resume``, ``options.name``
            names the sweep to resume and the grid and command recorded with it are
            used.
        resume: skip the trials that finished before.
        launcher: how trials start; default: a ``RayLauncher`` when
            ``options.ray`` is set (or recorded with a resumed sweep), else
            subprocesses of this machine.
        on_change: called (on this thread) whenever a trial starts or ends.

    Returns:
        The sweep, with ``results`` for the trials run now.

    Raises:
        ConfigError: with ``options.ray``: Ray is missing, or the cluster cannot
            run the trials or reach the store (``RayLauncher``).
        KeyboardInterrupt: after stopping every trial and recording the sweep as
            'stopped'.
        StoreError: the store cannot be used, or ``resume`` names no sweep.
    """
    if resume:
        if not options.name:
            raise ConfigError("--resume needs the sweep's name")
        previous = T.get_sweep(options.name, _store_string(options.store))
        recorded = previous["options"]
        options = dataclasses.replace(
            options,
            grid=previous["grid"],
            command=previous["command"],
            repeat=recorded.get("repeat", 1),
            as_args=recorded.get("as_args", False),
            ray=options.ray if options.ray is not None else recorded.get("ray"),
        )
    if launcher is None and options.ray is not None:
        from stoker.sweep._ray_launch import RayLauncher

        launcher = RayLauncher(**options.ray, store=options.store)
    sweep = Sweep(options, launcher or LocalLauncher(), on_change)
    os.makedirs(sweep.log_dir, exist_ok=True)
    sweep.plan(resume)
    sweep.loop()
    return sweep
