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
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bountytree.models.fields import (
    MAX_DIM,
    Arg,
    SpecError,
    check_fields,
    choice_field,
    int_field,
    num_field,
    required,
)
from bountytree.models.layers import LAYERS, is_buffer
from bountytree.storage.cid import digest_from_cid
from bountytree.text import NAME, NAME_RULE

if TYPE_CHECKING:
    import torch

__all__ = ["LAYERS", "MAX_DIM", "SpecError"]

FORMAT = "bountytree/model@1"
MAX_SPEC_BYTES = 64 * 1024
MAX_LAYERS = 64
MAX_PARAMS = 5_000_000
MAX_CLASSES = 1000
# Values one layer may output per row: what bounds the memory of a check, a replay and a session
# (the two parties evaluate in chunks of rows sized by it).
MAX_ACTIVATIONS = 1 << 17
# Values per row a convolution unfolds to (input channels × kernel² × output positions): counting
# computes each convolution as an unfolding (models/counting.py), and the bound's float64
# convolution unfolds too; 2^22 is 16 MiB a row in float32.
MAX_UNFOLDED = 1 << 22


OPTIMIZERS = ("sgd", "adam")
TRAINING: dict[str, Arg] = {
    "optimizer": Arg(lambda w, v: choice_field(w, v, OPTIMIZERS), "sgd"),
    "lr": required(lambda w, v: num_field(w, v, 0, 10, open_lo=True)),
    "momentum": Arg(lambda w, v: num_field(w, v, 0, 0.999), 0.0),
    "batch_size": Arg(lambda w, v: int_field(w, v, 1, 65536), 32),
    "epochs": Arg(lambda w, v: int_field(w, v, 1, 1000), 1),
    "seed": Arg(lambda w, v: int_field(w, v, 0, 2**32 - 1), 0),
}


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
        return sum(math.prod(s) for k, s in self.tensors.items() if not is_buffer(k))

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


def _follow(
    layers: tuple[Layer, ...], shape: tuple[int, ...]
) -> tuple[tuple[int, ...], dict[str, tuple[int, ...]], int]:
    """Walks the shapes through the layers (each by its entry in `layers.LAYERS`); returns the
    output shape, the tensor shapes and the most values any layer outputs per row."""
    tensors: dict[str, tuple[int, ...]] = {}
    widest = math.prod(shape)
    for i, layer in enumerate(layers):
        where, kind = f"layers[{i}] ({layer.type})", LAYERS[layer.type]
        shape = kind.shape(where, layer.args, shape)
        tensors.update({f"{i}.{name}": dims for name, dims in kind.tensors(layer.args).items()})
        if math.prod(shape) > MAX_ACTIVATIONS:
            raise SpecError(
                f"{where}: outputs {math.prod(shape)} values per row, at most {MAX_ACTIVATIONS}"
            )
        widest = max(widest, math.prod(shape))
        if layer.type == "Conv2d":  # counted as an unfolding (models/counting.py), bounded too
            k = layer.args["kernel_size"]
            unfolded = layer.args["in_channels"] * k * k * math.prod(shape[1:])
            if unfolded > MAX_UNFOLDED:
                raise SpecError(
                    f"{where}: unfolds to {unfolded} values per row, at most {MAX_UNFOLDED}"
                )
            widest = max(widest, unfolded)
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
    if name != "" and (not isinstance(name, str) or not NAME.match(name)):
        raise SpecError(f"name: {json.dumps(name)[:60]} is not a name ({NAME_RULE})")
    shape = data.get("input_shape")
    if not isinstance(shape, list) or not 1 <= len(shape) <= 3:
        raise SpecError(f"input_shape: expected a list of 1 to 3 integers, got {json.dumps(shape)}")
    shape = tuple(int_field(f"input_shape[{i}]", v, 1, MAX_DIM) for i, v in enumerate(shape))
    if "num_classes" not in data:
        raise SpecError("num_classes: missing")
    num_classes = int_field("num_classes", data["num_classes"], 2, MAX_CLASSES)
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
        args = check_fields(
            f"layers[{i}] ({kind})",
            {k: v for k, v in raw.items() if k != "type"},
            LAYERS[kind].args,
        )
        layers.append(Layer(kind, args))
    if "training" not in data:
        raise SpecError("training: missing")
    training = check_fields("training", data["training"], TRAINING)
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
    """A layer's constructor arguments (pooling's stride defaulted to its kernel size)."""
    return LAYERS[layer.type].kwargs(layer.args)


def build_torch(spec: ModelSpec) -> torch.nn.Sequential:
    """The spec as a torch.nn.Sequential (state-dict keys `<index>.<name>`)."""
    import torch

    modules = [getattr(torch.nn, layer.type)(**layer_kwargs(layer)) for layer in spec.layers]
    return torch.nn.Sequential(*modules)


def layer_weights(state: dict[str, torch.Tensor], index: int) -> dict[str, torch.Tensor]:
    """Layer `index`'s tensors from a state dict, by their names within the layer."""
    prefix = f"{index}."
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def evaluation_state(spec: ModelSpec, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The weights as the model is evaluated: each layer with a `fold` (BatchNorm) replaced by
    its evaluation-mode map, buffers dropped. The oracle's parties and the bound both use it."""
    out = {k: v for k, v in state.items() if not is_buffer(k)}
    for i, layer in enumerate(spec.layers):
        fold = LAYERS[layer.type].fold
        if fold is not None:
            out.update(
                {f"{i}.{k}": v for k, v in fold(layer.args, layer_weights(state, i)).items()}
            )
    return out


def private_problem(spec: ModelSpec) -> str | None:
    """Why a private task's custodians cannot train this architecture on secret shares (None if
    they can): a layer they do not train (see LayerType.private), or an optimizer other than
    SGD (Adam's square root and division per step are costly and imprecise in fixed point)."""
    for i, layer in enumerate(spec.layers):
        if not LAYERS[layer.type].private:
            return f"layers[{i}]: a private task's models cannot use {layer.type}"
    if spec.training["optimizer"] != "sgd":
        return "training.optimizer: a private task's models train with sgd"
    return None
