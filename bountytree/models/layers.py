"""The layer types a spec may use: one entry each, and everything that follows from a type.

Every part that handles a layer reads this table: the spec (its arguments and how it changes the
shape), PyTorch (how it is built for training, replay and inference), CrypTen (how the oracle's
two parties evaluate it, given the `crypten.nn` namespace by the oracle, since the core never
imports CrypTen), the evaluation-mode weights the parties use (BatchNorm folded into its affine
map), and the sound interval bound on its outputs (`bounds.py`, run by the trainer before it
stakes and by the oracle before it scores). A layer's cost needs no entry: operations are
counted by PyTorch's FLOP counter on the module this table builds (`flops.py`).

Adding a layer type is one entry here and its tests. Each type must exist with the same meaning
in `torch.nn` and `crypten.nn`, hold only float weights, and keep its output bounded by an
interval computed from its input's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bountytree.models.fields import (
    DIM,
    KERNEL,
    PADDING,
    Arg,
    SpecError,
    bool_field,
    fraction,
    positive_fraction,
    required,
)
from bountytree.models.fixedpoint import on_grid

if TYPE_CHECKING:
    import torch

Shape = tuple[int, ...]
Tensors = dict[str, "torch.Tensor"]
Interval = tuple["torch.Tensor", "torch.Tensor"]
# A layer's interval map: (its arguments, its weights, the input interval) -> the output's.
Bound = Callable[[dict[str, Any], Tensors, Interval], Interval]

# Buffers that evaluation does not use once a layer is folded (BatchNorm's statistics).
BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


class CryptenKit:
    """What a layer's CrypTen builder may use: the `crypten.nn` namespace and the oracle's exact
    affine map (the oracle supplies both; see `bountytree/mpc/models.py`)."""

    nn: Any

    def affine(self, features: int, spatial: bool) -> Any:
        raise NotImplementedError


@dataclass(frozen=True)
class LayerType:
    """One allowed layer. `shape` maps the input shape to the output shape (raising SpecError
    with the field at fault); `tensors` gives the layer's parameter and buffer shapes (names as
    in its torch module); `crypten` builds the module both parties evaluate; `fold` turns the
    trained weights into those `crypten` evaluates; `bound` maps an interval holding every input
    to one holding every output, with the folded weights."""

    args: Mapping[str, Arg]
    shape: Callable[[str, dict[str, Any], Shape], Shape]
    crypten: Callable[[CryptenKit, dict[str, Any]], Any]
    bound: Bound
    tensors: Callable[[dict[str, Any]], dict[str, Shape]] = field(default=lambda a: {})
    fold: Callable[[dict[str, Any], Tensors], Tensors] | None = None
    # Whether the custodians can train it on secret shares (a private task's architectures use
    # only such layers): not BatchNorm (its statistics would be revealed or need a secure
    # division per step), not Dropout (its mask needs randomness neither custodian knows), not
    # MaxPool2d (not measured yet).
    private: bool = True

    def kwargs(self, args: dict[str, Any]) -> dict[str, Any]:
        """Constructor arguments for torch.nn and crypten.nn (pooling's stride defaults to its
        kernel size)."""
        a = dict(args)
        if "stride" in a and a["stride"] is None:
            a["stride"] = a["kernel_size"]
        return a


# ── shapes ──


def _out_side(side: int, kernel: int, stride: int, padding: int, where: str) -> int:
    out = (side + 2 * padding - kernel) // stride + 1
    if out < 1:
        raise SpecError(
            f"{where}: kernel {kernel} does not fit an input of side {side} with padding {padding}"
        )
    return out


def _image(where: str, shape: Shape) -> None:
    if len(shape) != 3:
        raise SpecError(
            f"{where}: needs input of shape [channels, height, width], gets {list(shape)}"
        )


def _linear_shape(where: str, a: dict[str, Any], shape: Shape) -> Shape:
    if len(shape) != 1:
        raise SpecError(f"{where}: needs a flat input but gets shape {list(shape)} (add a Flatten)")
    if a["in_features"] != shape[0]:
        raise SpecError(
            f"{where}.in_features: is {a['in_features']} but its input has {shape[0]} features"
        )
    return (a["out_features"],)


def _conv_shape(where: str, a: dict[str, Any], shape: Shape) -> Shape:
    _image(where, shape)
    if a["in_channels"] != shape[0]:
        raise SpecError(
            f"{where}.in_channels: is {a['in_channels']} but its input has {shape[0]} channels"
        )
    k, s, p = a["kernel_size"], a["stride"], a["padding"]
    return (
        a["out_channels"],
        _out_side(shape[1], k, s, p, where),
        _out_side(shape[2], k, s, p, where),
    )


def _pool_shape(where: str, a: dict[str, Any], shape: Shape) -> Shape:
    _image(where, shape)
    k, p = a["kernel_size"], a["padding"]
    s = a["stride"] or k
    if 2 * p > k:
        raise SpecError(f"{where}.padding: {p} is more than half the kernel size {k}")
    return (shape[0], _out_side(shape[1], k, s, p, where), _out_side(shape[2], k, s, p, where))


def _batchnorm_shape(rank: int) -> Callable[[str, dict[str, Any], Shape], Shape]:
    def check(where: str, a: dict[str, Any], shape: Shape) -> Shape:
        if len(shape) != rank:
            raise SpecError(
                f"{where}: needs a {'flat' if rank == 1 else '[C, H, W]'} input, gets {list(shape)}"
            )
        if a["num_features"] != shape[0]:
            raise SpecError(
                f"{where}.num_features: is {a['num_features']} but its input has {shape[0]}"
            )
        return shape

    return check


def _same(where: str, a: dict[str, Any], shape: Shape) -> Shape:
    return shape


def _flat(where: str, a: dict[str, Any], shape: Shape) -> Shape:
    return (math.prod(shape),)


# ── bounds (float64 intervals; centre ± radius through the affine layers) ──


def _linear_bound(a: dict[str, Any], w: Tensors, x: Interval) -> Interval:
    import torch.nn.functional as F

    lo, hi = x
    centre, radius = (hi + lo) / 2, (hi - lo) / 2
    weight, bias = w["weight"].double(), (w["bias"].double() if "bias" in w else None)
    mid, spread = F.linear(centre, weight, bias), F.linear(radius, weight.abs())
    return mid - spread, mid + spread


def _conv_bound(a: dict[str, Any], w: Tensors, x: Interval) -> Interval:
    import torch.nn.functional as F

    lo, hi = x
    centre, radius = (hi + lo) / 2, (hi - lo) / 2
    weight, bias = w["weight"].double(), (w["bias"].double() if "bias" in w else None)
    conv = {"stride": a["stride"], "padding": a["padding"]}
    mid, spread = F.conv2d(centre, weight, bias, **conv), F.conv2d(radius, weight.abs(), **conv)
    return mid - spread, mid + spread


def _affine_bound(a: dict[str, Any], w: Tensors, x: Interval) -> Interval:
    import torch

    lo, hi = x
    scale, shift = w["weight"].double().unsqueeze(0), w["bias"].double().unsqueeze(0)
    return (
        torch.minimum(lo * scale, hi * scale) + shift,
        torch.maximum(lo * scale, hi * scale) + shift,
    )


def _relu_bound(a: dict[str, Any], w: Tensors, x: Interval) -> Interval:
    return x[0].clamp(min=0), x[1].clamp(min=0)


def _pool_bound(kind: str) -> Bound:
    def bound(a: dict[str, Any], w: Tensors, x: Interval) -> Interval:
        import torch.nn.functional as F

        pool = F.max_pool2d if kind == "max" else F.avg_pool2d
        args = {"kernel_size": a["kernel_size"], "stride": a["stride"], "padding": a["padding"]}
        return pool(x[0], **args), pool(x[1], **args)

    return bound


def _flatten_bound(a: dict[str, Any], w: Tensors, x: Interval) -> Interval:
    return x[0].flatten(1), x[1].flatten(1)


def _identity_bound(a: dict[str, Any], w: Tensors, x: Interval) -> Interval:
    return x  # Dropout is the identity in evaluation


# ── BatchNorm: evaluated as the affine map it is in evaluation mode ──


def _fold_batchnorm(rank: int) -> Callable[[dict[str, Any], Tensors], Tensors]:
    """x · s + t with s = γ / √(running_var + eps), t = β − running_mean · s, computed in float64
    from the weights. CrypTen's own BatchNorm goes through an approximate inverse square root,
    which can make a layer that is the identity in PyTorch change a score; one multiplication and
    one addition are exact up to fixed-point rounding. Both are put on the 2^-16 grid here: they
    are what the secure evaluation encodes, and what the delivered model computes
    (`weights.load_evaluated`), so that encoding them changes nothing."""

    def fold(a: dict[str, Any], w: Tensors) -> Tensors:
        import torch

        scale = w["weight"].double() / torch.sqrt(w["running_var"].double() + a["eps"])
        shift = w["bias"].double() - w["running_mean"].double() * scale
        view = (-1, 1, 1) if rank == 3 else (-1,)
        return {
            "weight": on_grid(scale.float().reshape(view)),
            "bias": on_grid(shift.float().reshape(view)),
        }

    return fold


def _batchnorm_tensors(a: dict[str, Any]) -> dict[str, Shape]:
    n = (a["num_features"],)
    return {
        "weight": n,
        "bias": n,
        "running_mean": n,
        "running_var": n,
        "num_batches_tracked": (),
    }


def _weighted(
    weight: Callable[[dict[str, Any]], Shape], out: str
) -> Callable[[dict[str, Any]], dict[str, Shape]]:
    def tensors(a: dict[str, Any]) -> dict[str, Shape]:
        return {"weight": weight(a), **({"bias": (a[out],)} if a["bias"] else {})}

    return tensors


_POOL_ARGS = {
    "kernel_size": required(KERNEL),
    "stride": Arg(KERNEL, None),
    "padding": Arg(PADDING, 0),
}
_BN_ARGS = {
    "num_features": required(DIM),
    "eps": Arg(positive_fraction, 1e-5),
    "momentum": Arg(fraction, 0.1),
}


def _batchnorm(rank: int) -> LayerType:
    return LayerType(
        args=_BN_ARGS,
        shape=_batchnorm_shape(rank),
        tensors=_batchnorm_tensors,
        crypten=lambda kit, a: kit.affine(a["num_features"], spatial=rank == 3),
        fold=_fold_batchnorm(rank),
        bound=_affine_bound,
        private=False,
    )


def _pool(kind: str, name: str) -> LayerType:
    return LayerType(
        private=kind == "avg",
        args=_POOL_ARGS,
        shape=_pool_shape,
        crypten=lambda kit, a: getattr(kit.nn, name)(
            a["kernel_size"], stride=a["stride"], padding=a["padding"]
        ),
        bound=_pool_bound(kind),
    )


# The table. Names are the classes of torch.nn (and crypten.nn) the spec's "type" names.
LAYERS: dict[str, LayerType] = {
    "Linear": LayerType(
        args={
            "in_features": required(DIM),
            "out_features": required(DIM),
            "bias": Arg(bool_field, True),
        },
        shape=_linear_shape,
        tensors=_weighted(lambda a: (a["out_features"], a["in_features"]), "out_features"),
        crypten=lambda kit, a: kit.nn.Linear(a["in_features"], a["out_features"], bias=a["bias"]),
        bound=_linear_bound,
    ),
    "Conv2d": LayerType(
        args={
            "in_channels": required(DIM),
            "out_channels": required(DIM),
            "kernel_size": required(KERNEL),
            "stride": Arg(KERNEL, 1),
            "padding": Arg(PADDING, 0),
            "bias": Arg(bool_field, True),
        },
        shape=_conv_shape,
        tensors=_weighted(
            lambda a: (a["out_channels"], a["in_channels"], a["kernel_size"], a["kernel_size"]),
            "out_channels",
        ),
        crypten=lambda kit, a: kit.nn.Conv2d(
            a["in_channels"],
            a["out_channels"],
            a["kernel_size"],
            stride=a["stride"],
            padding=a["padding"],
            bias=a["bias"],
        ),
        bound=_conv_bound,
    ),
    "ReLU": LayerType(
        args={}, shape=_same, crypten=lambda kit, a: kit.nn.ReLU(), bound=_relu_bound
    ),
    "MaxPool2d": _pool("max", "MaxPool2d"),
    "AvgPool2d": _pool("avg", "AvgPool2d"),
    "Flatten": LayerType(
        args={}, shape=_flat, crypten=lambda kit, a: kit.nn.Flatten(axis=1), bound=_flatten_bound
    ),
    "Dropout": LayerType(
        args={"p": Arg(fraction, 0.5)},
        shape=_same,
        crypten=lambda kit, a: kit.nn.Dropout(a["p"]),
        bound=_identity_bound,
        private=False,
    ),
    "BatchNorm1d": _batchnorm(1),
    "BatchNorm2d": _batchnorm(3),
}


def is_buffer(key: str) -> bool:
    """Whether a state-dict key names a buffer (running statistics), not a parameter."""
    return key.rsplit(".", 1)[-1] in BUFFERS
