"""Training operations, counted with PyTorch's FLOP counter.

Both the trainer (which claims operations) and the oracle (which caps the claim) call
`training_flops_per_row`: one forward and backward pass under `FlopCounterMode` on a batch of
two rows, halved. Multiplying by the rows seen gives the claim without running the counter
during training, where its dispatch overhead would slow every step.
"""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from .spec import ModelSpec, build_torch

# The oracle's bound on one submission: this many rows per epoch at most.
MAX_ROWS_PER_EPOCH = 1_000_000
UINT64_MAX = 2**64 - 1


def training_flops_per_row(spec: ModelSpec) -> int:
    model = build_torch(spec)
    model.train()
    x = torch.randn(2, *spec.input_shape)
    y = torch.zeros(2, dtype=torch.long)
    with FlopCounterMode(display=False) as counter:
        torch.nn.functional.cross_entropy(model(x), y).backward()
    return max(1, counter.get_total_flops() // 2)


def claimed_ops(spec: ModelSpec, rows_seen: int) -> int:
    return min(UINT64_MAX, training_flops_per_row(spec) * rows_seen)


def ops_bound(spec: ModelSpec) -> int:
    """The most operations the oracle accepts for one submission of this architecture."""
    return min(UINT64_MAX, training_flops_per_row(spec) * spec.training["epochs"] * MAX_ROWS_PER_EPOCH)
