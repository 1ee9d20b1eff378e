"""Check that your own source is deterministic and resumable under stoker.

    from stoker.testing import check_source
    check_source(MySequence(...), seed=0)            # raises SourceCheckFailed if not

It runs the source through loaders with different worker counts (and, if asked,
processes), compares every byte of every batch over several epochs, then interrupts a
run in the middle, resumes a new loader from ``state_dict()`` (through JSON, as a
checkpoint would) and compares again. The failure message names the first batch that
differs and the usual cause.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from stoker._loader import Loader as _Loader
from stoker._options import PROCESS_ONLY as _PROCESS_ONLY
from stoker._tree import fingerprint as _fingerprint

__all__ = ["CheckReport", "SourceCheckFailed", "check_source"]

_HINT = (
    "Usual causes: calling np.random.* or random.* inside __getitem__ on threads (use "
    "stoker.rng(), which is seeded from (seed, epoch, index)), state that changes "
    "between calls (caches, counters, file handles read sequentially), or reading "
    "data that changes on disk."
)


class SourceCheckFailed(AssertionError):
    """The source gave different batches where stoker promises the same ones."""


@dataclass
class CheckReport:
    """What ``check_source`` compared.

    Attributes:
        configs: the loader settings compared, as strings.
        epochs: epochs compared per setting.
        batches: batches per epoch.
        resumed_at: ``(epoch, position)`` where the resume check interrupted the run.
    """

    configs: list[str] = field(default_factory=list)
    epochs: int = 0
    batches: int = 0
    resumed_at: tuple[int, int] | None = None

    def __str__(self) -> str:
        text = (
            f"deterministic over {self.epochs} epochs x {self.batches} batches for "
            f"{', '.join(self.configs)}"
        )
        if self.resumed_at is not None:
            epoch, batch = self.resumed_at
            text += f", resumed at epoch {epoch} batch {batch}"
        return text


def _run(loader: _Loader, epochs: int) -> list[list[bytes]]:
    return [[_fingerprint(b) for b in loader] for _ in range(epochs)]


def _first_difference(a: list[list[bytes]], b: list[list[bytes]]) -> str:
    for e, (ea, eb) in enumerate(zip(a, b, strict=True)):
        if len(ea) != len(eb):
            return (
                f"epoch {e} has {len(ea)} batches in one run and {len(eb)} in the other"
            )
        for p, (x, y) in enumerate(zip(ea, eb, strict=True)):
            if x != y:
                return f"epoch {e}, batch {p}"
    return "no difference"


def check_source(
    source: Any,
    *,
    seed: int = 0,
    epochs: int = 2,
    workers: Sequence[int] = (1, 4),
    processes: bool = False,
    **loader_options: Any,
) -> CheckReport:
    """Check that ``source`` gives bit-identical batches under stoker's promises.

    Args:
        source: your source (``__len__`` + ``__getitem__``).
        seed: the loader seed used throughout.
        epochs: epochs compared (at least 2 shows that epochs differ as they should).
        workers: worker counts compared; each must give the same batches.
        processes: also compare process workers (the source must be picklable).
        **loader_options: other ``stoker.Loader`` options (``shuffle``,
            ``batch_size``, ...), the same for every run.

    Returns:
        A report of what was compared.

    Raises:
        SourceCheckFailed: two runs differ; the message names the first batch.
    """
    modes = [False, True] if processes else [False]
    report = CheckReport(epochs=epochs)
    reference: list[list[bytes]] | None = None
    ref_name = ""
    for mp in modes:
        for w in workers:
            name = f"{w} {'process' if mp else 'thread'} workers"
            for attempt in range(2 if reference is None else 1):
                options = loader_options
                if not mp:  # process-only options would be refused on threads
                    options = {
                        k: v for k, v in options.items() if k not in _PROCESS_ONLY
                    }
                with _Loader(
                    source, workers=w, use_multiprocessing=mp, seed=seed, **options
                ) as loader:
                    got = _run(loader, epochs)
                    report.batches = len(loader)
                if reference is None:
                    reference, ref_name = got, name
                elif got != reference:
                    again = " (the same settings twice)" if attempt else ""
                    raise SourceCheckFailed(
                        f"{name} and {ref_name}{again} differ at "
                        f"{_first_difference(reference, got)}. {_HINT}"
                    )
            report.configs.append(name)
    assert reference is not None
    report.resumed_at = _check_resume(source, seed, epochs, reference, loader_options)
    return report


def _check_resume(
    source: Any,
    seed: int,
    epochs: int,
    reference: list[list[bytes]],
    options: dict[str, Any],
) -> tuple[int, int] | None:
    length = len(reference[0])
    if length == 0:
        return None
    stop_epoch, stop_pos = min(1, epochs - 1), length // 2
    got: list[list[bytes]] = [[] for _ in range(epochs)]
    with _Loader(source, workers=2, seed=seed, **options) as first:
        state = None
        for e in range(stop_epoch + 1):
            for p, batch in enumerate(first):
                got[e].append(_fingerprint(batch))
                if (e, p) == (stop_epoch, stop_pos):
                    state = json.loads(json.dumps(first.state_dict()))
                    break
    with _Loader(source, workers=3, seed=seed, **options) as resumed:
        resumed.load_state_dict(state or {})
        for e in range(resumed.epoch, epochs):
            got[e].extend(_fingerprint(b) for b in resumed)
    if got != reference:
        raise SourceCheckFailed(
            f"a run resumed from state_dict() at epoch {stop_epoch} batch {stop_pos} "
            "differs from an uninterrupted one at "
            f"{_first_difference(reference, got)}. {_HINT}"
        )
    return stop_epoch, stop_pos


__all__ = ["CheckReport", "SourceCheckFailed", "check_source"]
