"""The loader's resumable state: a small, versioned, JSON-serialisable envelope.

``Loader.state_dict()`` returns::

    {"format": "stoker.loader", "version": 2, "kind": "indexed" | "generator",
     "seed": ..., "epoch": ..., "position": ..., "delivered_after": [...],
     ...the feed's own keys (``Feed.state``)}

``position`` is the length of the prefix of the epoch delivered; ``delivered_after``
lists the positions delivered beyond it (``ordered=False`` delivers out of order).
Version 2 added the feed keys for length changes (``length_since``) and the new
generator streams (``stream``); a version-1 state of an indexed loader still
resumes (its missing keys have their old meaning), a version-1 generator state is
refused with a message, because generator streams changed meaning.
"""

from __future__ import annotations

from typing import Any

from stoker._errors import ConfigError

FORMAT = "stoker.loader"
VERSION = 2
_READS = (1, 2)


def envelope(
    kind: str, seed: int, epoch: int, done: set[int], feed: dict[str, Any]
) -> dict[str, Any]:
    """The state of a loader at ``epoch`` with positions ``done`` delivered."""
    delivered = sorted(done)
    prefix = 0
    while prefix < len(delivered) and delivered[prefix] == prefix:
        prefix += 1
    return {
        "format": FORMAT,
        "version": VERSION,
        "kind": kind,
        "seed": seed,
        "epoch": epoch,
        "position": prefix,
        "delivered_after": delivered[prefix:],
        **feed,
    }


def check(state: Any, kind: str, given_seed: int | None) -> None:
    """Raise ``ConfigError`` unless ``state`` is an envelope this loader can read.

    The feed checks its own keys (``Feed.check_state``).
    """
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ConfigError(
            "load_state_dict() needs the dict returned by Loader.state_dict(); "
            f"got {type(state).__name__} without format={FORMAT!r}"
        )
    version = state.get("version")
    if version not in _READS:
        raise ConfigError(
            f"loader state version {version!r} is not supported by this stoker (it "
            f"reads versions {', '.join(map(str, _READS))}); resume with the stoker "
            "version that wrote it"
        )
    if state.get("kind") != kind:
        raise ConfigError(
            f"the state was saved with kind={state.get('kind')!r} but this loader "
            f"has kind={kind!r}: resume with the same source and options"
        )
    if given_seed is not None and state.get("seed") != given_seed:
        raise ConfigError(
            f"the state was saved with seed={state.get('seed')} but this loader was "
            f"given seed={given_seed}: pass seed={state.get('seed')} or seed=None"
        )


def delivered(state: dict[str, Any]) -> set[int]:
    """The positions of the saved epoch already delivered."""
    return set(range(int(state["position"]))) | {
        int(p) for p in state["delivered_after"]
    }


def restore(state: Any, feed: Any, given_seed: int | None) -> tuple[int, int, set[int]]:
    """Check ``state`` (envelope and feed), restore the feed from it; returns the
    loader's ``(seed, epoch, positions delivered)``.

    Raises:
        ConfigError: as :func:`check` and the feed's ``check_state``.
    """
    check(state, feed.kind, given_seed)
    feed.check_state(state)
    seed = int(state["seed"])
    feed.restore(state, seed)
    return seed, int(state["epoch"]), delivered(state)
