"""Model specs (`bountytree/model@1`): a JSON description of a network that is validated field by
field and built into a `torch.nn.Sequential` or the equivalent `crypten.nn.Sequential`.

A spec is data, never code: each layer names a class from a fixed whitelist and gives plain
numbers for its constructor, every value is type- and range-checked, and the shapes are followed
through the layers so that a wrong `in_features` is reported where it is written, not as a
matrix error during training or inside the secure evaluation.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

from .cid import digest_from_cid
from .errors import UserError

FORMAT = "bountytree/model@1"
MAX_SPEC_BYTES = 64 * 1024
MAX_LAYERS = 64
MAX_PARAMS = 5_000_000
MAX_DIM = 4096  # any width, channel count or input side
MAX_CLASSES = 1000
# Values one layer may output per row: what bounds the memory of a check, a replay and a session
# (the two parties evaluate in chunks of rows sized by it).
MAX_ACTIVATIONS = 1 << 17


class SpecError(UserError):
    """A spec that does not validate; the message names the field."""


# ── field checkers: each returns the cleaned value or raises SpecError(where: why) ──


def _int(where: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(f"{where}: expected an integer, got {json.dumps(value)}")
    if not lo <= value <= hi:
        raise SpecError(f"{where}: {value} is outside {lo}..{hi}")
    return int(value)


def _num(where: str, value: Any, lo: float, hi: float, *, open_lo: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SpecError(f"{where}: expected a number, got {json.dumps(value)}")
    if value < lo or value > hi or (open_lo and value == lo):
        raise SpecError(f"{where}: {value} is outside {'(' if open_lo else '['}{lo}, {hi}]")
    return float(value)


def _bool(where: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise SpecError(f"{where}: expected true or false, got {json.dumps(value)}")
    return value


def _pair(where: str, value: Any, lo: int, hi: int) -> int:
    """Kernel sizes, strides and paddings: one integer, or a square pair [k, k]."""
    if isinstance(value, list):
        if len(value) != 2 or value[0] != value[1]:
            raise SpecError(
                f"{where}: expected an integer or a square pair [k, k], got {json.dumps(value)}"
            )
        value = value[0]
    return _int(where, value, lo, hi)


@dataclass(frozen=True)
class Arg:
    check: Callable[[str, Any], Any]
    default: Any = None
    required: bool = False


def _req(check: Callable[[str, Any], Any]) -> Arg:
    return Arg(check, required=True)


_DIM = partial(_int, lo=1, hi=MAX_DIM)
_KERNEL = partial(_pair, lo=1, hi=64)
_PAD = partial(_pair, lo=0, hi=64)
_BN = {
    "num_features": _req(_DIM),
    "eps": Arg(lambda w, v: _num(w, v, 0, 1, open_lo=True), 1e-5),
    "momentum": Arg(lambda w, v: _num(w, v, 0, 1), 0.1),
}
_POOL = {"kernel_size": _req(_KERNEL), "stride": Arg(_KERNEL, None), "padding": Arg(_PAD, 0)}

# The whitelist: class name -> constructor keyword arguments it accepts. Each class exists with
# the same meaning in torch.nn and crypten.nn.
LAYERS: dict[str, dict[str, Arg]] = {
    "Linear": {"in_features": _req(_DIM), "out_features": _req(_DIM), "bias": Arg(_bool, True)},
    "Conv2d": {
        "in_channels": _req(_DIM),
        "out_channels": _req(_DIM),
        "kernel_size": _req(_KERNEL),
        "stride": Arg(_KERNEL, 1),
        "padding": Arg(_PAD, 0),
        "bias": Arg(_bool, True),
    },
    "ReLU": {},
    "MaxPool2d": _POOL,
    "AvgPool2d": _POOL,
    "Flatten": {},
    "Dropout": {"p": Arg(lambda w, v: _num(w, v, 0, 1), 0.5)},
    "BatchNorm1d": _BN,
    "BatchNorm2d": _BN,
}

OPTIMIZERS = ("sgd", "adam")
TRAINING: dict[str, Arg] = {
    "optimizer": Arg(lambda w, v: _choice(w, v, OPTIMIZERS), "sgd"),
    "lr": _req(lambda w, v: _num(w, v, 0, 10, open_lo=True)),
    "momentum": Arg(lambda w, v: _num(w, v, 0, 0.999), 0.0),
    "batch_size": Arg(lambda w, v: _int(w, v, 1, 65536), 32),
    "epochs": Arg(lambda w, v: _int(w, v, 1, 1000), 1),
    "seed": Arg(lambda w, v: _int(w, v, 0, 2**32 - 1), 0),
}


def _choice(where: str, value: Any, options: tuple[str, ...]) -> str:
    if value not in options:
        raise SpecError(f"{where}: {json.dumps(value)} is not one of {', '.join(options)}")
    return str(value)


def _fields(where: str, given: Any, allowed: dict[str, Arg]) -> dict[str, Any]:
    if not isinstance(given, dict):
        raise SpecError(f"{where}: expected an object, got {json.dumps(given)[:60]}")
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise SpecError(
            f"{where}: unknown field {unknown[0]!r} (allowed: {', '.join(allowed) or 'none'})"
        )
    out = {}
    for name, arg in allowed.items():
        if name in given:
            out[name] = arg.check(f"{where}.{name}", given[name])
        elif arg.required:
            raise SpecError(f"{where}.{name}: missing")
        else:
            out[name] = arg.default
    return out


@dataclass(frozen=True)
class Layer:
    type: str
    args: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, **{k: v for k, v in self.args.items() if v is not None}}


@dataclass(frozen=True)
class ModelSpec:
    input_shape: tuple[int, ...]
    num_classes: int
    layers: tuple[Layer, ...]
    training: dict[str, Any]
    init_weights: str | None = None
    name: str = ""
    # Filled by validation: the name and shape of every parameter and buffer of the built
    # torch.nn.Sequential, in state-dict order.
    tensors: dict[str, tuple[int, ...]] = field(default_factory=dict, compare=False)
    # The most values any layer outputs for one row (input included), at most MAX_ACTIVATIONS.
    widest: int = field(default=0, compare=False)

    @property
    def num_params(self) -> int:
        return sum(math.prod(s) for k, s in self.tensors.items() if not _is_buffer(k))

    @property
    def num_features(self) -> int:
        return math.prod(self.input_shape)

    def to_json(self) -> dict[str, Any]:
        out = {
            "format": FORMAT,
            "name": self.name,
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "layers": [layer.to_json() for layer in self.layers],
            "training": dict(self.training),
        }
        if self.init_weights:
            out["init_weights"] = self.init_weights
        return out

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_json(), indent=2, sort_keys=True).encode() + b"\n"

    def with_init_weights(self, cid: str) -> ModelSpec:
        return parse_spec({**self.to_json(), "init_weights": cid})


def _is_buffer(key: str) -> bool:
    return key.rsplit(".", 1)[-1] in ("running_mean", "running_var", "num_batches_tracked")


def _out_side(side: int, kernel: int, stride: int, padding: int, where: str) -> int:
    out = (side + 2 * padding - kernel) // stride + 1
    if out < 1:
        raise SpecError(
            f"{where}: kernel {kernel} does not fit an input of side {side} with padding {padding}"
        )
    return out


def _follow(
    layers: tuple[Layer, ...], shape: tuple[int, ...]
) -> tuple[tuple[int, ...], dict[str, tuple[int, ...]], int]:
    """Walks the shapes through the layers; returns the output shape, the tensor shapes and the
    most values any layer outputs per row."""
    tensors: dict[str, tuple[int, ...]] = {}
    widest = math.prod(shape)
    for i, layer in enumerate(layers):
        where, a = f"layers[{i}] ({layer.type})", layer.args
        t = layer.type
        if t == "Linear":
            if len(shape) != 1:
                raise SpecError(
                    f"{where}: needs a flat input but gets shape {list(shape)} (add a Flatten)"
                )
            if a["in_features"] != shape[0]:
                raise SpecError(
                    f"{where}.in_features: is {a['in_features']} but its input has {shape[0]} features"
                )
            tensors[f"{i}.weight"] = (a["out_features"], a["in_features"])
            if a["bias"]:
                tensors[f"{i}.bias"] = (a["out_features"],)
            shape = (a["out_features"],)
        elif t == "Conv2d":
            if len(shape) != 3:
                raise SpecError(
                    f"{where}: needs input of shape [channels, height, width], gets {list(shape)}"
                )
            if a["in_channels"] != shape[0]:
                raise SpecError(
                    f"{where}.in_channels: is {a['in_channels']} but its input has {shape[0]} channels"
                )
            k, s, p = a["kernel_size"], a["stride"], a["padding"]
            tensors[f"{i}.weight"] = (a["out_channels"], a["in_channels"], k, k)
            if a["bias"]:
                tensors[f"{i}.bias"] = (a["out_channels"],)
            shape = (
                a["out_channels"],
                _out_side(shape[1], k, s, p, where),
                _out_side(shape[2], k, s, p, where),
            )
        elif t in ("MaxPool2d", "AvgPool2d"):
            if len(shape) != 3:
                raise SpecError(
                    f"{where}: needs input of shape [channels, height, width], gets {list(shape)}"
                )
            k, p = a["kernel_size"], a["padding"]
            s = a["stride"] or k
            if 2 * p > k:
                raise SpecError(f"{where}.padding: {p} is more than half the kernel size {k}")
            shape = (
                shape[0],
                _out_side(shape[1], k, s, p, where),
                _out_side(shape[2], k, s, p, where),
            )
        elif t == "Flatten":
            shape = (math.prod(shape),)
        elif t in ("BatchNorm1d", "BatchNorm2d"):
            want = 1 if t == "BatchNorm1d" else 3
            if len(shape) != want:
                raise SpecError(
                    f"{where}: needs a {'flat' if want == 1 else '[C, H, W]'} input, gets {list(shape)}"
                )
            if a["num_features"] != shape[0]:
                raise SpecError(
                    f"{where}.num_features: is {a['num_features']} but its input has {shape[0]}"
                )
            n = (shape[0],)
            tensors.update(
                {
                    f"{i}.weight": n,
                    f"{i}.bias": n,
                    f"{i}.running_mean": n,
                    f"{i}.running_var": n,
                    f"{i}.num_batches_tracked": (),
                }
            )
        # ReLU and Dropout keep the shape.
        if math.prod(shape) > MAX_ACTIVATIONS:
            raise SpecError(
                f"{where}: outputs {math.prod(shape)} values per row, at most {MAX_ACTIVATIONS}"
            )
        widest = max(widest, math.prod(shape))
    return shape, tensors, widest


def parse_spec(data: Any) -> ModelSpec:
    """Validates a decoded spec; raises SpecError naming the first wrong field."""
    if not isinstance(data, dict):
        raise SpecError("spec: expected a JSON object")
    allowed = {
        "format",
        "name",
        "description",
        "input_shape",
        "num_classes",
        "layers",
        "training",
        "init_weights",
    }
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise SpecError(f"spec: unknown field {unknown[0]!r}")
    if data.get("format", FORMAT) != FORMAT:
        raise SpecError(f"format: {json.dumps(data.get('format'))} is not {FORMAT}")
    name = data.get("name", "")
    if not isinstance(name, str) or len(name) > 200:
        raise SpecError("name: expected a string of at most 200 characters")
    shape = data.get("input_shape")
    if not isinstance(shape, list) or not 1 <= len(shape) <= 3:
        raise SpecError(f"input_shape: expected a list of 1 to 3 integers, got {json.dumps(shape)}")
    shape = tuple(_int(f"input_shape[{i}]", v, 1, MAX_DIM) for i, v in enumerate(shape))
    if "num_classes" not in data:
        raise SpecError("num_classes: missing")
    num_classes = _int("num_classes", data["num_classes"], 2, MAX_CLASSES)
    raw_layers = data.get("layers")
    if not isinstance(raw_layers, list) or not raw_layers:
        raise SpecError("layers: expected a non-empty list")
    if len(raw_layers) > MAX_LAYERS:
        raise SpecError(f"layers: {len(raw_layers)} layers, at most {MAX_LAYERS}")
    layers = []
    for i, raw in enumerate(raw_layers):
        if not isinstance(raw, dict) or "type" not in raw:
            raise SpecError(f'layers[{i}]: expected an object with a "type"')
        kind = raw["type"]
        if kind not in LAYERS:
            raise SpecError(
                f"layers[{i}].type: {json.dumps(kind)} is not allowed "
                f"(allowed: {', '.join(LAYERS)})"
            )
        args = _fields(
            f"layers[{i}] ({kind})", {k: v for k, v in raw.items() if k != "type"}, LAYERS[kind]
        )
        layers.append(Layer(kind, args))
    if "training" not in data:
        raise SpecError("training: missing")
    training = _fields("training", data["training"], TRAINING)
    init = data.get("init_weights")
    if init is not None:
        if not isinstance(init, str):
            raise SpecError("init_weights: expected a CID string")
        try:
            digest_from_cid(init)
        except Exception:
            raise SpecError(f"init_weights: {init!r} is not a CIDv0") from None
    out_shape, tensors, widest = _follow(tuple(layers), shape)
    if out_shape != (num_classes,):
        raise SpecError(
            f"layers: the last layer gives shape {list(out_shape)}, expected [{num_classes}] "
            f"(num_classes)"
        )
    spec = ModelSpec(shape, num_classes, tuple(layers), training, init, name, tensors, widest)
    if spec.num_params > MAX_PARAMS:
        raise SpecError(f"layers: {spec.num_params:,} parameters, at most {MAX_PARAMS:,}")
    return spec


def load_spec(raw: bytes, where: str = "spec") -> ModelSpec:
    """Parses and validates spec bytes (a file or a store download)."""
    if len(raw) > MAX_SPEC_BYTES:
        raise SpecError(f"{where}: {len(raw)} bytes, at most {MAX_SPEC_BYTES}")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise SpecError(f"{where}: not valid JSON ({exc})") from None
    except RecursionError:
        raise SpecError(f"{where}: not valid JSON (nested too deeply)") from None
    try:
        return parse_spec(data)
    except SpecError as exc:
        raise SpecError(f"{where}: {exc}") from None


def layer_kwargs(layer: Layer) -> dict[str, Any]:
    """A layer's constructor arguments, with the pooling stride defaulted to the kernel size."""
    a = dict(layer.args)
    if layer.type in ("MaxPool2d", "AvgPool2d") and a["stride"] is None:
        a["stride"] = a["kernel_size"]
    return a


def build_torch(spec: ModelSpec) -> torch.nn.Sequential:
    """The spec as a torch.nn.Sequential (state-dict keys `<index>.<name>`)."""
    import torch

    modules = [getattr(torch.nn, layer.type)(**layer_kwargs(layer)) for layer in spec.layers]
    return torch.nn.Sequential(*modules)
