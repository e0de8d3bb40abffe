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
"""

from __future__ import annotations

import torch

from bountytree.models.datasets import InputBox
from bountytree.models.fixedpoint import SAFE_LIMIT
from bountytree.models.layers import LAYERS
from bountytree.models.spec import (
    ModelSpec,
    build_torch,
    evaluation_state,
    layer_kwargs,
    layer_weights,
)
from bountytree.reasons import Reason, Rejected

__all__ = ["SAFE_LIMIT", "check_evaluable", "range_problem", "value_bound", "within_range"]


def value_bound(spec: ModelSpec, state: dict[str, torch.Tensor], box: InputBox) -> float:
    """The largest |value| any layer of the model can output for rows in `box` (each feature in
    its own [low, high]; float64 interval arithmetic on the evaluated weights). Infinite if the
    weights overflow even float64."""
    shape = (1, *spec.input_shape)
    lo = torch.tensor(box.low, dtype=torch.float64).reshape(shape)
    hi = torch.tensor(box.high, dtype=torch.float64).reshape(shape)
    evaluated = evaluation_state(spec, state)
    worst = float(torch.maximum(lo.abs(), hi.abs()).max())
    for i, layer in enumerate(spec.layers):
        bound = LAYERS[layer.type].bound
        lo, hi = bound(layer_kwargs(layer), layer_weights(evaluated, i), (lo, hi))
        largest = float(torch.maximum(lo.abs(), hi.abs()).max())
        if largest != largest:  # NaN: inf - inf somewhere; the weights overflow float64
            return float("inf")
        worst = max(worst, largest)
    return worst


def within_range(
    spec: ModelSpec, state: dict[str, torch.Tensor], box: InputBox
) -> tuple[bool, float]:
    """(whether every value stays within SAFE_LIMIT, the bound)."""
    bound = value_bound(spec, state, box)
    return bound <= SAFE_LIMIT, bound


def range_problem(spec: ModelSpec, state: dict[str, torch.Tensor], box: InputBox) -> str | None:
    """Why these weights cannot be scored in the secure evaluation, and what to change; None if
    they can. The trainer asks before it stakes, the oracle before it scores: one message."""
    fits, bound = within_range(spec, state, box)
    if fits:
        return None
    return (
        f"its values can reach {bound:.3g} on the task's rows (each feature within the range "
        f"the sponsor's rows span), beyond the {SAFE_LIMIT:.3g} the secure evaluation holds: "
        "scale the inputs inside the model (a BatchNorm first, trained with the model), use "
        "smaller weights (a lower learning rate, fewer epochs), or a narrower layer"
    )


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
