"""The crypten models both parties build: the torch builder's parameter names, and BatchNorm as
the affine map it is in evaluation mode (plaintext check; the two-party check is in test_oracle)."""

from __future__ import annotations

import json

import pytest
import torch

from bountytree.config import ROOT
from bountytree.spec import build_torch, parse_spec
from oracle.models import build_crypten, crypten_state

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
