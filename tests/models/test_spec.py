"""Model specs: the examples validate and build identically in torch and CrypTen; every malformed
spec is refused with a message naming the field."""

from __future__ import annotations

import copy
import json

import pytest

from bountytree.config import ROOT
from bountytree.models.spec import MAX_SPEC_BYTES, SpecError, build_torch, load_spec, parse_spec

MLP = json.loads((ROOT / "examples" / "mlp.json").read_text())
CNN = json.loads((ROOT / "examples" / "cnn.json").read_text())


@pytest.mark.parametrize("base", [MLP, CNN], ids=["mlp", "cnn"])
def test_examples_build_the_tensors_they_declare(base):
    spec = parse_spec(base)
    torch_state = build_torch(spec).state_dict()
    assert {k: tuple(v.shape) for k, v in torch_state.items()} == spec.tensors
    assert parse_spec(json.loads(spec.to_bytes())) == spec  # round trip


def test_batchnorm_dropout_avgpool_spec():
    spec = parse_spec(
        {
            "input_shape": [1, 8, 8],
            "num_classes": 3,
            "training": {"lr": 0.1},
            "layers": [
                {
                    "type": "Conv2d",
                    "in_channels": 1,
                    "out_channels": 4,
                    "kernel_size": [3, 3],
                    "padding": 1,
                },
                {"type": "BatchNorm2d", "num_features": 4},
                {"type": "ReLU"},
                {"type": "AvgPool2d", "kernel_size": 2},
                {"type": "Flatten"},
                {"type": "Dropout", "p": 0.2},
                {"type": "Linear", "in_features": 64, "out_features": 8},
                {"type": "BatchNorm1d", "num_features": 8},
                {"type": "Linear", "in_features": 8, "out_features": 3},
            ],
        }
    )
    assert set(build_torch(spec).state_dict()) == set(spec.tensors)
    assert spec.num_params == 4 * 9 + 4 + 8 + 64 * 8 + 8 + 16 + 8 * 3 + 3


def _with(base, path, value):
    data = copy.deepcopy(base)
    target = data
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return data


_DELETE = "<deleted>"  # a marker with a stable test id
BAD = [
    (["format"], "bountytree/model@2", "format"),
    (["input_shape"], [], "input_shape"),
    (["input_shape"], [64, "x"], "input_shape[1]"),
    (["input_shape"], [1, 2, 3, 4], "input_shape"),
    (["num_classes"], 1, "num_classes"),
    (["num_classes"], True, "num_classes"),
    (["num_classes"], _DELETE, "num_classes: missing"),
    (["layers"], [], "layers"),
    (["layers", 0, "type"], "Sequential", "layers[0].type"),
    (["layers", 0, "type"], "__import__('os').system", "layers[0].type"),
    (["layers", 0, "in_features"], 63, "layers[0] (Linear).in_features"),
    (["layers", 0, "in_features"], -1, "layers[0] (Linear).in_features"),
    (["layers", 0, "bias"], "yes", "layers[0] (Linear).bias"),
    (["layers", 0, "activation"], "relu", "unknown field 'activation'"),
    (["layers", 2, "out_features"], 9, "expected [10]"),
    (["layers", 1], {"type": "Dropout", "p": 1.5}, "layers[1] (Dropout).p"),
    (["layers", 1], "ReLU", "layers[1]"),
    (["training"], _DELETE, "training: missing"),
    (["training", "optimizer"], "lbfgs", "training.optimizer"),
    (["training", "lr"], 0, "training.lr"),
    (["training", "lr"], float("nan"), "training.lr"),
    (["training", "batch_size"], 0, "training.batch_size"),
    (["training", "epochs"], 1.5, "training.epochs"),
    (["training", "seed"], -1, "training.seed"),
    (["training", "schedule"], "cosine", "unknown field 'schedule'"),
    (["init_weights"], "not-a-cid", "init_weights"),
    (["code"], "print(1)", "unknown field 'code'"),
]


@pytest.mark.parametrize(
    "path,value,message", BAD, ids=[f"{'.'.join(map(str, p))}={v!r}"[:40] for p, v, _ in BAD]
)
def test_malformed_spec_names_the_field(path, value, message):
    with pytest.raises(SpecError) as err:
        parse_spec(_with(MLP, path, value))
    assert message in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "layers,message",
    [
        ([{"type": "Linear", "in_features": 64, "out_features": 10}], "needs a flat input"),
        (
            [{"type": "Conv2d", "in_channels": 3, "out_channels": 4, "kernel_size": 3}],
            "in_channels",
        ),
        (
            [{"type": "Conv2d", "in_channels": 1, "out_channels": 4, "kernel_size": 9}],
            "does not fit",
        ),
        ([{"type": "MaxPool2d", "kernel_size": 2, "padding": 2}], "padding"),
        ([{"type": "Flatten"}, {"type": "BatchNorm2d", "num_features": 64}], "BatchNorm2d"),
        (
            [
                {"type": "Flatten"},
                {"type": "Linear", "in_features": 64, "out_features": 4096},
                {"type": "Linear", "in_features": 4096, "out_features": 4096},
                {"type": "Linear", "in_features": 4096, "out_features": 10},
            ],
            "parameters, at most",
        ),
    ],
)
def test_shapes_are_followed_through_the_layers(layers, message):
    with pytest.raises(SpecError, match=message):
        parse_spec({**CNN, "layers": layers})


@pytest.mark.parametrize(
    "raw,message",
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (b" " * (MAX_SPEC_BYTES + 1), "bytes, at most"),
    ],
)
def test_unreadable_spec_files(raw, message):
    with pytest.raises(SpecError, match=message):
        load_spec(raw, "SPEC.json")


def test_a_spec_whose_activations_would_exhaust_memory_is_refused():
    """Few parameters, enormous outputs: 1x1 convolutions with padding 64 grow an 8x8 input to
    1800x1800 per channel. Refused on the layer that crosses MAX_ACTIVATIONS."""
    layers = [
        {"type": "Conv2d", "in_channels": 1, "out_channels": 1, "kernel_size": 1, "padding": 64}
    ] * 3
    spec = {
        "input_shape": [1, 8, 8],
        "num_classes": 2,
        "training": {"lr": 0.1},
        "layers": [
            *layers,
            {"type": "AvgPool2d", "kernel_size": 64},
            {"type": "Flatten"},
            {"type": "Linear", "in_features": 36, "out_features": 2},
        ],
    }
    with pytest.raises(
        SpecError, match=r"layers\[2\] \(Conv2d\): outputs 153664 values per row, at most 131072"
    ):
        parse_spec(spec)


def test_a_convolution_that_unfolds_beyond_the_limit_is_refused():
    """Counting computes a convolution as an unfolding (models/counting.py): 256 channels, a
    32 × 32 kernel and padding 32 on an 8 × 8 input unfold to 1.8 GB a row (the fourth attacker
    review had a process killed on 8 rows)."""
    spec = json.loads((ROOT / "examples" / "cnn.json").read_text())
    spec["input_shape"] = [256, 8, 8]
    spec["layers"] = [
        {"type": "Conv2d", "in_channels": 256, "out_channels": 1, "kernel_size": 32, "padding": 32},
        {"type": "Flatten"},
        {"type": "Linear", "in_features": 1681, "out_features": 2},
    ]
    spec["num_classes"] = 2
    with pytest.raises(SpecError, match=r"unfolds to .* values per row"):
        parse_spec(spec)
