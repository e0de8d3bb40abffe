"""A private task's winner on the sponsor's machine: both custodians' hand-overs read from the
store, opened with the sponsor's key, each checked against the commitment its custodian
recorded on-chain, and added into an ordinary weights file (what export and serve take)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save as st_save

from bountytree.errors import UserError
from bountytree.market.actions import Market
from bountytree.market.custody import Custody
from bountytree.models.weights import max_bytes
from bountytree.private.handover import open_handover
from bountytree.private.sealing import read_private_key
from bountytree.storage.store import get_bytes

# A sealed share holds int64 where the weights hold float32, plus headers.
SEALED_ALLOWANCE = 4096


def open_winner(
    market: Market, task_id: int, node_id: int | None, key_file: str | None
) -> tuple[bytes, str] | None:
    """(weights file, where it came from) of a private task's winner; None for a public task."""
    custody = Custody(market)
    view = custody.of(task_id)
    if view is None:
        return None
    task = market.task(task_id, with_info=False)
    if node_id is not None and node_id != task.winner:
        raise UserError(f"task {task_id} is private: only its winner is handed over")
    if not task.finalized or not task.winner:
        raise UserError(f"task {task_id} has no winner yet: nothing was handed over")
    if not key_file:
        raise UserError(f"task {task_id} is private: give --key-file (the sponsor's key)")
    missing = [i for i in (0, 1) if view.sealed[i] is None]
    if missing:
        raise UserError(
            f"custodian {missing[0]} of task {task_id} has not handed over yet "
            f"(deadline {view.handover_deadline}, unix time)"
        )
    node = market.node(task.winner)
    spec = market.architecture_spec(node)
    limit = 2 * max_bytes(spec) + SEALED_ALLOWANCE
    sealed = tuple(get_bytes(market.store, str(cid), limit) for cid in view.sealed)
    commitments = tuple(custody.commitment(task.winner, i) for i in (0, 1))
    if None in commitments:
        raise UserError(f"a custodian never committed to its share of node {task.winner}")
    state = open_handover(
        (sealed[0], sealed[1]),
        read_private_key(Path(key_file)),
        (commitments[0] or b"", commitments[1] or b""),
    )
    expected = {k: v for k, v in spec.tensors.items()}
    if {k: tuple(v.shape) for k, v in state.items()} != expected:
        raise UserError(f"the hand-overs of node {task.winner} do not hold its spec's tensors")
    weights = st_save(
        {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()},
        metadata={"format": "bountytree/weights@1"},
    )
    return weights, f"opened from hand-overs {view.sealed[0]} and {view.sealed[1]}"
