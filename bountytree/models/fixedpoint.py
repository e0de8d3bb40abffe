"""CrypTen's fixed-point encoding, as far as the rest of the core needs to know it.

A value v is the 64-bit integer v · 2^16. A product of two encoded values carries 2^32 before
it is truncated back, so anything a multiplication produces must stay well below 2^31 in
magnitude, or it wraps around the ring. SAFE_LIMIT is what the bound (`bounds.py`) allows any
value of a model, input included, and what a task's feature ranges may span.

Encoding truncates (v · 2^16 toward zero), so a weight off the 2^-16 grid is evaluated as
another weight. A gadget of a bias that rounds away behind a weight of 2^27 once made the model
scored in the secure evaluation differ from its own weights by a chosen 1,024 in a logit. So
every weights file is snapped to the grid as it is loaded (`on_grid`, `weights.load`): the
oracle, the trainer, the audit, `model export` and `serve` all hold the model that is scored,
and what is left of the difference (inputs encoded, each product truncated) is bounded and
refused beyond DRIFT_LIMIT (`bounds.py`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported by what uses on_grid: the task's terms need none of it
    import torch

FRACTION_BITS = 16
# 2^20: 2^11 below the 2^31 at which a product wraps the ring; a value this large is truncated
# wrongly once in 2^12. The examples' worst-case bounds are a few hundred (inputs in [0, 1]).
SAFE_LIMIT = float(2**20)

# One unit of the encoding: 2^-16.
ULP = 2.0**-FRACTION_BITS
# How far, in any logit, the secure evaluation may drift from the delivered model (worst case
# over the task's input box: the inputs' encoding and each product's truncation, carried
# through the layers by `bounds.py`). Weights are on the grid, so none of it is the weights'
# own: what is left is noise the model's author does not choose. The examples drift at most
# 0.005 on digits, a BatchNorm model on raw features up to 4,000 0.017 (tests/mpc); the gadget
# of 2^27 drifted 2,048.
DRIFT_LIMIT = 2.0**-2


# Argmax ties go to the lowest class, as in PyTorch: the secure evaluation adds a public
# TIE_EPS × (classes − 1 − c) to logit c, four units of the encoding's last place each. The
# delivered model adds the same (`weights.load_evaluated`): a crafted pair of logits TIE_EPS
# apart once scored as one class and was delivered as the other (184 rows of 1,000).
TIE_EPS = 2.0**-14


def tie_offsets(num_classes: int) -> torch.Tensor:
    """What each logit gains before the argmax: TIE_EPS × (classes − 1 − c) for class c."""
    import torch

    return TIE_EPS * torch.arange(num_classes - 1, -1, -1, dtype=torch.float32)


def on_grid(t: torch.Tensor) -> torch.Tensor:
    """A float tensor as CrypTen encodes it: truncated toward zero to a multiple of ULP. Exact in
    float32: below 2^8 the scaled value fits the mantissa, and from 2^8 up float32's own spacing
    is already a multiple of ULP, so those values are left as they are (scaling them could only
    overflow); other dtypes unchanged."""
    if not t.is_floating_point():
        return t
    snapped: torch.Tensor = (t * 2**FRACTION_BITS).trunc() / 2**FRACTION_BITS
    return snapped.where(t.abs() < 2**8, t)
