"""The training recipe of a spec applied to local rows: the one loop every submission runs.

Kept as plain as a hand-written PyTorch loop (shuffled index batches, the spec's optimizer, no
per-step bookkeeping beyond an optional progress callback), so that its cost is the cost of
training; `make bench-trainer` compares it with such a loop.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from bountytree.datasets import Dataset
from bountytree.spec import ModelSpec

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


def fit(model: torch.nn.Module, spec: ModelSpec, data: Dataset, progress: Progress | None = None) -> FitResult:
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
            index = order[start:start + batch]
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


@torch.no_grad()
def accuracy(model: torch.nn.Module, spec: ModelSpec, data: Dataset) -> float:
    if len(data) == 0:
        return float("nan")
    model.eval()
    X = torch.from_numpy(data.X).reshape(len(data), *spec.input_shape)
    return float((model(X).argmax(1) == torch.from_numpy(data.y)).float().mean())
