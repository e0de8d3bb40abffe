"""Weights files: safetensors only, checked against their spec; a pickle is refused unread."""

from __future__ import annotations

import io
import json
import pickle

import pytest
import torch
from safetensors.torch import save as st_save

from bountytree.config import ROOT
from bountytree.models import weights
from bountytree.models.spec import load_spec

SPEC = load_spec((ROOT / "examples" / "cnn.json").read_bytes())


def _state():
    return {k: v.clone() for k, v in weights.load(weights.initial_weights(SPEC), SPEC).items()}


def test_round_trip_and_seeded_initial_weights():
    raw = weights.initial_weights(SPEC)
    assert raw == weights.initial_weights(SPEC)  # the spec's seed makes them reproducible
    model = weights.load_model(raw, SPEC)
    assert weights.to_bytes(model) == raw


class Boom:
    def __reduce__(self):
        return (exec, ("raise SystemExit('unpickled!')",))


def _pickled_state() -> bytes:
    buf = io.BytesIO()
    torch.save(_state(), buf)
    return buf.getvalue()


def _mutated(**changes) -> bytes:
    state = _state()
    for key, value in changes.items():
        key = key.replace("_", ".", 1)
        if value is None:
            del state[key]
        else:
            state[key] = value
    return st_save(state)


def _header(header: dict) -> bytes:
    raw = json.dumps(header).encode()
    return len(raw).to_bytes(8, "little") + raw


BAD = [
    (pickle.dumps(Boom()), "not a safetensors file"),
    (_pickled_state(), "not a safetensors file"),
    (b"", "not a safetensors file"),
    (b"\xff" * 64, "not a safetensors file"),
    (_mutated(**{"0_weight": torch.zeros(8, 1, 2, 2)}), "0.weight has shape [8, 1, 2, 2]"),
    (
        _mutated(**{"0_weight": torch.zeros(8, 1, 3, 3, dtype=torch.float64)}),
        "dtypes ['F64'] are not allowed",
    ),
    (_mutated(**{"4_bias": torch.full((10,), float("nan"))}), "4.bias contains NaN"),
    (_mutated(**{"4_bias": torch.full((10,), float("inf"))}), "4.bias contains NaN or infinity"),
    (_mutated(**{"4_bias": None}), "missing '4.bias'"),
    (_mutated(**{"9_weight": torch.zeros(2)}), "unexpected '9.weight'"),
    (st_save({**_state(), "pad": torch.zeros(100_000)}), "bytes, at most"),
    (json.dumps({"not": "weights"}).encode(), "not a safetensors file"),
    # dtypes the parser knows but torch cannot load (it would raise KeyError deep inside)
    (
        _header({"0.weight": {"dtype": "F6_E2M3", "shape": [1], "data_offsets": [0, 1]}}) + b"\0",
        "dtypes ['F6_E2M3'] are not allowed",
    ),
]
IDS = [
    "pickle-exploit",
    "torch-save",
    "empty",
    "garbage",
    "shape",
    "dtype",
    "nan",
    "inf",
    "missing-key",
    "extra-key",
    "oversized",
    "json",
    "exotic-dtype",
]


@pytest.mark.parametrize("raw,message", BAD, ids=IDS)
def test_bad_weights_are_refused_in_one_line(raw, message):
    with pytest.raises(weights.WeightsError) as err:
        weights.load(raw, SPEC, "weights")
    assert message in str(err.value) and "\n" not in str(err.value)
