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

import torch

from bountytree import datasets
from bountytree import weights as weights_io
from bountytree.errors import UserError
from bountytree.market import Market, NodeView, Score, TaskView
from bountytree.reasons import Reason, Rejected
from bountytree.spec import ModelSpec, SpecError
from bountytree.store import StoreError, StoreUnavailable, get_bytes
from bountytree.validation import registered

from .admission import MAX_NODES_PER_SESSION, issue
from .checks import Fetcher, NotYet, Ready, Reject, Wait, architecture_spec, check
from .lineage import check_lineage
from .replay import replay
from .session import SessionResult, run_session

MAX_BATCH = 64
# A node declared as trained on private data is replayed on at most this many of the task's
# published datasets (the first ones), so publishing datasets cannot make the oracle train forever.
MAX_ATTRIBUTION_REPLAYS = 8
# Flattened weights of nodes already checked, by CID (the lineage check compares against them).
MAX_CACHED_WEIGHTS = 4096
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
    unscorable: dict[int, str] = field(default_factory=dict)  # node id -> why its own session failed
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
        self._flat: dict[str, torch.Tensor] = {}
        self._rows: dict[tuple[int, int], datasets.Dataset | None] = {}

    def open_tasks(self) -> list[int]:
        return [t for t in self.market.task_ids() if not self.market.task(t, with_info=False).finalized]

    def run_round(self, task_ids: list[int] | None = None) -> list[TaskRound]:
        rounds = []
        for task_id in task_ids or self.open_tasks():
            r = TaskRound(task_id)
            for step in (self.score_task, self.finalize_if_due):
                try:
                    step(task_id, r)
                except UserError as exc:  # one task's trouble never stops the others
                    r.error = r.error or str(exc)
                    self.log(f"task {task_id}: {exc}")
            rounds.append(r)
        return rounds

    # ── checking ────────────────────────────────────────────────────────────

    def _classify(self, task: TaskView) -> tuple[list[Ready], list[Reject], list[Wait]]:
        """Every pending node of the task, in id order: ready to score (files, lineage and
        training checked), rejected with a reason, or waiting (for its files or its parent)."""
        nodes = self.market.nodes(task.id)
        eth = self.market.chain.w3.eth
        now = eth.get_block("latest")["timestamp"]
        ready: list[Ready] = []
        rejects: list[Reject] = []
        waits: list[Wait] = []
        fate: dict[int, str] = {}  # this round's outcome for pending nodes: ready / rejected / waiting
        checked: dict[int, Ready] = {}
        specs: dict[int, ModelSpec | None] = {}
        for node in sorted(nodes.values(), key=lambda n: n.id):
            if node.status != "pending":
                continue
            parent = nodes.get(node.parent_id)
            if parent is not None:
                parent_state = fate.get(parent.id, parent.status)
                if parent_state == "rejected":
                    fate[node.id] = "rejected"
                    rejects.append(Reject(node, Reason.PARENT_REJECTED, f"parent {parent.id} was rejected"))
                    continue
                if parent_state in ("waiting", "pending"):
                    fate[node.id] = "waiting"
                    waits.append(Wait(node, f"parent {parent.id} is not scored yet"))
                    continue

            def age(block: int = node.block) -> float:
                return now - eth.get_block(block)["timestamp"]

            fetch = Fetcher(self.market.store, age, self.fetch_timeout)
            try:
                arch = _architecture(node, nodes)
                if node.kind == "architecture":
                    specs[node.id] = spec = architecture_spec(fetch, node, task.info)
                else:
                    spec = self._arch_spec(arch, specs, task)
                ok = check(fetch, node, spec)
                if node.kind == "trained":
                    self._check_lineage(ok, arch, nodes, checked)
                    self._verify_training(ok, nodes[node.parent_id], task, fetch)
            except Rejected as exc:
                fate[node.id] = "rejected"
                rejects.append(Reject(node, exc.reason, str(exc)))
            except NotYet as exc:
                fate[node.id] = "waiting"
                waits.append(Wait(node, str(exc)))
            else:
                fate[node.id] = "ready"
                checked[node.id] = ok
                ready.append(ok)
        return ready, rejects, waits

    def _arch_spec(self, arch: NodeView, specs: dict[int, ModelSpec | None], task: TaskView) -> ModelSpec:
        """The spec of a trained node's architecture (checked this round, or scored earlier)."""
        if arch.id not in specs:
            try:
                specs[arch.id] = architecture_spec(Fetcher(self.market.store, lambda: float("inf"), 0), arch,
                                                   task.info)
            except (Rejected, NotYet, SpecError):
                specs[arch.id] = None
        spec = specs[arch.id]
        if spec is None:
            raise Rejected(Reason.INVALID_SPEC, f"its architecture {arch.id} has no usable spec")
        return spec

    def _flat_of(self, node: NodeView, spec: ModelSpec) -> torch.Tensor | None:
        """A scored node's weights, flattened (cached by CID); None if they cannot be read now."""
        cid = spec.init_weights if node.kind == "architecture" else node.cid
        if cid not in self._flat:
            try:
                state = weights_io.load(get_bytes(self.market.store, cid, weights_io.max_bytes(spec)), spec)
            except StoreUnavailable:
                raise
            except (StoreError, Rejected):
                return None
            if len(self._flat) >= MAX_CACHED_WEIGHTS:
                self._flat.pop(next(iter(self._flat)))
            self._flat[cid] = weights_io.flatten(state)
        return self._flat[cid]

    def _check_lineage(self, ok: Ready, arch: NodeView, nodes: dict[int, NodeView],
                       checked: dict[int, Ready]) -> None:
        """Rejects a copy (see lineage.py): compares with every earlier, not rejected node of the
        same architecture whose weights can be read."""
        earlier: dict[int, torch.Tensor] = {}
        for other in nodes.values():
            if other.id >= ok.node.id or _architecture(other, nodes).id != arch.id:
                continue
            if other.id in checked:
                earlier[other.id] = checked[other.id].flat
            elif other.status == "scored":
                flat = self._flat_of(other, ok.spec)
                if flat is not None:
                    earlier[other.id] = flat
        if ok.node.parent_id not in earlier:
            raise NotYet(f"the weights of parent {ok.node.parent_id} cannot be read now")
        verdict = check_lineage(ok.node.id, ok.flat, ok.node.parent_id, earlier)
        if verdict.is_copy:
            raise Rejected(Reason.COPY, verdict.detail)

    def _dataset_rows(self, task: TaskView, dataset_id: int) -> datasets.Dataset | None:
        key = (task.id, dataset_id)
        if key not in self._rows:
            try:
                self._rows[key] = self.market.dataset(task.id, dataset_id, task.info.label_column)
                datasets.check_against(self._rows[key], task.info.num_features, task.info.num_classes,
                                       f"dataset {dataset_id}")
            except StoreUnavailable:
                raise
            except UserError:  # unreadable or unfit: nothing can be trained on it
                self._rows[key] = None
        return self._rows[key]

    def _verify_training(self, ok: Ready, parent: NodeView, task: TaskView, fetch: Fetcher) -> None:
        """Replays a node's training where the data is public (see replay.py): sets its verified
        operations and dataset, or rejects it."""
        node, spec = ok.node, ok.spec
        parent_cid = spec.init_weights if parent.kind == "architecture" else parent.cid
        parent_weights = fetch.get(parent_cid, weights_io.max_bytes(spec), "parent weights")
        if node.dataset_id:
            rows = self._dataset_rows(task, node.dataset_id)
            if rows is None:
                raise Rejected(Reason.REPLAY_MISMATCH, f"its dataset {node.dataset_id} cannot be trained on")
            result = replay(spec, parent_weights, rows, ok.flat)
            if not result.matches:
                raise Rejected(Reason.REPLAY_MISMATCH, f"training parent {parent.id} on dataset {node.dataset_id} "
                                                       f"gives other weights (off by {result.distance:.2e})")
            ok.verified_ops, ok.dataset_id = result.ops, node.dataset_id
            return
        for dataset_id in self.market.datasets_of(task.id)[:MAX_ATTRIBUTION_REPLAYS]:
            rows = self._dataset_rows(task, dataset_id)
            if rows is not None and (result := replay(spec, parent_weights, rows, ok.flat)).matches:
                self.log(f"task {task.id} node {node.id}: declared private data, but dataset {dataset_id} "
                         f"reproduces it; attributed to the dataset")
                ok.verified_ops, ok.dataset_id = result.ops, dataset_id
                return

    # ── scoring ─────────────────────────────────────────────────────────────

    def score_task(self, task_id: int, r: TaskRound) -> None:
        task = self.market.task(task_id)
        ready, rejects, waits = self._classify(task)
        r.waiting = {w.node.id: w.detail for w in waits}
        for w in waits:
            self.log(f"task {task_id} node {w.node.id}: waiting ({w.detail})")
        for batch in _batches(rejects, self.batch_size):
            sent = self.market.reject_nodes(task_id, [(x.node.id, x.reason) for x in batch])
            for x in batch:
                r.rejected[x.node.id] = x.reason.label
                self.log(f"task {task_id} node {x.node.id}: rejected ({x.reason.label}: {x.detail})")
            self.log(f"task {task_id}: {len(batch)} rejected  {sent}")
        if not ready:
            return
        validation = registered(self.market.chain.settings.home, self.market.chain.chain_id, task_id)
        if self.validator is None and validation is None:
            raise UserError(f"no validator for task {task_id}: run `python -m oracle validator --task {task_id} "
                            f"--validation FILE` on the sponsor's host and pass its address with --validator")
        self.log(f"task {task_id}: scoring {len(ready)} node(s) in one two-party session")
        correct = self._evaluate(task, ready, validation, r)
        scores, done = [], set()
        for x in ready:  # in id order; a node whose pending parent got no score cannot be recorded
            if x.node.id not in correct:
                continue
            parent_pending = x.node.parent_id and x.node.parent_id in {y.node.id for y in ready}
            if parent_pending and x.node.parent_id not in done:
                continue
            done.add(x.node.id)
            scores.append((x, correct[x.node.id]))
        for batch in _batches(scores, self.batch_size):
            records = [Score(x.node.id, bps, x.verified_ops, x.dataset_id) for x, bps in batch]
            sent = self.market.record_scores(task_id, records)
            for rec in records:
                r.scored[rec.node_id] = rec.accuracy_bps
                self.log(f"task {task_id} node {rec.node_id}: {rec.accuracy_bps / 100:.2f}%"
                         + (f", {rec.verified_ops:,} ops replayed on dataset {rec.dataset_id}" if rec.verified_ops
                            else ""))
            self.log(f"task {task_id}: {len(batch)} scored  {sent}")
            self.batches_sent += 1
            if FAILPOINT == f"after-score-batch:{self.batches_sent}":
                os._exit(137)

    def _evaluate(self, task: TaskView, ready: list[Ready], validation, r: TaskRound) -> dict[int, int]:
        """Accuracy (bps) of each node, from one two-party session; if the session fails, each
        node alone, so no node keeps the others from being scored. When every session fails,
        the validator or the machine is at fault, not a node: the round fails (UserError) and is
        retried. A count out of [0, rows] or a row count other than the task's is refused (the
        node stays pending, unblamed)."""
        if len(ready) > MAX_NODES_PER_SESSION:  # the validator admits at most this many per session
            out: dict[int, int] = {}
            for part in _batches(ready, MAX_NODES_PER_SESSION):
                out |= self._evaluate(task, part, validation, r)
            return out
        info = task.info
        expect = {"rows": info.validation_rows, "features": info.num_features, "classes": info.num_classes}
        try:
            session = run_session(task.id, ready, header=issue(self.market, task.id, [x.node.id for x in ready]),
                                  expect=expect, validation_file=validation, validator=self.validator,
                                  settings_env=self.settings_env)
        except UserError as exc:
            if len(ready) == 1:
                raise
            self.log(f"task {task.id}: {exc}; scoring each node in a session of its own")
            out = {}
            failures: dict[int, str] = {}
            for x in ready:
                try:
                    out |= self._evaluate(task, [x], validation, r)
                except UserError as alone:
                    failures[x.node.id] = str(alone)
                    self.log(f"task {task.id} node {x.node.id}: not scored ({alone})")
            if len(failures) == len(ready):
                raise
            r.unscorable |= failures
            return out
        r.session = session
        expected = task.info.validation_rows
        if session.rows <= 0 or (expected and session.rows != expected):
            self.log(f"task {task.id}: the validator reported {session.rows} rows, the task has {expected}; "
                     "result refused")
            return {}
        out = {}
        for x in ready:
            count = session.correct.get(x.node.id)
            if not isinstance(count, int) or not 0 <= count <= session.rows:
                self.log(f"task {task.id} node {x.node.id}: count {count!r} out of [0, {session.rows}]; refused")
                continue
            out[x.node.id] = count * 10_000 // session.rows
        return out

    def finalize_if_due(self, task_id: int, r: TaskRound) -> None:
        """Finalizes a due task once nothing submitted is left to score: every node scored or
        rejected, except nodes whose own session failed; or once the grace period is over."""
        task = self.market.task(task_id, with_info=False)
        if not task.finalizable(by_oracle=True):
            return
        work_left = task.pending_nodes - len(r.unscorable)
        if work_left > 0 and not task.finalizable(by_oracle=False):
            self.log(f"task {task_id}: due, {work_left} node(s) still to score before finalizing")
            return
        out = self.market.finalize(task_id)
        r.finalized = True
        self.log(f"task {task_id}: finalized, winner node {out['winner']}  {out['sent']}")


def _architecture(node: NodeView, nodes: dict[int, NodeView]) -> NodeView:
    while node.parent_id:
        node = nodes[node.parent_id]
    return node


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
