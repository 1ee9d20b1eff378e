"""The sweep's grid, its trials' keys, and stoker.param inside and outside a sweep."""

from __future__ import annotations

import json

import pytest

import stoker
from stoker import ConfigError
from stoker.sweep import parse_grid, trials
from stoker.track import get_run
from stoker.track._sweeps import sweep_tags
from stoker.track.api import PARAMS_ENV, SWEEP_ENV, TRIAL_ENV


def test_values_are_json_when_they_parse_and_text_otherwise():
    grid = parse_grid(
        ["workers=1,2,4", "use_multiprocessing=false,true", "opt=adam,sgd"]
    )
    assert grid == {
        "workers": [1, 2, 4],
        "use_multiprocessing": [False, True],
        "opt": ["adam", "sgd"],
    }


@pytest.mark.parametrize(
    "options, message",
    [
        (["workers"], "NAME=V1,V2"),
        (["=1,2"], "NAME=V1,V2"),
        (["workers="], "NAME=V1,V2"),
        (["workers=1", "workers=2"], "given twice"),
        (["workers=1,1"], "listed twice"),
        ([], "at least one --grid"),
    ],
)
def test_bad_grids_say_what_to_write(options, message):
    with pytest.raises(ConfigError, match=message):
        parse_grid(options)


def test_trials_are_the_product_times_repeat_with_stable_keys():
    got = trials({"workers": [1, 2], "mp": [False, True]}, repeat=2)
    assert [t.key for t in got] == [
        "workers=1,mp=false#1",
        "workers=1,mp=true#1",
        "workers=2,mp=false#1",
        "workers=2,mp=true#1",
        "workers=1,mp=false#2",
        "workers=1,mp=true#2",
        "workers=2,mp=false#2",
        "workers=2,mp=true#2",
    ]
    with pytest.raises(ConfigError, match="repeat"):
        trials({"a": [1]}, repeat=0)


def test_param_outside_a_sweep_is_the_default(monkeypatch):
    monkeypatch.delenv(PARAMS_ENV, raising=False)
    monkeypatch.delenv(SWEEP_ENV, raising=False)
    assert stoker.param("workers", default=3) == 3
    assert stoker.param("missing") is None
    assert sweep_tags() == {}


def test_param_inside_a_sweep_converts_to_the_defaults_type(monkeypatch):
    monkeypatch.setenv(
        PARAMS_ENV,
        json.dumps({"workers": 4, "lr": 1, "mp": "true", "flag": 1, "name": 7}),
    )
    assert stoker.param("workers", default=1) == 4
    assert stoker.param("lr", default=0.1) == 1.0
    assert isinstance(stoker.param("lr", default=0.1), float)
    assert stoker.param("mp", default=False) is True
    assert stoker.param("flag", default=False) is True
    assert stoker.param("name", default="x") == "7"
    assert stoker.param("absent", default=2) == 2
    monkeypatch.setenv(PARAMS_ENV, json.dumps({"workers": "many"}))
    with pytest.raises(ValueError, match="cannot be read as int"):
        stoker.param("workers", default=1)
    monkeypatch.setenv(PARAMS_ENV, "[1, 2]")
    with pytest.raises(ValueError, match="JSON object"):
        stoker.param("workers", default=1)


def test_a_tracked_run_in_a_trial_records_the_sweep(monkeypatch, tmp_path):
    monkeypatch.setenv(PARAMS_ENV, json.dumps({"workers": 2, "lr": 0.5}))
    monkeypatch.setenv(SWEEP_ENV, "s1")
    monkeypatch.setenv(TRIAL_ENV, "workers=2#1")
    store = tmp_path / "s.db"
    with stoker.track("t", {"lr": 0.1}, store, capture=False, sample=False) as run:
        pass
    got = get_run(run.id, store)
    assert got["params"] == {"workers": 2, "lr": 0.1}  # the script's own params win
    assert got["tags"] == {"sweep": "s1", "sweep_trial": "workers=2#1"}
