"""The training recipe of a spec applied to rows: the one loop every submission runs, and the
one the oracle replays to verify a node trained on a published dataset.

Kept as plain as a hand-written PyTorch loop (shuffled index batches, the spec's optimizer, no
per-step bookkeeping beyond an optional progress callback), so that its cost is the cost of
training; `make bench-trainer` compares it with such a loop. Everything random comes from the
spec's seed, so on a CPU the same parent, rows and spec give the same weights (to rounding when
the thread count differs): that is what makes a replay possible.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from bountytree.models.datasets import Dataset, holdout_split
from bountytree.models.flops import training_ops
from bountytree.models.spec import ModelSpec

# The share of a trainer's rows held out to report local accuracy (not trained on).
HOLDOUT = 0.1

Progress = Callable[[int, int, float], None]  # (step, total steps, loss)


@dataclass
class FitResult:
    rows_seen: int
    seconds: float
    losses: list[float] = field(default_factory=list)  # mean loss per epoch


def optimizer_for(model: torch.nn.Module, spec: ModelSpec) -> torch.optim.Optimizer:
    t = spec.training
    if t["optimizer"] == "adam":
        return torch.optim.Adam(model.parameters(), lr=t["lr"])
    return torch.optim.SGD(model.parameters(), lr=t["lr"], momentum=t["momentum"])


def fit(
    model: torch.nn.Module, spec: ModelSpec, data: Dataset, progress: Progress | None = None
) -> FitResult:
    t = spec.training
    X = torch.from_numpy(data.X).reshape(len(data), *spec.input_shape)
    y = torch.from_numpy(data.y)
    generator = torch.Generator().manual_seed(t["seed"])
    torch.manual_seed(t["seed"])  # dropout
    opt = optimizer_for(model, spec)
    batch = t["batch_size"]
    steps_per_epoch = -(-len(y) // batch)
    total = steps_per_epoch * t["epochs"]
    result = FitResult(0, 0.0)
    started = time.perf_counter()
    model.train()
    step = 0
    for _ in range(t["epochs"]):
        order = torch.randperm(len(y), generator=generator)
        epoch_loss = torch.zeros(())
        for start in range(0, len(y), batch):
            index = order[start : start + batch]
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(model(X[index]), y[index])
            loss.backward()
            opt.step()
            epoch_loss += loss.detach() * len(index)
            step += 1
            if progress is not None:
                progress(step, total, float(loss.detach()))
        result.losses.append(float(epoch_loss) / len(y))
        result.rows_seen += len(y)
    result.seconds = time.perf_counter() - started
    model.eval()
    return result


@dataclass
class Trained:
    """A node trained by `train_node`: the model, the fit, the held-out rows' accuracies."""

    model: torch.nn.Module
    fit: FitResult
    ops: int
    holdout_before: float
    holdout_after: float


def train_node(
    model: torch.nn.Module, spec: ModelSpec, rows: Dataset, progress: Progress | None = None
) -> Trained:
    """The whole recipe from a parent's model: hold out HOLDOUT of the rows (seeded), train on the
    rest, count the operations. The trainer submits what this returns; the oracle's replay calls
    it on the same inputs and compares."""
    train_rows, holdout = holdout_split(rows, HOLDOUT, spec.training["seed"])
    before = accuracy(model, spec, holdout)
    result = fit(model, spec, train_rows, progress)
    return Trained(
        model, result, training_ops(spec, result.rows_seen), before, accuracy(model, spec, holdout)
    )


@torch.no_grad()
def accuracy(model: torch.nn.Module, spec: ModelSpec, data: Dataset) -> float:
    if len(data) == 0:
        return float("nan")
    model.eval()
    X = torch.from_numpy(data.X).reshape(len(data), *spec.input_shape)
    return float((model(X).argmax(1) == torch.from_numpy(data.y)).float().mean())
