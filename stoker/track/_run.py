"""A tracked run: context manager, decorator, metric logger and loader observer.

Threads: the caller's thread validates and appends to a deque (``run.log`` and the
``on_*`` observer methods do nothing else); the run's writer thread (``_writer``)
writes; a capture thread records git and the environment once. ``log`` may be called
from any thread.

Lifecycle: ``start()`` creates the run row (status 'running'), or spools when a
server is away (``_delivery``); ``end()`` records 'finished', 'failed' or 'killed' and
writes everything left; runs still open at exit are ended by ``_registry``. A process
that dies without exiting (SIGKILL, OOM) records nothing: readers mark its run
'killed' (``_liveness``).
"""

from __future__ import annotations

import collections
import contextlib
import functools
import logging
import os
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from stoker._errors import StoreError
from stoker._types import BatchEvent, observe_all
from stoker.track import _registry as registry
from stoker.track import _validate
from stoker.track._capture import command
from stoker.track._delivery import open_for_run
from stoker.track._liveness import host, process_started_at
from stoker.track._sweeps import sweep_params, sweep_tags
from stoker.track._url import mask, resolve
from stoker.track._writer import (
    BATCH,
    CLOSE,
    EPOCH,
    LOADER_START,
    METRIC,
    PARAMS,
    TAGS,
    Writer,
)

RERUN_ENV = "STOKER_RERUN_OF"
# Ending a run waits this long for its writer's last transaction (which itself may
# wait the store's busy timeout a few times).
_JOIN_TIMEOUT_S = 60.0
_FLUSH_TIMEOUT_S = 10.0
_MAX_ERROR_CHARS = 65_536
_MAX_STEP = _validate.MAX_STEP
_log = logging.getLogger("stoker")
_time = time.time

P = ParamSpec("P")
R = TypeVar("R")


class Run:
    """One tracked run. Make it with :func:`stoker.track`; see the module docstring.

    Attributes:
        id: the run's id in the store (None until started, and while a run that
            started with its PostgreSQL server away has not reached it yet).
        uid: the run's own unique id, the same in every store it is copied to.
        name: the run's name.
        store: the store's absolute path, or its URL with the password masked
            (None until started).
        status: 'new', 'running', 'finished', 'failed' or 'killed'.
    """

    def __init__(
        self,
        name: str | None = None,
        params: Mapping[str, Any] | None = None,
        store: str | os.PathLike[str] | None = None,
        *,
        tags: Mapping[str, Any] | None = None,
        capture: bool = True,
        sample: bool = True,
        data_version: str | None = None,
    ) -> None:
        self._spec = (name, params, store, tags, capture, sample, data_version)
        self.name = _validate.check_name(
            name if name is not None else _validate.default_name(), "run"
        )
        # A sweep's trial records the sweep's params (the script's own win) and tags.
        self._params = _validate.encode("param", {**sweep_params(), **(params or {})})
        all_tags = {**sweep_tags(), **(tags or {})}
        if data_version is not None:
            all_tags["data_version"] = data_version
        self._tags = _validate.encode("tag", all_tags)
        rerun_of = os.environ.get(RERUN_ENV)
        if rerun_of:
            self._tags.append(("rerun_of", rerun_of))
        self.id: int | None = None
        self.store: Path | str | None = None
        self.status = "new"
        self._queue: collections.deque[tuple[Any, ...]] = collections.deque()
        # Observer reports are queued even before start(), so a loader made with
        # observers=[run] earlier still has its settings recorded.
        self._put: Callable[[tuple[Any, ...]], None] = self._queue.append
        self._log_put: Callable[[tuple[Any, ...]], None] = _validate.not_running
        self._names: set[str] = set()
        self._next_step = 0
        self._writer: Writer | None = None
        self.uid: str | None = None
        self._observing: contextlib.AbstractContextManager[Any] | None = None

    def __repr__(self) -> str:
        return f"<stoker.track.Run {self.id} {self.name!r} {self.status}>"

    # -- lifecycle --------------------------------------------------------------------
    def start(self) -> Run:
        """Create the run in the store and start recording; returns the run.

        Raises:
            StoreError: the store cannot be created, opened or written.
            RuntimeError: the run was started before.
        """
        if self.status != "new":
            raise RuntimeError(
                f"{self!r} was already started; call stoker.track(...) for a new run"
            )
        where = resolve(self._spec[2])
        now = _time()
        pid = os.getpid()
        columns = dict(
            uid=uuid.uuid4().hex,
            name=self.name,
            created_at=now,
            heartbeat_at=now,
            host=host(),
            pid=pid,
            pid_started_at=process_started_at(pid),
            **command(),
        )
        store, remote, unavailable, self.id = open_for_run(where, columns)
        self.store = store.path if store is not None else mask(str(where))
        self.uid = columns["uid"]
        if self._params:
            self._queue.append((PARAMS, self._params))
        if self._tags:
            self._queue.append((TAGS, self._tags))
        capture, sample = self._spec[4], self._spec[5]
        self._writer = Writer(
            store,
            self.id,
            self._queue,
            capture=capture,
            sample=sample,
            remote=remote,
            on_run_id=self._set_id,
            unavailable=unavailable,
        )
        self._writer.start()
        self.status = "running"
        self._log_put = self._queue.append
        self._observing = observe_all(self)
        self._observing.__enter__()
        registry.add(self)
        return self

    def _set_id(self, run_id: int) -> None:
        # The writer thread created the run on a server that was away at start.
        self.id = run_id

    def end(self, status: str = "finished", error: str | None = None) -> None:
        """Record the final status and write everything logged; idempotent.

        Args:
            status: 'finished', 'failed' or 'killed'.
            error: the traceback or reason, for 'failed' and 'killed'.

        Raises:
            StoreError: the store could not be written: the data logged since the
                last successful write is lost (the message says why).
        """
        if status not in ("finished", "failed", "killed"):
            raise ValueError(f"status={status!r}: use 'finished', 'failed' or 'killed'")
        if self.status != "running":
            return
        assert self._writer is not None
        self._log_put = _validate.not_running
        self._put = registry.drop
        if self._observing is not None:
            self._observing.__exit__(None, None, None)
        registry.remove(self)
        if error is not None:
            error = mask(error)  # a traceback may quote a store URL
            if len(error) > _MAX_ERROR_CHARS:
                error = "...\n" + error[-_MAX_ERROR_CHARS:]
        written = self._writer.finish(status, error, _JOIN_TIMEOUT_S)
        self.status = status
        if not self._writer.alive:  # one stuck in a busy wait keeps its connection
            self._writer.close()
        if self._writer.spooled_to is not None:
            _log.warning(
                "stoker.track: run %s ended with its data in the spool %s; send it "
                "with `stoker runs sync` once the store %s answers",
                self.id if self.id is not None else self.uid,
                self._writer.spooled_to,
                self.store,
            )
        if not written and not self._writer.deleted:
            raise StoreError(
                f"run {self.id} could not be completed in {self.store}: "
                f"{self._writer.error}; what was logged since its last successful "
                "write is lost"
            )

    def __enter__(self) -> Run:
        return self.start()

    def __exit__(self, et: Any, ev: Any, tb: Any) -> None:
        if et is None or (issubclass(et, SystemExit) and ev.code in (None, 0)):
            status, error = "finished", None
        elif issubclass(et, KeyboardInterrupt):
            status, error = "killed", "KeyboardInterrupt"
        else:
            status = "failed"
            error = "".join(traceback.format_exception(et, ev, tb))
        try:
            self.end(status, error)
        except StoreError:
            if et is None:
                raise
            _log.exception("stoker.track: while ending run %s", self.id)

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        """Use as a decorator: every call of ``fn`` is a new run with these options."""
        if not callable(fn):
            raise TypeError(f"stoker.track(...) decorates a function, not {fn!r}")
        name, params, store, tags, capture, sample, data_version = self._spec
        name = name or getattr(fn, "__name__", None)

        @functools.wraps(fn)
        def tracked(*args: P.args, **kwargs: P.kwargs) -> R:
            run = Run(
                name,
                params,
                store,
                tags=tags,
                capture=capture,
                sample=sample,
                data_version=data_version,
            )
            with run:
                return fn(*args, **kwargs)

        return tracked

    def flush(self, timeout: float = _FLUSH_TIMEOUT_S) -> None:
        """Block until everything logged so far is in the store.

        Raises:
            StoreError: it was not written within ``timeout`` seconds.
        """
        if self._writer is None or self.status != "running":
            return
        if not self._writer.flush(timeout):
            raise StoreError(
                f"run {self.id}: not flushed to {self.store} within {timeout:g} s "
                f"({self._writer.error or 'the writer is still busy'})"
            )

    # -- logging ----------------------------------------------------------------------
    def log(
        self,
        metrics: Mapping[str, Any] | None = None,
        /,
        *,
        step: int | None = None,
        **kwargs: Any,
    ) -> None:
        """Record metric values at ``step``; a few microseconds, never blocks.

        Args:
            metrics: ``{name: value}``, for names that are not Python identifiers
                (``run.log({"val/loss": 0.3}, step=5)``); merged with ``kwargs``.
            step: a whole number; default: one more than the previous call's step,
                from 0.
            **kwargs: ``name=value`` pairs. Values: numbers, numpy scalars, 0-d
                arrays, one-element tensors; NaN and infinities are kept.

        Raises:
            TypeError: a value is not numeric, or ``step`` is not a whole number.
            ValueError: a name is empty, longer than 250 characters or holds NUL.
            RuntimeError: the run is not running.
        """
        t = _time()
        if metrics is not None:
            values = {**metrics, **kwargs} if kwargs else dict(metrics)
        else:
            values = kwargs
        names = self._names
        # ``values`` is this call's own dict (the kwargs, or the copy above), so the
        # conversions below may replace its values in place.
        for key, x in values.items():
            if key not in names:
                names.add(_validate.check_name(key, "metric"))
            tx = type(x)
            if tx is not float and tx is not int:
                values[key] = _validate.to_float(key, x)
        if step is None:
            step = self._next_step
        elif type(step) is not int or not -_MAX_STEP <= step <= _MAX_STEP:
            step = _validate.to_step(step)
        self._next_step = step + 1
        self._log_put((METRIC, t, step, values))

    def log_params(
        self, params: Mapping[str, Any] | None = None, /, **kwargs: Any
    ) -> None:
        """Record (or overwrite) parameters; see the package docs for what is kept.

        Raises:
            ValueError: a name is unusable, or a value is longer than 65,536
                characters once encoded as JSON.
            RuntimeError: the run is not running.
        """
        self._log_put((PARAMS, _validate.encode("param", {**(params or {}), **kwargs})))

    def set_tags(self, tags: Mapping[str, Any] | None = None, /, **kwargs: Any) -> None:
        """Set (or overwrite) text tags; non-strings are stored as their ``str()``.

        Raises:
            ValueError: a name is unusable, or a value is longer than 65,536
                characters.
            RuntimeError: the run is not running.
        """
        self._log_put((TAGS, _validate.encode("tag", {**(tags or {}), **kwargs})))

    # -- the engine's Observer protocol (stoker._types.Observer) ----------------------
    def on_start(self, loader_id: str, settings: dict[str, Any]) -> None:
        """A loader was created in the run: keep its settings."""
        self._put((LOADER_START, _time(), loader_id, settings))

    def on_batch(self, event: BatchEvent) -> None:
        """A batch was delivered: keep its wait, produce time and queue depth."""
        self._put((BATCH, _time(), event))

    def on_epoch_end(self, loader_id: str, epoch: int, summary: dict[str, Any]) -> None:
        """A loader's epoch ended: keep its summary."""
        self._put((EPOCH, _time(), loader_id, epoch, summary))

    def on_close(self, loader_id: str, summary: dict[str, Any]) -> None:
        """A loader closed: keep its final summary."""
        self._put((CLOSE, _time(), loader_id, summary))


def track(
    name: str | Callable[..., Any] | None = None,
    params: Mapping[str, Any] | None = None,
    store: str | os.PathLike[str] | None = None,
    *,
    tags: Mapping[str, Any] | None = None,
    capture: bool = True,
    sample: bool = True,
    data_version: str | None = None,
) -> Any:
    """Open a tracked run: ``with stoker.track("mnist", params={...}) as run:``.

    Also a decorator (``@stoker.track("mnist")`` or bare ``@stoker.track``): each call
    of the function is a run. Every ``stoker.Loader`` created inside the run reports
    its settings and per-batch statistics to it.

    Args:
        name: the run's name; default: the script's name.
        params: parameters to record (JSON values; others as ``str()``).
        store: the store's path or ``postgresql://`` URL; default
            ``$STOKER_STORE``, else ``.stoker/store.db`` under the working directory.
        tags: text labels to record.
        capture: record git commit, branch and diff, Python and package versions.
        sample: sample the process's CPU and memory every second.
        data_version: your name for the data the run reads (recorded as the tag
            ``data_version``; ``stoker runs compare`` shows when it differs).

    Returns:
        A :class:`Run`, not yet started (``with`` starts it); or, when ``name`` is a
        function, that function wrapped.

    Raises:
        TypeError, ValueError: a param or tag name or value is unusable.
    """
    options: dict[str, Any] = dict(
        tags=tags, capture=capture, sample=sample, data_version=data_version
    )
    if callable(name):
        return Run(None, params, store, **options)(name)
    return Run(name, params, store, **options)
