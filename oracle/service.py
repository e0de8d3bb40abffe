"""The oracle: find unscored nodes, check them, score them in one two-party session per task,
record scores and rejections on-chain in batches, finalize tasks that are due.

All state comes from the chain. A round reads the pending nodes, so a restart after a crash
(mid-session, between two batches) scores exactly the nodes still pending: nothing twice,
nothing skipped. One broken node is rejected on its own; it never stops the others.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Callable

from bountytree.errors import UserError
from bountytree.market import Market, NodeView
from bountytree.spec import MAX_SPEC_BYTES, ModelSpec, load_spec
from bountytree.store import StoreUnavailable, get_bytes
from bountytree.validation import registered

from .checks import Ready, Reject, Wait, check
from .session import SessionResult, run_session

MAX_BATCH = 64
# Fault injection for the reliability drills: "after-score-batch:N" ends the process abruptly
# (no cleanup, like a kill -9) right after the N-th batch of scores is on-chain.
FAILPOINT = os.environ.get("BOUNTYTREE_FAILPOINT", "")
Log = Callable[[str], None]


@dataclass
class TaskRound:
    task_id: int
    scored: dict[int, int] = field(default_factory=dict)  # node id -> accuracy bps
    rejected: dict[int, str] = field(default_factory=dict)  # node id -> reason
    waiting: dict[int, str] = field(default_factory=dict)
    session: SessionResult | None = None
    finalized: bool = False
    error: str | None = None


class Oracle:
    def __init__(self, market: Market, *, validator: str | None = None, fetch_timeout: float = 60.0,
                 log: Log = print, settings_env: dict | None = None, batch_size: int = MAX_BATCH):
        self.market = market
        self.batch_size = max(1, min(batch_size, MAX_BATCH))
        self.batches_sent = 0
        self.validator = validator
        self.fetch_timeout = fetch_timeout
        self.log = log
        self.settings_env = settings_env or {}

    def open_tasks(self) -> list[int]:
        return [t for t in self.market.task_ids() if not self.market.task(t, with_info=False).finalized]

    def run_round(self, task_ids: list[int] | None = None) -> list[TaskRound]:
        rounds = []
        for task_id in task_ids or self.open_tasks():
            r = TaskRound(task_id)
            try:
                self.score_task(task_id, r)
                self.finalize_if_due(task_id, r)
            except UserError as exc:  # one task's trouble never stops the others
                r.error = str(exc)
                self.log(f"task {task_id}: {exc}")
            rounds.append(r)
        return rounds

    def _classify(self, task_id: int) -> tuple[list[Ready], list[Reject], list[Wait]]:
        nodes = self.market.nodes(task_id)
        eth = self.market.chain.w3.eth
        now = eth.get_block("latest")["timestamp"]
        ready, rejects, waits = [], [], []
        fate: dict[int, str] = {}  # this round's outcome for pending nodes: ready / rejected / waiting
        arch_specs = {}
        for node in sorted(nodes.values(), key=lambda n: n.id):
            if node.status != "pending":
                continue
            parent = nodes.get(node.parent_id)
            if parent is not None:
                parent_state = fate.get(parent.id, parent.status)
                if parent_state == "rejected":
                    fate[node.id] = "rejected"
                    rejects.append(Reject(node, "parent-rejected", f"parent {parent.id} was rejected"))
                    continue
                if parent_state in ("waiting", "pending"):
                    fate[node.id] = "waiting"
                    waits.append(Wait(node, f"parent {parent.id} is not scored yet"))
                    continue
            arch = self._architecture(node, nodes)
            if node.kind == "trained" and arch.id not in arch_specs:
                arch_specs[arch.id] = self._arch_spec(arch)
            def age(block=node.block) -> float:
                return now - eth.get_block(block)["timestamp"]

            outcome = check(self.market, node, arch_specs.get(arch.id), age, self.fetch_timeout)
            if isinstance(outcome, Ready):
                fate[node.id] = "ready"
                ready.append(outcome)
                if node.kind == "architecture":
                    arch_specs[node.id] = outcome.spec
            elif isinstance(outcome, Reject):
                fate[node.id] = "rejected"
                rejects.append(outcome)
            else:
                fate[node.id] = "waiting"
                waits.append(outcome)
        return ready, rejects, waits

    @staticmethod
    def _architecture(node: NodeView, nodes: dict[int, NodeView]) -> NodeView:
        while node.parent_id:
            node = nodes[node.parent_id]
        return node

    def _arch_spec(self, arch: NodeView) -> ModelSpec | None:
        """The spec of an architecture scored in an earlier round (None if it is unusable)."""
        if arch.status == "rejected":
            return None
        try:
            return load_spec(get_bytes(self.market.store, arch.cid, MAX_SPEC_BYTES))
        except StoreUnavailable:
            raise
        except UserError:
            return None

    def score_task(self, task_id: int, r: TaskRound) -> None:
        ready, rejects, waits = self._classify(task_id)
        r.waiting = {w.node.id: w.detail for w in waits}
        for w in waits:
            self.log(f"task {task_id} node {w.node.id}: waiting ({w.detail})")
        for batch in _batches(rejects, self.batch_size):
            sent = self.market.chain.send(self.market.tree.functions.rejectNodes(
                task_id, [x.node.id for x in batch], [x.code for x in batch]))
            for x in batch:
                r.rejected[x.node.id] = x.reason
                self.log(f"task {task_id} node {x.node.id}: rejected ({x.reason}: {x.detail})")
            self.log(f"task {task_id}: {len(batch)} rejected  {sent}")
        if not ready:
            return
        validation = registered(self.market.chain.settings.home, self.market.chain.chain_id, task_id)
        if self.validator is None and validation is None:
            raise UserError(f"no validator for task {task_id}: run `python -m oracle validator --task {task_id} "
                            f"--validation FILE` on the sponsor's host and pass its address with --validator")
        self.log(f"task {task_id}: scoring {len(ready)} node(s) in one two-party session")
        session = run_session(task_id, ready, validation_file=validation, validator=self.validator,
                              settings_env=self.settings_env)
        r.session = session
        for batch in _batches(ready, self.batch_size):
            ids = [x.node.id for x in batch]
            accs = [session.correct[i] * 10_000 // session.rows for i in ids]
            sent = self.market.chain.send(self.market.tree.functions.recordScores(
                task_id, ids, accs, [x.verified_ops for x in batch]))
            for i, a in zip(ids, accs):
                r.scored[i] = a
                self.log(f"task {task_id} node {i}: {a / 100:.2f}% ({session.correct[i]}/{session.rows} rows)")
            self.log(f"task {task_id}: {len(batch)} scored  {sent}")
            self.batches_sent += 1
            if FAILPOINT == f"after-score-batch:{self.batches_sent}":
                os._exit(137)

    def finalize_if_due(self, task_id: int, r: TaskRound) -> None:
        task = self.market.task(task_id, with_info=False)
        now = self.market.chain.w3.eth.get_block("latest")["timestamp"]
        due = (task.best_node and task.best_bps >= task.target_bps) or now > task.deadline
        if task.finalized or not due:
            return
        out = self.market.finalize(task_id)
        r.finalized = True
        self.log(f"task {task_id}: finalized, winner node {out['winner']}  {out['sent']}")


def _batches(items: list, size: int) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def serve(make_oracle: Callable[[], Oracle], task_ids: list[int] | None, interval: float, log: Log = print,
          stop: Callable[[], bool] = lambda: False) -> None:
    """Runs rounds forever; an unreachable chain or store is retried with backoff, said once per try."""
    backoff = 1.0
    oracle = None
    while not stop():
        try:
            oracle = oracle or make_oracle()
            oracle.run_round(task_ids)
            backoff = 1.0
            time.sleep(interval)
        except (UserError, OSError) as exc:  # requests' ConnectionError is an OSError
            oracle = None
            log(f"unavailable: {str(exc).splitlines()[0] or type(exc).__name__}; retrying in {backoff:.0f}s")
            time.sleep(backoff)
            backoff = min(backoff * 2, 60.0)
