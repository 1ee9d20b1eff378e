"""shard_from_env reads the launchers' variables, never imports a framework."""

from __future__ import annotations

import sys

import pytest

import stoker


def test_env_pairs_in_order():
    assert stoker.shard_from_env({"RANK": "2", "WORLD_SIZE": "4"}) == (2, 4)
    assert stoker.shard_from_env({"SLURM_PROCID": "1", "SLURM_NTASKS": "3"}) == (1, 3)
    both = {"RANK": "0", "WORLD_SIZE": "2", "SLURM_PROCID": "5", "SLURM_NTASKS": "8"}
    assert stoker.shard_from_env(both) == (0, 2)
    assert stoker.shard_from_env(
        {"OMPI_COMM_WORLD_RANK": "1", "OMPI_COMM_WORLD_SIZE": "2"}
    ) == (1, 2)


def test_single_process_is_none():
    assert stoker.shard_from_env({}) is None
    assert stoker.shard_from_env({"RANK": "0", "WORLD_SIZE": "1"}) is None


def test_malformed_values_say_what_is_wrong():
    with pytest.raises(stoker.ConfigError, match="whole numbers"):
        stoker.shard_from_env({"RANK": "x", "WORLD_SIZE": "2"})
    with pytest.raises(stoker.ConfigError, match="not within"):
        stoker.shard_from_env({"RANK": "2", "WORLD_SIZE": "2"})


def test_does_not_import_frameworks(monkeypatch):
    monkeypatch.delitem(sys.modules, "jax", raising=False)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    had_torch = "torch" in sys.modules
    # torch.distributed is not initialised in tests, so the variables answer.
    assert stoker.shard_from_env() == (1, 2)
    assert ("torch" in sys.modules) == had_torch
    assert "jax" not in sys.modules
