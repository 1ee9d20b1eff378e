"""Every message that crosses between the consumer and its process workers.

Each is a named record, never a positional tuple: the reader says ``msg.pos``, not
``msg[2]``, and a field added later cannot shift the others. They are immutable
``NamedTuple``s. On the wire a record travels as ``(code, *fields)``
(:func:`flatten`, :func:`rebuild`), not as a pickled instance: unpickling an
instance looks its class up by name every time, which cost about 4 us per message
(measured: a task and its reply took 1.4 and 1.6 us round trip as plain tuples, 5.1
and 6.1 us as pickled NamedTuples, 1.5 and 1.5 us flattened), a third of the whole
per-batch cost of a trivial batch.

Consumer -> workers:

* a list of :class:`Task` on the shared task socket (one task, or a chunk of cheap
  ones), taken by whichever worker is free;
* :class:`SourceUpdate` on each worker's own control socket, between epochs.

Workers -> consumer, on the shared results socket: :class:`Done`, :class:`Failed`,
:class:`Skipped` for a task, or :class:`Fatal` when a worker cannot start.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Union

# Where one buffer of a batch lies: (IN_SLOT or IN_ONE_OFF, offset, size).
Place = tuple[int, int, int]


class Task(NamedTuple):
    """Compute ``key`` of ``epoch`` as position ``pos`` of run ``run``.

    Attributes:
        run: the epoch run the task belongs to (results of stopped runs are dropped).
        epoch: the epoch number, for seeding and messages.
        pos: the position in the epoch.
        key: ``source[i]``'s index, or an int64 array of sample indices.
        offset: arena offset of the task's shared-memory slot.
        size: the slot's size in bytes (0: no slot, use a one-off segment).
        sync: source updates the worker must have applied first.
    """

    run: int
    epoch: int
    pos: int
    key: Any
    offset: int
    size: int
    sync: int


class Done(NamedTuple):
    """A batch placed in shared memory (``codec.encode``).

    Attributes:
        run, pos, worker: which task, and who ran it.
        produce_s: wall seconds spent in ``source[i]`` and placing the batch.
        cpu_s: CPU seconds of the worker process over the same span.
        nbytes: bytes of array data in the batch.
        stream: the pickle stream, inline or as a ``Place``.
        places: where each out-of-band buffer lies.
        need: slot bytes that would have held the whole batch.
        one_off: size of the one-off segment whose fd rides along (0: none).
    """

    run: int
    pos: int
    worker: int
    produce_s: float
    cpu_s: float
    nbytes: int
    stream: Union[bytes, Place]  # noqa: UP007 - a runtime alias on Python 3.10
    places: list[Place]
    need: int
    one_off: int


class Failed(NamedTuple):
    """The task raised (``how="raised"``) or its batch cannot be pickled
    (``how="pickle"``); ``packed`` is ``tracebacks.pack(exception)``."""

    run: int
    pos: int
    worker: int
    produce_s: float
    how: str
    packed: tuple[str, bytes, str, str]


class Skipped(NamedTuple):
    """The task belonged to a run the consumer stopped; nothing was computed."""

    run: int
    pos: int
    worker: int


class Fatal(NamedTuple):
    """Worker ``worker`` cannot start (the source did not unpickle); it exits."""

    worker: int
    message: str


class SourceUpdate(NamedTuple):
    """Source update number ``sync``: ``resync.apply`` it to the worker's copy."""

    sync: int
    payload: bytes


Reply = Union[Done, Failed, Skipped, Fatal]  # noqa: UP007


RECORDS: tuple[type[tuple[Any, ...]], ...] = (
    Task,
    Done,
    Failed,
    Skipped,
    Fatal,
    SourceUpdate,
)
_CODE = {cls: code for code, cls in enumerate(RECORDS)}


def flatten(record: tuple[Any, ...]) -> tuple[Any, ...]:
    """``(code, *fields)``: the record as a plain tuple, for pickling."""
    return (_CODE[type(record)], *record)


def rebuild(flat: tuple[Any, ...]) -> Any:
    """The record a :func:`flatten` tuple came from."""
    return tuple.__new__(RECORDS[flat[0]], flat[1:])
