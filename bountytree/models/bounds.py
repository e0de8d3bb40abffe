"""How large a model's values can get on the task's inputs, and whether CrypTen can hold them.

CrypTen encodes a value v as the 64-bit integer v · 2^16. A product of two encoded values carries
2^32 before it is truncated back, so anything a multiplication produces must stay well below
2^31 in magnitude, or it wraps around the ring and the count comes out as garbage. Even below
that, the two-party truncation (each party divides its own share) goes wrong with a chance of
about |v| / 2^32 per value. Weights crafted to produce huge logits would therefore score at
random, or make the session fail for every node beside them; they are rejected before any
session as `logit-range`.

The bound is sound, not estimated: interval arithmetic carries, for every value of every layer,
an interval that contains it for every row in the task's input box (each feature in its own
[low, high], `datasets.InputBox`) (Linear
and Conv2d as centre ± radius with |W|, ReLU and pooling monotone, BatchNorm as the affine map
the session evaluates), each layer by its entry in `layers.LAYERS`. The largest magnitude of any interval, logits included, must not exceed
SAFE_LIMIT. Honest models sit far below it (the examples' bounds are in tests/oracle/test_models.py
and docs/design.md), because interval bounds are loose but trained weights are small.

The same pass bounds the drift: how far the secure evaluation's logits can be from those of the
weights themselves (inputs encoded, products truncated, a folded BatchNorm's weights encoded),
which must stay within DRIFT_LIMIT. Without it, weights of 2^27 behind a value that rounds made
the model scored differ from the model delivered by a chosen amount.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from bountytree.models.datasets import InputBox
from bountytree.models.fixedpoint import DRIFT_LIMIT, SAFE_LIMIT, ULP, on_grid
from bountytree.models.layers import LAYERS, Bound, Tensors
from bountytree.models.spec import (
    ModelSpec,
    build_torch,
    evaluation_state,
    layer_kwargs,
    layer_weights,
)
from bountytree.reasons import Reason, Rejected

__all__ = [
    "DRIFT_LIMIT",
    "PAD_FLOOR",
    "SAFE_LIMIT",
    "Reach",
    "check_evaluable",
    "range_problem",
    "reach",
    "value_bound",
    "within_range",
]


@dataclass(frozen=True)
class Reach:
    """What interval arithmetic says of a model over the task's input box."""

    bound: float  # the largest |value| any layer can output (inputs included)
    drift: float  # the most any logit of the secure evaluation can differ from the weights' own
    # a padded MaxPool2d whose inputs can fall below PAD_FLOOR (its index in the spec), else None
    padded_pool: int | None = None


# CrypTen pads a max-pool's input by padding each party's share with -2^24 (encoded), so a
# padded cell is worth about -512 in a two-party session where PyTorch's is -inf: where every
# value of a window can be below that, the session's max is the padding's and the delivered
# model's is not (the attacker review of session 14 scored -488 for a delivered +1,000). A padded
# MaxPool2d is evaluated only over inputs that stay above half of it.
PAD_FLOOR = -256.0


def reach(spec: ModelSpec, state: dict[str, torch.Tensor], box: InputBox) -> Reach:
    """One pass of interval arithmetic over the evaluated weights (float64): each layer's values,
    and beside them how far the secure evaluation can have moved them. The drift starts as the
    inputs' encoding (one ULP); each layer carries the drift it receives (`_carried`), adds what
    its weights' own encoding moves (zero for weights on the grid, which `weights.load` makes
    them; a folded BatchNorm's are not) and two ULP of truncation. Infinite if the weights
    overflow even float64."""
    shape = (1, *spec.input_shape)
    lo = torch.tensor(box.low, dtype=torch.float64).reshape(shape)
    hi = torch.tensor(box.high, dtype=torch.float64).reshape(shape)
    evaluated = evaluation_state(spec, state)
    worst = float(torch.maximum(lo.abs(), hi.abs()).max())
    drift = torch.full_like(lo, ULP)
    padded = None
    for i, layer in enumerate(spec.layers):
        bound, kwargs = LAYERS[layer.type].bound, layer_kwargs(layer)
        weights = layer_weights(evaluated, i)
        if layer.type == "MaxPool2d" and kwargs["padding"] and float(lo.min()) < PAD_FLOOR:
            padded = i if padded is None else padded
        drift = _carried(bound, kwargs, weights, drift) + 2 * ULP
        if weights:  # |W - W on the grid| · |x|, through the layer's own bound
            off = {k: (v.double() - on_grid(v).double()).abs() for k, v in weights.items()}
            largest_in = torch.maximum(lo.abs(), hi.abs())
            drift = drift + bound(kwargs, off, (-largest_in, largest_in))[1]
        lo, hi = bound(kwargs, weights, (lo, hi))
        largest = float(torch.maximum(lo.abs(), hi.abs()).max())
        if largest != largest:  # NaN: inf - inf somewhere; the weights overflow float64
            return Reach(float("inf"), float("inf"), padded)
        worst = max(worst, largest)
    most = float(drift.max())
    return Reach(worst, most if most == most else float("inf"), padded)


def _carried(
    bound: Bound, kwargs: dict[str, Any], weights: Tensors, drift: torch.Tensor
) -> torch.Tensor:
    """The drift a layer's output carries from its input's: every layer is affine or a monotone
    map that is 1-Lipschitz and keeps 0 (ReLU, pooling, flattening), so the upper end of its bound
    on [-drift, drift] less that on [0, 0] is |W| · drift for the affine ones and the drift
    itself (pooled) for the others."""
    zero = torch.zeros_like(drift)
    return bound(kwargs, weights, (-drift, drift))[1] - bound(kwargs, weights, (zero, zero))[1]


def value_bound(spec: ModelSpec, state: dict[str, torch.Tensor], box: InputBox) -> float:
    """The largest |value| any layer of the model can output for rows in `box` (each feature in
    its own [low, high]; float64 interval arithmetic on the evaluated weights). Infinite if the
    weights overflow even float64."""
    return reach(spec, state, box).bound


def within_range(
    spec: ModelSpec, state: dict[str, torch.Tensor], box: InputBox
) -> tuple[bool, float]:
    """(whether every value stays within SAFE_LIMIT, the bound)."""
    bound = value_bound(spec, state, box)
    return bound <= SAFE_LIMIT, bound


def range_problem(spec: ModelSpec, state: dict[str, torch.Tensor], box: InputBox) -> str | None:
    """Why these weights cannot be scored in the secure evaluation, and what to change; None if
    they can. The trainer asks before it stakes, the oracle before it scores: one message."""
    r = reach(spec, state, box)
    if r.bound > SAFE_LIMIT:
        return (
            f"its values can reach {r.bound:.3g} on the task's rows (each feature within the "
            f"range the sponsor's rows span), beyond the {SAFE_LIMIT:.3g} the secure evaluation "
            "holds: scale the inputs inside the model (a BatchNorm first, trained with the "
            "model), use smaller weights (a lower learning rate, fewer epochs), or a narrower layer"
        )
    if r.padded_pool is not None:
        return (
            f"layers[{r.padded_pool}] pads a max-pool over values that can fall below "
            f"{PAD_FLOOR:g}, where the secure evaluation's padding (about -512) would win and "
            "PyTorch's would not: put a ReLU before it, or use padding 0"
        )
    if r.drift > DRIFT_LIMIT:
        return (
            f"its weights amplify the secure evaluation's fixed-point rounding: a logit can "
            f"differ by {r.drift:.3g} from the weights' own, beyond the {DRIFT_LIMIT:g} allowed, "
            "so the model scored would not be the model delivered; use smaller weights"
        )
    return None


def check_evaluable(
    spec: ModelSpec, state: dict[str, torch.Tensor], box: InputBox | None, where: str
) -> None:
    """The checks on a model's own (already loaded) weights that need no secure session, as the
    oracle runs them before one: finite outputs, and the bound over the task's rows. Raises
    Rejected with the reason the oracle records; the trainer and `propose` run the same before
    anything is staked."""
    model = build_torch(spec)
    model.load_state_dict(state)
    model.eval()
    with torch.no_grad():
        out = model(torch.zeros(2, *spec.input_shape))
    if not torch.isfinite(out).all():
        raise Rejected(
            Reason.NOT_FINITE,
            f"{where} give non-finite outputs (a lower learning rate usually avoids it)",
        )
    if box is not None and (problem := range_problem(spec, state, box)):
        raise Rejected(Reason.LOGIT_RANGE, f"{where}: {problem}")
