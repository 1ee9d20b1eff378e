"""The ``files`` workload: decode image files, the most common real input pipeline.

The files are written once, with pillow, to a cache folder (``STOKER_BENCH_CACHE``
or the system temp folder) and reused by later runs: a benchmark should time the
decode, not the encode. The folder is filled under a temporary name and renamed
when complete, so an interrupted run never leaves a half-written set that a later
run would trust.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from stoker import ConfigError

# 256 files of 224x224: about 3 MB of JPEG, written in about a second, and enough
# distinct files that a batch does not decode the same file twice.
_DEFAULT_FILES = 256
_DEFAULT_SIZE = 224
_DEFAULT_PER_BATCH = 32
_FORMATS = {"jpeg": ".jpg", "png": ".png"}


def _pillow() -> Any:
    try:
        from PIL import Image
    except ImportError:
        raise ConfigError(
            "the 'files' workload decodes images with pillow, which is not "
            "installed: pip install pillow"
        ) from None
    return Image


def cache_root() -> Path:
    """Where generated benchmark files live (``STOKER_BENCH_CACHE`` overrides)."""
    env = os.environ.get("STOKER_BENCH_CACHE")
    return Path(env) if env else Path(tempfile.gettempdir()) / "stoker-bench"


def ensure_files(count: int, size: int, fmt: str) -> Path:
    """Write ``count`` images of ``size`` x ``size`` once; return their folder."""
    if fmt not in _FORMATS:
        raise ConfigError(f"fmt={fmt!r}: expected one of {', '.join(_FORMATS)}")
    folder = cache_root() / f"files-{fmt}-{size}px-{count}"
    if (folder / "COMPLETE").exists():
        return folder
    image_cls = _pillow()
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=folder.parent))
    try:
        rng = np.random.default_rng(0)
        yy, xx = np.mgrid[0:size, 0:size]
        for i in range(count):
            # A gradient plus noise: compresses like a photo, not like a flat colour.
            base = np.stack([xx, yy, (xx + yy + i) % size], axis=-1) * (255 / size)
            noise = rng.normal(0, 12, base.shape)
            pixels = np.clip(base + noise, 0, 255).astype(np.uint8)
            image_cls.fromarray(pixels).save(staging / f"{i:05d}{_FORMATS[fmt]}")
        (staging / "COMPLETE").touch()
        try:
            staging.rename(folder)
        except OSError:  # another run finished first; theirs is as good as ours
            shutil.rmtree(staging, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return folder


class FilesSource:
    """Batch ``i`` decodes ``per_batch`` image files into uint8 ``[n, size, size, 3]``.

    Args:
        length: batches per epoch.
        files: how many distinct files to generate; batches cycle through them.
        size: image side in pixels.
        fmt: ``"jpeg"`` or ``"png"``.
        per_batch: files decoded per batch.
    """

    def __init__(
        self,
        length: int,
        files: int = _DEFAULT_FILES,
        size: int = _DEFAULT_SIZE,
        fmt: str = "jpeg",
        per_batch: int = _DEFAULT_PER_BATCH,
    ) -> None:
        self.length = length
        self.files = files
        self.size = size
        self.per_batch = per_batch
        self.folder = ensure_files(files, size, fmt)
        self.paths = sorted(str(p) for p in self.folder.glob("*" + _FORMATS[fmt]))

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if not 0 <= index < self.length:
            raise IndexError(index)
        image_cls = _pillow()
        out = np.empty((self.per_batch, self.size, self.size, 3), dtype=np.uint8)
        first = index * self.per_batch
        for k in range(self.per_batch):
            with image_cls.open(self.paths[(first + k) % len(self.paths)]) as img:
                out[k] = np.asarray(img.convert("RGB"))
        labels = np.arange(first, first + self.per_batch, dtype=np.int64) % 10
        return out, labels
