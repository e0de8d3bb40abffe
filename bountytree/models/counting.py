"""Counting a model's correct rows in plaintext, and which rows every machine decides alike.

A public task's validator counts each node this way, and that count is what the Ladder records;
`bountytree audit` counts again on a machine of its own. Float32 arithmetic is not the same
everywhere (BLAS libraries sum in different orders, with or without fused multiply-adds), so a
row whose two best logits are close enough can be decided one way by the validator and the
other by the auditor. Which rows those can be is bounded here, not guessed: the standard
bound on floating-point sums (any order, FMA or not: |error| ≤ γ_n · Σ|terms|, with
γ_n = n·u / (1 − n·u) and u = 2^-24) is carried through every layer of the evaluated model, row
by row, each layer by its interval map in `layers.LAYERS` (|W| · the error it receives, plus its
own rounding of sums of |W|·|x|). A row is *decided* when its predicted class beats every other
by more than twice the two logits' bounds; any IEEE machine then predicts the same class. The
audit accepts a count that differs by the undecided rows, and no more. An ordinary model has
none; weights crafted so that many rows sit on a tie (a near-copy of a logit, or units that
cancel) have many, and the audit reports such a node as one it cannot check rather than widening
what it accepts (found by the second attacker review of the exact best: a relative threshold on
the logits alone let weights with cancelling hidden units hide their ties). Convolutions are
plain sums too: the evaluated model unfolds them (`weights.UnfoldedConv2d`), so the rows counted
here are the rows `serve` and the exported files predict alike.

Rows are counted in chunks of `chunk_rows` rows, the chunking the secure session uses too
(bountytree/mpc/counting.py), so a wide model holds fewer rows at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from bountytree.models.fixedpoint import tie_offsets
from bountytree.models.layers import LAYERS
from bountytree.models.spec import ModelSpec, evaluation_state, layer_kwargs, layer_weights
from bountytree.models.weights import evaluated

CHUNK_ROWS = 4096
# Values of one layer's output across a chunk of rows: what counting holds at once per layer.
CHUNK_VALUES = 1 << 21
UNIT = 2.0**-24  # float32's unit roundoff
TINY = 2.0**-126  # float32's smallest normal: what flushing a result to zero can lose
MAX_UNDECIDED_SHARE = 0.005  # of the rows: more, and a node's count cannot be checked (`checkable`)


def chunk_rows(specs: list[ModelSpec]) -> int:
    """Rows per chunk when counting these models (in plaintext here, on shared rows in a
    session): CHUNK_VALUES over the widest layer. Every party computes it from the same specs."""
    widest = max((s.widest for s in specs), default=1)
    return max(1, min(CHUNK_ROWS, CHUNK_VALUES // max(1, widest)))


@dataclass(frozen=True)
class Counted:
    """A model's correct rows in plaintext, and the rows whose prediction another machine's
    float32 arithmetic might make differently (`undecided`): what an audit may accept a count
    to differ by."""

    correct: int
    undecided: int


def checkable(counted: Counted, rows: int) -> bool:
    """Whether a count can be checked on another machine: at most MAX_UNDECIDED_SHARE of the
    rows (and at least one) undecided. Beyond, an audit that accepted every count within the
    undecided rows would accept anything (weights crafted so that every row is a tie)."""
    return counted.undecided <= max(1, int(rows * MAX_UNDECIDED_SHARE))


def count_correct(
    state: dict[str, torch.Tensor], spec: ModelSpec, X: np.ndarray, y: np.ndarray
) -> Counted:
    """Rows whose predicted class (argmax, ties to the first class, the session's tie offsets
    added) is the label, from checked weights (`weights.load`), and the undecided rows."""
    model = evaluated(state, spec)
    folded = evaluation_state(spec, state)
    correct = undecided = 0
    chunk = chunk_rows([spec])
    with torch.no_grad():
        for start in range(0, len(y), chunk):
            x = torch.from_numpy(X[start : start + chunk]).reshape(-1, *spec.input_shape)
            logits = model(x)
            predicted = logits.argmax(1)
            correct += int((predicted.numpy() == y[start : start + chunk]).sum())
            undecided += int((~_decided(logits, _logit_error(spec, folded, x), predicted)).sum())
    return Counted(correct, undecided)


def _logit_error(spec: ModelSpec, folded: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """A bound, per row and logit, on how far float32 evaluation in any summation order can be
    from exact arithmetic (float64 bookkeeping, rounded up generously)."""
    size = x.double().abs()  # a bound on each value's magnitude, error included
    error = torch.zeros_like(size)
    for i, layer in enumerate(spec.layers):
        bound, kwargs = LAYERS[layer.type].bound, layer_kwargs(layer)
        weights = {k: v.double() for k, v in layer_weights(folded, i).items()}
        magnitude = {k: v.abs() for k, v in weights.items()}
        zero = torch.zeros_like(error)
        carried = (
            bound(kwargs, magnitude, (-error, error))[1] - bound(kwargs, magnitude, (zero, zero))[1]
        )
        size = bound(kwargs, magnitude, (-size, size))[1]
        terms = _terms(layer.type, kwargs, weights)
        # relative rounding, and each rounding's absolute floor: a result below float32's
        # smallest normal may be flushed to zero (the fourth attacker review: subnormal
        # activations scaled back up split machines with and without flush-to-zero)
        error = carried + _gamma(terms) * size + terms * TINY
        size = size + error
    offsets = tie_offsets(spec.num_classes).double()
    return error + UNIT * (size + offsets)  # adding the offsets rounds once more


def _terms(kind: str, kwargs: dict[str, Any], weights: dict[str, torch.Tensor]) -> int:
    """Roundings on the way to one output value: products and sums (bias included)."""
    if kind in ("Linear", "Conv2d"):
        return 2 * math.prod(weights["weight"].shape[1:]) + 1
    if kind == "AvgPool2d":
        return int(kwargs["kernel_size"]) ** 2 + 1
    if weights:  # an affine map (a folded BatchNorm): one product, one sum
        return 2
    return 0  # ReLU, MaxPool2d, Flatten, Dropout round nothing


def _gamma(n: int) -> float:
    return 0.0 if n == 0 else 1.01 * n * UNIT / (1 - n * UNIT)


def _decided(logits: torch.Tensor, error: torch.Tensor, predicted: torch.Tensor) -> torch.Tensor:
    """Rows whose predicted class beats every other by more than twice both bounds: exact
    arithmetic, and so every machine, puts it first. NaN or infinite logits are never decided."""
    logits = logits.double()
    top = logits.gather(1, predicted[:, None])
    top_error = error.gather(1, predicted[:, None])
    margin = top - logits - 2 * (top_error + error)
    margin.scatter_(1, predicted[:, None], math.inf)
    return (margin > 0).all(dim=1) & torch.isfinite(logits).all(dim=1)
