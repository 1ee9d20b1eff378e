"""The demo's data: scikit-learn's handwritten digits as PNG files, read in batches.

scikit-learn ships the 1,797 8x8 digits of the UCI set inside the package, so the
demo needs no download. They are scaled up to 28x28 (MNIST's size, the seed
experiment's data) and written once as ``<data_dir>/<label>/<index>.png`` with a
``manifest.csv``; later runs reuse the files.

``DigitsBatches`` is the seed experiment's Sequence: batch ``i`` reads its PNG files
after sleeping ``latency`` seconds, which stands in for a network file system or an
object store. It imports neither Keras nor torch on purpose: process workers unpickle
the source in a fresh interpreter, and a class deriving from
``keras.utils.PyDataset`` would make each of them import Keras and torch first
(about 6 s of CPU each here). stoker needs only ``__len__`` and ``__getitem__``.
"""

from __future__ import annotations

import csv
import os
import tempfile
import time
from pathlib import Path

import numpy as np

IMAGE_SIZE = 28
MANIFEST = "manifest.csv"


def prepare_digits(data_dir: str | os.PathLike[str]) -> list[tuple[str, int]]:
    """Write the digits as PNG files under ``data_dir`` unless already there.

    Args:
        data_dir: the folder to hold ``<label>/<index>.png`` and ``manifest.csv``.

    Returns:
        ``(absolute path, label)`` of every image, in the data set's order.

    Raises:
        ImportError: scikit-learn or pillow is missing (``pip install
            'stoker[demo]'``).
    """
    root = Path(data_dir).resolve()
    found = _read_manifest(root)
    if found is not None:
        return found
    try:
        from PIL import Image
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise ImportError(
            f"the demo needs scikit-learn and pillow ({exc.name} is missing): "
            "pip install 'stoker[demo]'"
        ) from exc
    digits = load_digits()
    rows: list[tuple[str, int]] = []
    for index, (image, label) in enumerate(
        zip(digits.images, digits.target, strict=True)
    ):
        pixels = np.clip(image * (255.0 / 16.0), 0, 255).astype(np.uint8)
        picture = Image.fromarray(pixels, mode="L").resize(
            (IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BILINEAR
        )
        relative = f"{int(label)}/{index:04d}.png"
        (root / str(int(label))).mkdir(parents=True, exist_ok=True)
        picture.save(root / relative)
        rows.append((relative, int(label)))
    # The manifest is written last and atomically: its presence means every file is.
    with tempfile.NamedTemporaryFile(
        "w", dir=root, suffix=".tmp", delete=False, newline=""
    ) as tmp:
        csv.writer(tmp).writerows([("path", "label"), *rows])
    os.replace(tmp.name, root / MANIFEST)
    return [(str(root / path), label) for path, label in rows]


def _read_manifest(root: Path) -> list[tuple[str, int]] | None:
    try:
        with open(root / MANIFEST, newline="") as f:
            rows = list(csv.reader(f))[1:]
    except FileNotFoundError:
        return None
    out = [(str(root / path), int(label)) for path, label in rows]
    if not out or not all(os.path.exists(path) for path, _ in out):
        return None  # incomplete: write the files again
    return out


def load_images(paths: list[str]) -> np.ndarray:
    """The images at ``paths`` as float32 in [0, 1], shape ``(n, 28, 28, 1)``."""
    from PIL import Image

    out = np.empty((len(paths), IMAGE_SIZE, IMAGE_SIZE, 1), np.float32)
    for k, path in enumerate(paths):
        with Image.open(path) as picture:
            out[k, :, :, 0] = np.asarray(picture, dtype=np.float32)
    out /= 255.0
    return out


class DigitsBatches:
    """Batches of digit images read from disk after a simulated network latency.

    Args:
        items: ``(path, label)`` pairs, in the order to batch them.
        batch_size: images per batch (the last batch may be smaller).
        latency: seconds each batch waits before reading, like a remote store.
    """

    def __init__(
        self, items: list[tuple[str, int]], batch_size: int = 32, latency: float = 0.05
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size}: expected >= 1")
        if latency < 0:
            raise ValueError(f"latency={latency}: expected seconds >= 0")
        self.paths = [path for path, _ in items]
        self.labels = np.array([label for _, label in items], dtype=np.int64)
        self.batch_size = batch_size
        self.latency = latency

    def __len__(self) -> int:
        return -(-len(self.paths) // self.batch_size)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} of {len(self)}")
        if self.latency:
            time.sleep(self.latency)
        lo, hi = index * self.batch_size, (index + 1) * self.batch_size
        return load_images(self.paths[lo:hi]), self.labels[lo:hi]


def split(
    items: list[tuple[str, int]], train_size: int, seed: int = 0
) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """A fixed shuffled split: ``train_size`` items to train on, the rest to test."""
    if not 0 < train_size < len(items):
        raise ValueError(f"train_size={train_size}: expected 1 to {len(items) - 1}")
    order = np.random.default_rng(seed).permutation(len(items))
    return [items[i] for i in order[:train_size]], [
        items[i] for i in order[train_size:]
    ]
