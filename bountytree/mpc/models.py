"""The crypten models both parties build from a spec, and the weights party 1 gives them.

Both parties build the same `crypten.nn.Sequential` from the spec, each layer by its entry in
`bountytree/models/layers.py` (same parameter names as `spec.build_torch`); party 1 loads the
evaluation-mode weights (`spec.evaluation_state`: BatchNorm folded into `Affine`, an exact
multiplication and addition) and encrypts them.
"""

from __future__ import annotations

from typing import Any

import torch

from bountytree.models.layers import LAYERS, CryptenKit
from bountytree.models.spec import ModelSpec, evaluation_state, layer_kwargs

from .crypten_import import crypten

nn = crypten.nn
Module: Any = nn.Module  # crypten ships no types


class Affine(Module):
    """x · weight + bias, with weight and bias shaped to broadcast over a batch."""

    def __init__(self, features: int, spatial: bool):
        super().__init__()
        shape = (features, 1, 1) if spatial else (features,)
        self.register_parameter("weight", torch.ones(shape))
        self.register_parameter("bias", torch.zeros(shape))

    def forward(self, x):
        return x * self.weight + self.bias


class _Kit(CryptenKit):
    nn = crypten.nn

    def affine(self, features: int, spatial: bool) -> Affine:
        return Affine(features, spatial)


KIT = _Kit()


def build_crypten(spec: ModelSpec):
    """The spec as a crypten.nn.Sequential with the parameter names build_torch gives."""
    return nn.Sequential(
        *(LAYERS[layer.type].crypten(KIT, layer_kwargs(layer)) for layer in spec.layers)
    )


def crypten_state(spec: ModelSpec, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The weights for build_crypten's model (the evaluation-mode weights)."""
    return evaluation_state(spec, state)
