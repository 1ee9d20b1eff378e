"""DDP: two torch.distributed processes (gloo, 127.0.0.1) each train on their shard."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

pytestmark = pytest.mark.timeout(120)
ROOT = Path(__file__).resolve().parents[2]

# One rank, as torchrun would start it (RANK, WORLD_SIZE, MASTER_ADDR/PORT set).
RANK_SCRIPT = """
import json, os, sys
import torch, torch.distributed as dist
import stoker
from stoker.adapters.torch import TorchLoader
from tests import sources

dist.init_process_group("gloo")
torch.manual_seed(0)
model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(4, 1))
opt = torch.optim.SGD(model.parameters(), lr=0.01)
shard = stoker.shard_from_env()
loader = stoker.Loader(sources.Indexed(n=24), workers=2, shuffle=True, seed=5,
                       shard=shard)
seen = {}
with TorchLoader(loader, device="cpu") as batches:
    for epoch in range(2):
        batches.set_epoch(epoch)
        seen[epoch] = []
        for x, noise in batches:
            seen[epoch].append(int(x[0]))
            loss = model(noise.reshape(1, 4)).pow(2).mean()
            opt.zero_grad()
            loss.backward()  # DDP all-reduces the gradients over gloo here
            opt.step()
gathered = [None, None]
dist.all_gather_object(gathered, {"shard": shard, "len": len(batches), "seen": seen})
weights = [p.detach().clone() for p in model.parameters()]
for w in weights:
    copy = w.clone()
    dist.broadcast(copy, 0)
    assert torch.equal(copy, w), "ranks drifted apart"
if dist.get_rank() == 0:
    with open(sys.argv[1], "w") as f:
        json.dump(gathered, f)
dist.destroy_process_group()
# gloo's C++ threads sometimes abort the interpreter's exit ("terminate called without
# an active exception", about one run in three here, after the loader closed): the
# results are written, so leave without running the C++ destructors.
sys.stdout.flush()
os._exit(0)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_ranks_see_disjoint_shards_that_cover_every_batch(tmp_path):
    out = tmp_path / "ranks.json"
    base = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()))
    base["WORLD_SIZE"] = "2"
    base["PYTHONPATH"] = str(ROOT)
    ranks = [
        subprocess.Popen(
            [sys.executable, "-c", RANK_SCRIPT, str(out)],
            env=dict(base, RANK=str(r), LOCAL_RANK=str(r)),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for r in range(2)
    ]
    try:
        logs = [p.communicate(timeout=100)[0] for p in ranks]
    finally:
        for p in ranks:
            if p.poll() is None:
                p.kill()
                p.wait(10)
    assert [p.returncode for p in ranks] == [0, 0], "\n".join(logs)[-3000:]
    gathered = json.loads(out.read_text())
    assert [g["shard"] for g in gathered] == [[0, 2], [1, 2]]
    assert [g["len"] for g in gathered] == [12, 12]
    for epoch in ("0", "1"):
        a, b = (g["seen"][epoch] for g in gathered)
        assert not set(a) & set(b)
        assert sorted(a + b) == list(range(24))
    assert gathered[0]["seen"]["0"] != gathered[0]["seen"]["1"]  # reshuffled
