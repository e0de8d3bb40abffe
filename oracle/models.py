"""The crypten models both parties build from a spec, and the weights party 1 gives them.

Both parties build the same `crypten.nn.Sequential` from the spec (same parameter names as
`spec.build_torch`), party 1 loads the weights and encrypts them. One change from the spec's own
layers, for fidelity: a BatchNorm layer is evaluated as the affine map it is in evaluation mode,
`x · s + t` with `s = γ / √(running_var + eps)` and `t = β − running_mean · s`, computed in
plaintext by party 1 from the public weights. CrypTen's own BatchNorm goes through an approximate
inverse square root, which can make a layer that is the identity in PyTorch change a score; one
multiplication and one addition are exact up to fixed-point rounding.
"""

from __future__ import annotations

import torch

from bountytree.spec import ModelSpec, layer_kwargs

from .crypten_import import crypten

nn = crypten.nn


class Affine(nn.Module):
    """x · weight + bias, with weight and bias shaped to broadcast over a batch."""

    def __init__(self, features: int, spatial: bool):
        super().__init__()
        shape = (features, 1, 1) if spatial else (features,)
        self.register_parameter("weight", torch.ones(shape))
        self.register_parameter("bias", torch.zeros(shape))

    def forward(self, x):
        return x * self.weight + self.bias


def build_crypten(spec: ModelSpec):
    """The spec as a crypten.nn.Sequential with the parameter names build_torch gives."""
    modules = []
    for layer in spec.layers:
        a = layer_kwargs(layer)
        if layer.type == "Flatten":
            modules.append(nn.Flatten(axis=1))
        elif layer.type == "Linear":
            modules.append(nn.Linear(a["in_features"], a["out_features"], bias=a["bias"]))
        elif layer.type == "Conv2d":
            modules.append(
                nn.Conv2d(
                    a["in_channels"],
                    a["out_channels"],
                    a["kernel_size"],
                    stride=a["stride"],
                    padding=a["padding"],
                    bias=a["bias"],
                )
            )
        elif layer.type == "MaxPool2d":
            modules.append(nn.MaxPool2d(a["kernel_size"], stride=a["stride"], padding=a["padding"]))
        elif layer.type == "AvgPool2d":
            modules.append(nn.AvgPool2d(a["kernel_size"], stride=a["stride"], padding=a["padding"]))
        elif layer.type in ("BatchNorm1d", "BatchNorm2d"):
            modules.append(Affine(a["num_features"], spatial=layer.type == "BatchNorm2d"))
        elif layer.type == "Dropout":
            modules.append(nn.Dropout(a["p"]))
        else:
            modules.append(getattr(nn, layer.type)())
    return nn.Sequential(*modules)


def crypten_state(spec: ModelSpec, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The weights for build_crypten's model: BatchNorm layers turned into their affine map."""
    out = {
        k: v
        for k, v in state.items()
        if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))
    }
    for i, layer in enumerate(spec.layers):
        if layer.type not in ("BatchNorm1d", "BatchNorm2d"):
            continue
        scale = state[f"{i}.weight"].double() / torch.sqrt(
            state[f"{i}.running_var"].double() + layer.args["eps"]
        )
        shift = state[f"{i}.bias"].double() - state[f"{i}.running_mean"].double() * scale
        shape = (-1, 1, 1) if layer.type == "BatchNorm2d" else (-1,)
        out[f"{i}.weight"], out[f"{i}.bias"] = (
            scale.float().reshape(shape),
            shift.float().reshape(shape),
        )
    return out
