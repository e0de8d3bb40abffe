"""Replay verification: compute is paid only for training that demonstrably happened.

Compute providers train public models on public data, so their work can be repeated: the
oracle trains the parent's weights on the published dataset with the spec's recipe (seeded; the
same code the trainer runs, `bountytree.training.train_node`) and compares the result with the
submitted weights. A node whose declared published dataset does not reproduce its weights is
rejected (`Reason.REPLAY_MISMATCH`); one that matches is paid the operations of the replay. A
node declared as trained on private data whose weights a published dataset of the task
reproduces is attributed to that dataset: its data share goes to the publisher, not to whoever
re-labelled public work as private (only an exact relabelling is caught: training on the same
rows in another order, or with one row more, reproduces nothing). Private data cannot be
replayed; such nodes are paid through their accuracy gain only. A replay is bounded by
MAX_REPLAY_OPS and MAX_REPLAY_STEPS; beyond them a node is rejected as too costly.

REPLAY_TOLERANCE bounds ‖submitted − replay‖ / ‖replay − parent‖. The same machine reproduces a
run bit for bit; one thread against two differed by 2e-7 (MLP) and 4e-7 (CNN) on the digits
examples; 1e-3 leaves room for other CPUs' kernels while still demanding the training itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from bountytree.models import weights as weights_io
from bountytree.models.datasets import Dataset
from bountytree.models.fixedpoint import on_grid
from bountytree.models.flops import training_flops_per_row, training_ops
from bountytree.models.spec import ModelSpec
from bountytree.models.training import HOLDOUT, train_node

REPLAY_TOLERANCE = 1e-3
# The most one replay may cost: training operations, and optimizer steps (which bound the Python
# overhead of tiny batches). About a minute of one core here at the upper end; the oracle's time
# is shared by every task, so a recipe above it is rejected as too costly, never run.
MAX_REPLAY_OPS = 10**12
MAX_REPLAY_STEPS = 100_000


def replay_cost(spec: ModelSpec, rows: Dataset) -> str | None:
    """None when replaying the spec's recipe on `rows` fits the budget, else why not."""
    epochs, batch = spec.training["epochs"], spec.training["batch_size"]
    steps = epochs * -(-len(rows) // batch)
    ops = training_flops_per_row(spec) * len(rows) * epochs
    if steps > MAX_REPLAY_STEPS:
        return f"would take {steps:,} optimizer steps, at most {MAX_REPLAY_STEPS:,}"
    if ops > MAX_REPLAY_OPS:
        return f"would take {ops:.2e} operations, at most {MAX_REPLAY_OPS:.0e}"
    return None


@dataclass(frozen=True)
class Replay:
    matches: bool
    distance: float  # ‖submitted − replay‖ / ‖replay − parent‖
    ops: int


def replay(
    spec: ModelSpec, parent_weights: bytes, rows: Dataset, submitted: torch.Tensor
) -> Replay:
    """Trains the parent on `rows` exactly as the trainer does and compares with `submitted`
    (flattened float64 weights)."""
    parent = weights_io.load_model(parent_weights, spec, "parent weights")
    start = weights_io.flatten(parent.state_dict())
    trained = train_node(parent, spec, rows)
    # on the grid, as the submitted weights were loaded: an exact replay is at distance 0
    result = weights_io.flatten({k: on_grid(v) for k, v in trained.model.state_dict().items()})
    moved = float(torch.linalg.vector_norm(result - start)) or 1e-12
    distance = float(torch.linalg.vector_norm(submitted - result)) / moved
    # Rows repeated in the dataset are paid once per epoch: padding a dataset with copies of its
    # own rows buys operations, not training.
    distinct = len(np.unique(rows.X, axis=0)) if len(rows) else 0
    seen = min(trained.fit.rows_seen, round(distinct * (1 - HOLDOUT)) * spec.training["epochs"])
    return Replay(distance <= REPLAY_TOLERANCE, distance, training_ops(spec, seen))
