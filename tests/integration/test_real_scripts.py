"""Process workers in scripts written the way users write them (issue 10).

Each test runs a real script in a fresh interpreter: the main module is the user's
file, not pytest, which is what decides whether workers re-import it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(300)
ROOT = Path(__file__).resolve().parents[2]

# A Keras 2 tutorial script, as written: the Sequence at top level, fit_generator at
# module level, no main guard, on_epoch_end reshuffling. Each __getitem__ logs the
# sample ids it served (with the epoch, which reaches the workers through the
# loader's per-epoch source update) so the test can check every sample once per
# epoch, from whichever worker process.
KERAS2_SCRIPT = """
import os, sys, time
import numpy as np
import keras
from stoker.adapters.keras import Sequential

LOG = sys.argv[1]
N, BS = 48, 8

class Samples(keras.utils.Sequence):
    def __init__(self):
        super().__init__()
        rng = np.random.default_rng(0)
        self.x = rng.random((N, 8)).astype("float32")
        self.y = (self.x.sum(axis=1) > 4).astype("float32")
        self.order = np.arange(N)
        self.epoch = 0

    def __len__(self):
        return N // BS

    def __getitem__(self, i):
        time.sleep(0.02)  # a read: the training waits, so every worker starts
        ids = self.order[i * BS:(i + 1) * BS]
        with open(LOG, "a") as f:
            f.write(f"{self.epoch} {os.getpid()} {' '.join(map(str, ids))}\\n")
        return self.x[ids], self.y[ids]

    def on_epoch_end(self):
        np.random.shuffle(self.order)
        self.epoch += 1

model = Sequential([keras.Input((8,)), keras.layers.Dense(1, activation="sigmoid")])
model.compile("sgd", "binary_crossentropy")
MODE = sys.argv[2] == "processes"
model.fit_generator(Samples(), epochs=3, use_multiprocessing=MODE, workers=6, verbose=0)
print("done", os.getpid())
"""


def run_script(tmp_path: Path, code: str, *args: str, **env: str):
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(code))
    full_env = {**os.environ, "KERAS_BACKEND": "torch", **env}
    full_env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT), full_env.get("PYTHONPATH", "")]
    )
    return subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        timeout=240,
        env=full_env,
        cwd=tmp_path,
    )


def served(log: Path) -> dict[int, list[int]]:
    by_epoch: dict[int, list[int]] = {}
    for line in log.read_text().splitlines():
        epoch, _pid, *ids = map(int, line.split())
        by_epoch.setdefault(epoch, []).extend(ids)
    return by_epoch


@pytest.mark.keras
@pytest.mark.parametrize("mode", ["threads", "processes"])
def test_an_unguarded_keras2_script_runs_as_written(tmp_path, mode):
    pytest.importorskip("keras")
    log = tmp_path / "served.log"
    out = run_script(tmp_path, KERAS2_SCRIPT, str(log), mode)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "bootstrapping phase" not in out.stderr
    by_epoch = served(log)
    assert sorted(by_epoch) == [0, 1, 2]
    for ids in by_epoch.values():
        assert sorted(ids) == list(range(48))  # every sample once per epoch
    assert by_epoch[0] != by_epoch[1]  # on_epoch_end's reshuffle reached the workers
    if mode == "processes":
        pids = {int(line.split()[1]) for line in log.read_text().splitlines()}
        assert len(pids) >= 2 and int(out.stdout.split()[1]) not in pids


LIGHT_UNGUARDED = """
import numpy as np
import stoker

class Batches:
    def __len__(self):
        return 4
    def __getitem__(self, i):
        return np.full(3, i)

loader = stoker.Loader(Batches(), workers=2, use_multiprocessing=True)
print(sum(int(b[0]) for b in loader))
"""


def test_an_unguarded_script_runs_on_fork_the_default(tmp_path):
    out = run_script(tmp_path, LIGHT_UNGUARDED)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ["6"]


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_a_start_method_that_reimports_refuses_an_unguarded_script(tmp_path, method):
    out = run_script(tmp_path, LIGHT_UNGUARDED, STOKER_START_METHOD=method)
    assert out.returncode != 0
    assert "ConfigError" in out.stderr
    # The line that starts the workers: the first iteration, not the constructor.
    assert "train.py, line 12, starts process workers at module level" in out.stderr
    assert 'if __name__ == "__main__":' in out.stderr
    assert "bootstrapping phase" not in out.stderr  # no worker ever started
    assert out.stderr.count("Traceback") == 1


DIES_WHILE_STARTING = """
import numpy as np
import stoker

if __name__ == "__mp_main__":
    raise SystemExit(3)  # a script whose import fails in a spawned worker

class Batches:
    def __len__(self):
        return 4
    def __getitem__(self, i):
        return np.full(3, i)

if __name__ == "__main__":
    with stoker.Loader(Batches(), workers=2, use_multiprocessing=True,
                       start_method="spawn", timeout=60) as loader:
        try:
            list(loader)
        except stoker.WorkerCrashed as exc:
            print(exc)
"""


def test_a_worker_that_dies_while_starting_says_so_and_the_fix(tmp_path):
    out = run_script(tmp_path, DIES_WHILE_STARTING)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "died while starting, before it ran any batch" in out.stdout
    assert "exited with code 3" in out.stdout
    assert "start_method='fork'" in out.stdout


@pytest.mark.keras
def test_forked_workers_run_torch_on_one_thread():
    torch = pytest.importorskip("torch")
    import stoker
    from tests import sources_proc

    torch.set_num_threads(2)
    with stoker.Loader(
        sources_proc.TorchThreads(n=4), workers=2, use_multiprocessing=True, timeout=60
    ) as loader:
        threads = {int(b[0]) for b in loader}
    assert threads == {1}
    assert torch.get_num_threads() == 2  # the consumer's own setting is untouched
