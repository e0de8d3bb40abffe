"""Training operations, counted with PyTorch's FLOP counter.

`training_flops_per_row` runs one forward and backward pass under `FlopCounterMode` on a batch
of two rows, halved. Multiplying by the rows seen gives a training run's operations without
running the counter during training, where its dispatch overhead would slow every step. The
oracle pays compute by the operations of its own replay of a node's training, never by a claim.
"""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from bountytree.models.spec import ModelSpec, build_torch

UINT64_MAX = 2**64 - 1


def training_flops_per_row(spec: ModelSpec) -> int:
    model = build_torch(spec)
    model.train()
    x = torch.randn(2, *spec.input_shape)
    y = torch.zeros(2, dtype=torch.long)
    with FlopCounterMode(display=False) as counter:
        torch.nn.functional.cross_entropy(model(x), y).backward()
    return max(1, int(counter.get_total_flops()) // 2)


def forward_flops_per_row(model: torch.nn.Module, spec: ModelSpec) -> int:
    """Operations of one row through `model` in evaluation (as `serve` runs it): what a request
    costs the server, which neither its rows nor the model's widest layer say (sixty 1×1
    convolutions held the event loop 3 s on 8 rows: the attacker review of the serving fixes)."""
    x = torch.zeros(2, *spec.input_shape)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(x)
    return max(1, int(counter.get_total_flops()) // 2)


def training_ops(spec: ModelSpec, rows_seen: int) -> int:
    """Operations of a training run that saw `rows_seen` rows (capped to fit the contract's uint64)."""
    return min(UINT64_MAX, training_flops_per_row(spec) * rows_seen)
