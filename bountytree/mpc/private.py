"""Scoring and training a private node: its weights exist only as two secret shares, one per
custodian, and so do the rows it is scored or trained on.

Run by the two custodians (ranks 0 and 1) of a session joined with a dealer
(`session.join` with a dealer, over authenticated, encrypted links); every function here is called by
both with their own shares and returns their own share of the result. Nothing is revealed but what a
function's docstring says: scoring reveals the Ladder's record of the node and nothing else (not
its count, not whether it came close, not the task's best), training reveals nothing.

Shares are int64 ring elements in CrypTen's 16-bit fixed point (`bountytree/private/ring.py`).
An architecture's initial weights are public (they follow from its spec's seed); the custodians
share a public value as (value, 0) (`bountytree/private/shares.public_share`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from bountytree.market.ladder import BPS
from bountytree.models.datasets import holdout_indices
from bountytree.models.spec import ModelSpec
from bountytree.models.training import HOLDOUT
from bountytree.private import ring
from bountytree.private.shares import Share

from .counting import chunk_rows, shared_hits
from .crypten_import import crypten, torch
from .models import build_crypten

# Counts carry fixed-point error of a few units of 2^-16 (two-party truncation): thresholds sit
# half a row below the integer they test.
HALF = 0.5


def my_rank() -> int:
    return int(crypten.comm.get().get_rank())


def shared(share: np.ndarray):
    """The MPCTensor whose share on this party is `share` (int64, 16-bit fixed point)."""
    # A copy: CrypTen updates shares in place (an optimizer step), and the caller's array is
    # the caller's (a parent's share trains many children).
    return crypten.mpc.MPCTensor.from_shares(
        torch.from_numpy(np.array(share, dtype=np.int64, copy=True)),
        precision=ring.PRECISION_BITS,
    )


def my_share(value) -> np.ndarray:
    """This party's share of an MPCTensor, as int64."""
    return value._tensor.share.detach().numpy().astype(np.int64).copy()


@dataclass
class SharedRows:
    """This party's shares of rows (n × features) and their one-hot labels (n × classes)."""

    X: np.ndarray
    Y: np.ndarray

    def __len__(self) -> int:
        return len(self.X)


def _modules(model) -> dict[str, Any]:
    return {name: module for name, module in model.named_modules()}


def shared_model(spec: ModelSpec, share: Share):
    """The spec's CrypTen model holding the shared weights `share` (this party's)."""
    model = build_crypten(spec)
    names = {name for name, _ in model.named_parameters()}
    if set(share.tensors) != names:
        raise ValueError(f"a share of {sorted(share.tensors)}, the model has {sorted(names)}")
    model.encrypt(src=0)
    modules = _modules(model)
    for name, value in share.tensors.items():
        owner, _, parameter = name.rpartition(".")
        modules[owner].set_parameter_from_shares(  # a copy, as in `shared`
            parameter,
            torch.from_numpy(np.array(value, dtype=np.int64, copy=True)),
            precision=ring.PRECISION_BITS,
        )
    return model


def model_share(model) -> Share:
    """This party's share of a shared model's weights."""
    return Share(my_rank(), {name: my_share(p) for name, p in model.named_parameters()})


def shared_count(spec: ModelSpec, share: Share, rows: SharedRows):
    """The shared number of rows the node classifies correctly (nothing revealed)."""
    model = shared_model(spec, share)
    model.eval()
    step = chunk_rows([spec])
    chunks = [
        (shared(rows.X[i : i + step]), shared(rows.Y[i : i + step]))
        for i in range(0, len(rows), step)
    ]
    return shared_hits(model, spec, chunks)


@dataclass
class LadderStep:
    """What scoring a node gives: the score the Ladder records (public, the same on both
    custodians) and this custodian's share of the task's exact best after it (in basis
    points; it stays secret)."""

    recorded_bps: int
    best: np.ndarray


class OutOfRange(ArithmeticError):
    """The Ladder's record fell outside [0, 10000]."""


def ladder(
    count,
    rows: int,
    best: np.ndarray,
    margin_bps: int,
    parent_bps: int,
    before_reveal: Callable[[], None] = lambda: None,
) -> LadderStep:
    """The Ladder inside the computation (`bountytree/market/ladder.py` in the clear): the exact
    score in basis points is floor(count · 10000 / rows), the number of thresholds
    ceil(b · rows / 10000), b = 1…10000, that the count reaches; if it beats the exact best by
    the margin, the record is the score rounded down to the margin and the best becomes the
    score; otherwise the record is the parent's. Only the record is revealed, right after
    `before_reveal` is called (a custodian counts the runs that reveal a node's record)."""
    levels = torch.arange(1, BPS + 1, dtype=torch.float64)
    thresholds = (torch.ceil(levels * rows / BPS) - HALF).float()
    exact = (count - thresholds).ge(0).sum()
    best_now = shared(best)
    beat = (exact - best_now).ge(margin_bps - HALF)
    steps = torch.arange(margin_bps, BPS + 1, margin_bps, dtype=torch.float32) - HALF
    rounded = (exact - steps).ge(0).sum() * margin_bps
    record = beat * (rounded - parent_bps) + parent_bps
    best_after = best_now + beat * (exact - best_now)
    before_reveal()
    recorded = round(float(record.get_plain_text()))
    if not 0 <= recorded <= BPS:
        # the Ladder truncates nothing (its 0/1 factors are at scale 1), so an honest run is
        # exact and this is a custodian that added to its shares to make the record say
        # something (a bit of the exact score, found by the attacker review of the sessions):
        # the value is not kept, and the node is not scored again (custodian/service.py), so
        # the bit is one per node at most
        raise OutOfRange("the record fell outside [0, 10000]: a deviating party")
    return LadderStep(recorded, my_share(best_after))


def train(spec: ModelSpec, parent: Share, rows: SharedRows) -> Share:
    """This party's share of the child the spec's recipe trains from the parent on the rows:
    the rows `holdout_split` keeps for training (the same indices, drawn from the row count and
    the seed), shuffled per epoch by the seed's generator as `training.fit` does, SGD with the
    spec's rate and momentum on the mean cross-entropy of each batch. Nothing is revealed."""
    t = spec.training
    if t["optimizer"] != "sgd":
        raise ValueError("a private node trains with sgd only")
    model = shared_model(spec, parent)
    model.train()
    train_rows, _ = holdout_indices(len(rows), HOLDOUT, t["seed"])
    X, Y = shared(rows.X[train_rows]), shared(rows.Y[train_rows])
    optimizer = crypten.optim.SGD(model.parameters(), lr=t["lr"], momentum=t["momentum"])
    loss_fn = crypten.nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(t["seed"])
    n, batch = len(train_rows), t["batch_size"]
    for _ in range(t["epochs"]):
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, batch):
            index = order[start : start + batch]
            optimizer.zero_grad()
            output = model(X[index].reshape(len(index), *spec.input_shape))
            loss = loss_fn(output, Y[index])
            loss.backward()
            optimizer.step()
    return model_share(model)
