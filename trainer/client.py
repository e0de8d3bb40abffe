"""A data owner's or compute provider's submission: fetch a node, train it locally, submit.

Everything that can be checked is checked before the first transaction: the task is open, the
data fits it (features, classes), the parent exists and is not rejected, the parent's weights
match the architecture's spec. Private data is read from the local file and never leaves it;
only the trained weights are uploaded.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from bountytree.errors import UserError
from bountytree.market.actions import Market, TaskView
from bountytree.models import datasets
from bountytree.models import weights as weights_io
from bountytree.models.bounds import check_evaluable
from bountytree.models.spec import ModelSpec
from bountytree.models.training import Progress, train_node
from bountytree.reasons import Rejected
from bountytree.storage.store import cid_of, get_bytes


@dataclass
class Submission:
    task_id: int
    parent_id: int
    node_id: int
    weights_cid: str
    ops: (
        int  # what training took; the oracle pays compute by its own replay, on published data only
    )
    gas: int
    holdout_accuracy: float
    parent_holdout_accuracy: float
    rows: int
    losses: list[float]
    timings: dict[str, float] = field(default_factory=dict)  # download, train, upload, chain


class Trainer:
    """Trains nodes of one market participant (the Market's account pays and is the author)."""

    def __init__(self, market: Market):
        self.market = market

    @staticmethod
    def check_before_staking(task: TaskView, spec: ModelSpec, model: torch.nn.Module) -> None:
        """The oracle's checks on a node's own weights that need no secure session (finite
        outputs, the bound on its values over the task's rows), run before anything is uploaded
        or staked: a model the oracle would reject is refused here, in one line that says what
        to change, and nothing is sent."""
        try:  # the oracle's own checks: the weights file as it will read it, then the model
            state = weights_io.load(weights_io.to_bytes(model), spec, "the trained weights")
            check_evaluable(spec, state, task.info.input_box, "the trained weights")
        except Rejected as exc:
            raise UserError(
                f"not submitted (nothing staked): the oracle would reject it as "
                f"{exc.reason.label}: {exc}"
            ) from None

    def prepare(
        self,
        task_id: int,
        data: str | Path | None = None,
        parent: str | int = "best",
        dataset_id: int = 0,
    ):
        """Loads and checks everything a submission needs; sends nothing."""
        m = self.market
        task = m.task(task_id)
        m.require_open(task)
        if (data is None) == (not dataset_id):
            raise UserError(
                "give either --data FILE (private data) or --dataset DATASET_ID (a published one)"
            )
        if data is None:
            rows = m.dataset(task_id, dataset_id, task.info.label_column)
        else:
            rows = datasets.load_file(data, task.info.label_column)
        datasets.check_against(
            rows,
            task.info.num_features,
            task.info.num_classes,
            str(data or f"dataset {dataset_id}"),
        )
        parent_id = m.best_parent(task) if parent in ("best", None) else _node_id(parent)
        node = m.require_parent(task_id, parent_id, dataset_id)
        spec = m.architecture_spec(node)
        cid = node.weights_cid(spec)
        model = weights_io.load_model(
            get_bytes(m.store, cid, weights_io.max_bytes(spec)),
            spec,
            f"weights {cid} of node {parent_id}",
        )
        return task, rows, parent_id, spec, model

    def run(
        self,
        task_id: int,
        data: str | Path | None = None,
        parent: str | int = "best",
        dataset_id: int = 0,
        progress: Progress | None = None,
    ) -> Submission:
        timings = {}
        started = time.perf_counter()
        _task, rows, parent_id, spec, model = self.prepare(task_id, data, parent, dataset_id)
        timings["download"] = time.perf_counter() - started
        trained = train_node(model, spec, rows, progress)
        timings["train"] = trained.fit.seconds
        self.check_before_staking(_task, spec, model)
        started = time.perf_counter()
        trained_bytes = weights_io.to_bytes(model)
        cid = cid_of(trained_bytes)
        timings["hash"] = time.perf_counter() - started
        started = time.perf_counter()
        # the weights reach the store between the commitment and the reveal
        sent = self.market.submit(task_id, parent_id, cid, dataset_id, content=trained_bytes)
        timings["chain"] = time.perf_counter() - started
        return Submission(
            task_id,
            parent_id,
            sent.node_id,
            cid,
            trained.ops,
            sent.gas,
            trained.holdout_after,
            trained.holdout_before,
            len(rows),
            trained.fit.losses,
            timings,
        )


def _node_id(text) -> int:
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise UserError(f"--parent: {text!r} is neither a node id nor 'best'") from None
    if value < 1:
        raise UserError("--parent: node ids start at 1")
    return value
