"""The crypten models both parties build: the torch builder's parameter names, and BatchNorm as
the affine map it is in evaluation mode (plaintext check; the two-party check is in test_oracle)."""

from __future__ import annotations

import json

import pytest
import torch

from bountytree.config import ROOT
from bountytree.models.datasets import InputBox
from bountytree.models.spec import build_torch, parse_spec
from bountytree.mpc.models import build_crypten, crypten_state

BN = {
    "input_shape": [1, 8, 8],
    "num_classes": 3,
    "training": {"lr": 0.1},
    "layers": [
        {"type": "Conv2d", "in_channels": 1, "out_channels": 4, "kernel_size": 3, "padding": 1},
        {"type": "BatchNorm2d", "num_features": 4},
        {"type": "ReLU"},
        {"type": "Flatten"},
        {"type": "BatchNorm1d", "num_features": 256},
        {"type": "Linear", "in_features": 256, "out_features": 3},
    ],
}


@pytest.mark.parametrize("name", ["mlp.json", "cnn.json"])
def test_crypten_models_have_the_torch_parameter_names(name):
    spec = parse_spec(json.loads((ROOT / "examples" / name).read_text()))
    state = build_torch(spec).state_dict()
    params = {k: tuple(v.shape) for k, v in build_crypten(spec).named_parameters()}
    assert params == {k: tuple(v.shape) for k, v in crypten_state(spec, state).items()}


def test_batchnorm_becomes_its_affine_map():
    spec = parse_spec(BN)
    model = build_torch(spec).eval()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for i in (1, 4):
            bn = model[i]
            bn.running_mean.copy_(torch.randn(bn.num_features, generator=g))
            bn.running_var.copy_(torch.rand(bn.num_features, generator=g) * 1e4 + 1e-4)
            bn.weight.copy_(torch.randn(bn.num_features, generator=g))
    state = crypten_state(spec, model.state_dict())
    x = torch.randn(5, 1, 8, 8, generator=g)
    with torch.no_grad():
        h = model[0](x) * state["1.weight"] + state["1.bias"]
        h = model[3](model[2](h)) * state["4.weight"] + state["4.bias"]
        assert torch.allclose(model[5](h), model(x), rtol=1e-4, atol=1e-4)


# ── the fixed-point range: a sound bound on every value a model can output ──


def _trained(name: str):
    from bountytree.models import weights
    from bountytree.models.training import fit
    from demo.sample_data import digits

    spec = parse_spec(json.loads((ROOT / "examples" / name).read_text()))
    model = weights.load_model(weights.initial_weights(spec), spec)
    fit(model, spec, digits())
    return spec, model.eval()


@pytest.mark.parametrize("name", ["mlp.json", "cnn.json"])
def test_honest_example_models_are_far_inside_the_range(name):
    """The examples, initial and trained on all of digits (inputs in [0, 1]), and even on
    inputs in [0, 16]: their worst-case bound stays orders of magnitude below the limit."""
    from bountytree.models.bounds import SAFE_LIMIT, value_bound, within_range

    spec, model = _trained(name)
    initial = build_torch(spec).state_dict()
    for state in (initial, model.state_dict()):
        fits, bound = within_range(spec, state, _box(spec, 0.0, 1.0))
        assert fits and bound < SAFE_LIMIT / 1000, bound
    assert value_bound(spec, model.state_dict(), _box(spec, 0.0, 16.0)) < SAFE_LIMIT / 100


@pytest.mark.parametrize("name", ["mlp.json", "cnn.json"])
def test_the_bound_holds_for_every_input_in_the_range(name):
    """Soundness, sampled: random and corner inputs in [0, 1] never produce a value (any layer,
    logits included) above the bound."""
    from bountytree.models.bounds import value_bound

    spec, model = _trained(name)
    bound = value_bound(spec, model.state_dict(), _box(spec, 0.0, 1.0))
    g = torch.Generator().manual_seed(3)
    x = torch.cat(
        [
            torch.rand(2000, *spec.input_shape, generator=g),
            torch.randint(0, 2, (2000, *spec.input_shape), generator=g).float(),
        ]
    )
    largest = 0.0
    with torch.no_grad():
        h = x
        for layer in model:
            h = layer(h)
            largest = max(largest, float(h.abs().max()))
    assert largest <= bound


def test_batchnorm_layers_are_bounded_as_the_affine_map_the_session_evaluates():
    from bountytree.models.bounds import value_bound

    spec = parse_spec(BN)
    model = build_torch(spec).eval()
    with torch.no_grad():
        model[1].running_var.fill_(1e-10)  # a scale of 1/√eps ≈ 316 on the conv's outputs
        model[1].weight.fill_(-1.0)  # negative: the interval flips
    state = model.state_dict()
    x = torch.rand(500, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        after_bn = model[1](model[0](x)).abs().max()
    bound = value_bound(spec, state, _box(spec, 0.0, 1.0))
    assert float(after_bn) > 300 and bound >= float(after_bn)


@pytest.mark.parametrize("scale", [1e5, 1e7])
def test_crafted_large_logits_are_out_of_range(scale):
    """The trained MLP with its last layer multiplied: its logits leave the range."""
    from bountytree.models.bounds import SAFE_LIMIT, within_range

    spec, model = _trained("mlp.json")
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["2.weight"] *= scale
    state["2.bias"] *= scale
    fits, bound = within_range(spec, state, _box(spec, 0.0, 1.0))
    assert not fits and bound > SAFE_LIMIT


def _box(spec, low: float, high: float) -> InputBox:
    """Every feature in one [low, high]."""
    return InputBox((low,) * spec.num_features, (high,) * spec.num_features)


def test_a_new_layer_type_is_one_entry(monkeypatch):
    """Hardtanh, added as one entry of the layer table and nothing else: the spec accepts it, the
    torch model, the CrypTen model and the bound all follow from the entry."""
    from bountytree.models.bounds import value_bound
    from bountytree.models.layers import LAYERS, LayerType

    entry = LayerType(
        args={},
        shape=lambda where, a, shape: shape,
        crypten=lambda kit, a: kit.nn.Hardtanh(),
        bound=lambda a, w, x: (x[0].clamp(-1, 1), x[1].clamp(-1, 1)),  # monotone, into [-1, 1]
    )
    monkeypatch.setitem(LAYERS, "Hardtanh", entry)
    spec = parse_spec(
        {
            "input_shape": [4],
            "num_classes": 2,
            "layers": [
                {"type": "Linear", "in_features": 4, "out_features": 8},
                {"type": "Hardtanh"},
                {"type": "Linear", "in_features": 8, "out_features": 2},
            ],
            "training": {"lr": 0.1},
        }
    )
    model = build_torch(spec).eval()
    params = {k: tuple(v.shape) for k, v in build_crypten(spec).named_parameters()}
    assert params == {k: tuple(v.shape) for k, v in model.state_dict().items()}
    box = _box(spec, -1000.0, 1000.0)
    bound = value_bound(spec, model.state_dict(), box)
    first = (model[0].bias.double().abs() + 1000.0 * model[0].weight.double().abs().sum(1)).max()
    assert bound == pytest.approx(float(first))  # Hardtanh's [-1, 1] keeps the logits small
