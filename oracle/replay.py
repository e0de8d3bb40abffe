"""Replay verification: compute is paid only for training that demonstrably happened.

Compute providers train public models on public data, so their work can be repeated: the
oracle trains the parent's weights on the published dataset with the spec's recipe (seeded; the
same code the trainer runs, `bountytree.training.train_node`) and compares the result with the
submitted weights. A node whose declared published dataset does not reproduce its weights is
rejected (`Reason.REPLAY_MISMATCH`); one that matches is paid the operations of the replay. A
node declared as trained on private data whose weights a published dataset of the task
reproduces is attributed to that dataset: its data share goes to the publisher, not to whoever
re-labelled public work as private. Private data cannot be replayed; such nodes are paid through
their accuracy gain only.

REPLAY_TOLERANCE bounds ‖submitted − replay‖ / ‖replay − parent‖. The same machine reproduces a
run bit for bit; one thread against two differed by 2e-7 (MLP) and 4e-7 (CNN) on the digits
examples; 1e-3 leaves room for other CPUs' kernels while still demanding the training itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bountytree import weights as weights_io
from bountytree.datasets import Dataset
from bountytree.spec import ModelSpec
from bountytree.training import train_node

REPLAY_TOLERANCE = 1e-3


@dataclass(frozen=True)
class Replay:
    matches: bool
    distance: float  # ‖submitted − replay‖ / ‖replay − parent‖
    ops: int


def replay(spec: ModelSpec, parent_weights: bytes, rows: Dataset, submitted: torch.Tensor) -> Replay:
    """Trains the parent on `rows` exactly as the trainer does and compares with `submitted`
    (flattened float64 weights)."""
    parent = weights_io.load_model(parent_weights, spec, "parent weights")
    start = weights_io.flatten(parent.state_dict())
    trained = train_node(parent, spec, rows)
    result = weights_io.flatten(trained.model.state_dict())
    moved = float(torch.linalg.vector_norm(result - start)) or 1e-12
    distance = float(torch.linalg.vector_norm(submitted - result)) / moved
    return Replay(distance <= REPLAY_TOLERANCE, distance, trained.ops)
