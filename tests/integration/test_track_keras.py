"""The issue's "done when": `with stoker.track(...)` around a Keras fit, then
`stoker runs show` has the run, its params, metrics and loader statistics."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

keras = pytest.importorskip("keras")

import stoker  # noqa: E402
import stoker.track  # noqa: E402
from stoker.adapters.keras import TrackingCallback, adapt  # noqa: E402
from stoker.cli import main  # noqa: E402

pytestmark = [pytest.mark.keras, pytest.mark.timeout(120)]


class Blobs:
    """Eight batches of two separable blobs."""

    def __len__(self) -> int:
        return 8

    def __getitem__(self, i: int):
        rng = np.random.default_rng(i)
        y = rng.integers(0, 2, 16)
        x = rng.normal(size=(16, 4)).astype("float32") + y[:, None] * 2.0
        return x, y


def _fit(loader: stoker.Loader) -> None:
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile(
        keras.optimizers.SGD(0.05),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(adapt(loader), epochs=3, verbose=0, callbacks=[TrackingCallback()])


def test_keras_fit_in_a_run_shows_params_metrics_and_loader_stats(tmp_path):
    # Process workers are covered in tests/unit/test_track_run.py: here they would
    # import this module, and with it Keras, in every worker.
    processes = False
    store = tmp_path / "store.db"
    params = {"lr": 0.05, "epochs": 3}
    with stoker.track("keras-fit", params=params, store=store) as run:
        with stoker.Loader(
            Blobs(), workers=2, use_multiprocessing=processes, seed=11
        ) as loader:
            _fit(loader)

    result = CliRunner().invoke(
        main, ["runs", "show", str(run.id), "--store", str(store)]
    )
    assert result.exit_code == 0, result.output
    out = result.stdout
    for text in ("keras-fit", "finished", "lr", "loss", "accuracy", "batch_loss"):
        assert text in out, text
    assert "2 workers" in out and "seed 11" in out and "verdict" in out
    assert ("process" if processes else "thread") in out

    doc = json.loads(
        CliRunner()
        .invoke(main, ["runs", "show", str(run.id), "--json", "--store", str(store)])
        .stdout
    )
    assert doc["params"] == params
    assert doc["metrics"]["loss"]["count"] == 3  # one per epoch
    assert doc["metrics"]["batch_loss"]["count"] == 24
    (loader_row,) = doc["loaders"]
    assert loader_row["batches_recorded"] == 24
    assert loader_row["epochs_recorded"] == 3
    assert loader_row["settings"]["use_multiprocessing"] is processes
    if processes:
        assert loader_row["settings"]["start_method"]
    summary = loader_row["summary"]
    assert summary["batches"] == 24
    assert {"throughput_bps", "wait_fraction", "time_to_first_batch_s"} <= set(summary)
