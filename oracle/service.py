"""The oracle: find unscored nodes, check them, score them in one two-party session per task,
record scores and rejections on-chain in batches, finalize tasks that are due.

All state comes from the chain. A round reads the pending nodes, so a restart after a crash
(mid-session, between two batches) scores exactly the nodes still pending: nothing twice,
nothing skipped. One broken node is rejected on its own; it never stops the others.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from bountytree.errors import UserError
from bountytree.files import atomic_write_json
from bountytree.market import ladder
from bountytree.market.actions import Market, NodeView, Score, TaskView
from bountytree.market.validation import registered, registered_test
from bountytree.models import datasets
from bountytree.models import weights as weights_io
from bountytree.models.spec import MAX_SPEC_BYTES, ModelSpec, SpecError
from bountytree.reasons import Reason, Rejected
from bountytree.storage.store import StoreError, StoreUnavailable, get_bytes

from .admission import MAX_NODES_PER_SESSION, MAX_TEST_SESSIONS, TEST, issue
from .checks import Fetcher, NotYet, Ready, Reject, Wait, architecture_spec, check
from .lineage import check_lineage
from .pacing import GIVE_UP_S, TASK_RETRY_BASE_S, TASK_RETRY_MAX_S, Failing
from .replay import replay, replay_cost
from .session import SessionResult, run_session
from .unread_best import HOLD_S, UnreadBests

# A node declared as trained on private data is replayed on at most this many of the task's
# published datasets (the first ones), so publishing datasets cannot make the oracle train forever.
MAX_ATTRIBUTION_REPLAYS = 4
# Flattened weights of scored nodes, by CID, for the lineage check: at most this many floats (1 GiB).
MAX_CACHED_FLOATS = 1 << 27
MAX_CACHED_DATASETS = 4


@dataclass(frozen=True)
class ExactBest:
    """The exact score of the node holding a task's best released score: what the Ladder
    compares against. The validator counts that node again in every session (None: it could
    not read its weights), and the oracle's own releases update it; it is never published."""

    node_id: int
    bps: int | None


@dataclass
class TaskRest:
    """A task whose every session failed in a round: it rests (`failing`) unless a node other
    than those `tried` then is ready (new work is not kept waiting by an old failure)."""

    failing: Failing
    tried: frozenset[int]


# Fault injection for the reliability drills: "after-score-batch:N" ends the process abruptly
# (no cleanup, like a kill -9) right after the N-th batch of scores is on-chain;
# "session-fails:N" makes every session that holds node N fail, as a validator that cannot
# evaluate it would.
FAILPOINT = os.environ.get("BOUNTYTREE_FAILPOINT", "")
Log = Callable[[str], None]


@dataclass
class TaskRound:
    task_id: int
    scored: dict[int, int] = field(default_factory=dict)  # node id -> recorded accuracy bps
    exact: dict[int, int] = field(default_factory=dict)  # node id -> its exact accuracy bps
    rejected: dict[int, str] = field(default_factory=dict)  # node id -> reason
    waiting: dict[int, str] = field(default_factory=dict)
    unscorable: dict[int, str] = field(
        default_factory=dict
    )  # node id -> why its own session failed
    # the pending nodes this round classified (None: it did not get that far), and those among
    # them that wait for files of their own, or under or behind a node that does (Wait.own)
    classified: set[int] | None = None
    own_waits: set[int] = field(default_factory=set)
    session: SessionResult | None = None
    finalized: bool = False
    test_bps: int | None = None  # the winner's test score, recorded this round
    error: str | None = None


# How the oracle logs a scored node: the exact score first, then what the Ladder recorded.
_EXACT = re.compile(r"(node \d+): [0-9.]+%, (recorded )")


def public_line(line: str) -> str:
    """A log line as anyone may see it: without the exact score, which only the oracle's own
    log keeps (publishing it would undo the Ladder)."""
    return _EXACT.sub(r"\1: \2", line)


class Oracle:
    def __init__(
        self,
        market: Market,
        *,
        validator: str | None = None,
        fetch_timeout: float = 60.0,
        log: Log = print,
        settings_env: dict | None = None,
        batch_size: int | None = None,
    ):
        self.market = market
        # At most the contract's MAX_BATCH scores or rejections per call.
        limit = market.limits.max_batch
        self.batch_size = limit if batch_size is None else max(1, min(batch_size, limit))
        self.batches_sent = 0
        self.validator = validator
        self.fetch_timeout = fetch_timeout
        self.log = log
        self.settings_env = settings_env or {}
        self._flat: dict[str, torch.Tensor] = {}  # by CID, bounded by MAX_CACHED_FLOATS
        self._flat_floats = 0
        self._rows: dict[
            tuple[int, int], datasets.Dataset | None
        ] = {}  # the last few datasets read
        self._trained: dict[
            int, tuple[int, int] | Reject
        ] = {}  # node id -> (ops, dataset) or a rejection
        # Finalized tasks whose test score is recorded, or that have none to record.
        self._test_settled: set[int] = set()
        # Private tasks (custody registered, which is for good): their nodes' weights exist
        # only as custodians' shares, so this oracle neither checks nor scores them.
        self._private: set[int] = set()
        self._test_attempts: dict[int, int] = {}
        # Nodes whose session failed: each holds the nodes revealed after it for the fetch
        # timeout from its first failure, and is tried again after a wait that doubles.
        self._failing: dict[int, Failing] = {}
        # Nodes whose sessions failed and that are not recorded since: their task and when the
        # first failure was (chain time). What `note_validator` says on-chain is read from it, so
        # it is kept on disk: an oracle restarted every hour (`--once` from cron, say) used to
        # forget it, and a validator that refused every session was never said to (attacker
        # review). The record names the deployment (contract and its first block's hash): a dev
        # chain reset under the same id and address reuses node ids, whose old clocks would say
        # at once that a new task's validator kept work waiting.
        self._unserved_file = (
            market.chain.settings.home / "oracle" / str(market.chain.chain_id) / "unserved.json"
        )
        self._deployment = _deployment_key(market)
        self._unserved: dict[int, tuple[int, float]] = _read_unserved(
            self._unserved_file, self._deployment
        )
        # Tasks whose best node the validator could not count: on disk, as the record above
        self._unread = UnreadBests(
            self._unserved_file.with_name("unread-best.json"), self._deployment, self.log
        )
        self._task_rest: dict[int, TaskRest] = {}  # tasks whose every session failed
        self._last_success: dict[int, float] = {}  # task -> when a session of it last succeeded
        self._exact_best: dict[int, ExactBest] = {}  # task -> its best node's exact score
        self._pinned: set[str] = set()  # the CIDs this process pinned (each a node's file)
        # What each task's last round said of lasting states (an error, a node waiting), so that
        # a state is said once, and again only when it changes or comes back.
        self._said: dict[int, dict[str, str]] = {}
        self._saying: dict[str, str] = {}
        self._task_saying = 0

    def say(self, what: str, line: str) -> None:
        """Logs `line`, a lasting state of the round's task named `what`, unless the task's last
        round said the same of it."""
        self._saying[what] = line
        if self._said.get(self._task_saying, {}).get(what) != line:
            self.log(line)

    def open_tasks(self) -> list[int]:
        """Unfinalized tasks, and finalized ones whose winner may still need a test score
        (score_test_if_due settles those)."""
        out = []
        for t in self.market.task_ids():
            if t in self._test_settled or self.is_private(t):
                continue
            task = self.market.task(t, with_info=False)
            if task.finalized and not task.winner:
                self._test_settled.add(t)
                continue
            out.append(t)
        return out

    def is_private(self, task_id: int) -> bool:
        """Whether the task is private (created so, for good): the contract refuses this
        oracle's scores on it anyway."""
        if task_id in self._private:
            return True
        if self.market.task(task_id, with_info=False).custodied:
            self._private.add(task_id)
            self.log(f"task {task_id} is private: its custodians hold its nodes; skipped")
            return True
        return False

    def run_round(self, task_ids: list[int] | None = None) -> list[TaskRound]:
        rounds = []
        for task_id in task_ids or self.open_tasks():
            if self.is_private(task_id):
                continue
            r = TaskRound(task_id)
            self._task_saying, self._saying = task_id, {}
            steps = (
                self.score_task,
                self.note_validator,
                self.finalize_if_due,
                self.score_test_if_due,
            )
            for step in steps:
                try:
                    step(task_id, r)
                except StoreUnavailable:
                    raise  # the store is down for every task: the round fails and is retried
                except (
                    Exception
                ) as exc:  # one task's trouble, whatever it is, never stops the others
                    message = (
                        str(exc) if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}"
                    )
                    r.error = r.error or message
                    self.say(f"error {step.__name__}", f"task {task_id}: {message}")
            self._said[task_id] = self._saying
            rounds.append(r)
        return rounds

    # ── checking ────────────────────────────────────────────────────────────

    def _classify(self, task: TaskView) -> tuple[list[Ready], list[Reject], list[Wait]]:
        """Every pending node of the task, in id order: ready to score (files, lineage and
        training checked), rejected with a reason, or waiting (for its files or its parent).
        Whatever a node's files make a check raise rejects that node alone."""
        nodes = self.market.nodes(task.id)
        eth = self.market.chain.w3.eth
        now = eth.get_block("latest")["timestamp"]
        ready: list[Ready] = []
        rejects: list[Reject] = []
        waits: list[Wait] = []
        fate: dict[
            int, str
        ] = {}  # this round's outcome for pending nodes: ready / rejected / waiting
        checked: dict[int, Ready] = {}
        specs: dict[int, ModelSpec | None] = {}

        def age(block: int) -> Callable[[], float]:
            return lambda: now - eth.get_block(block)["timestamp"]

        for node in sorted(nodes.values(), key=lambda n: n.id):
            if node.status != "pending":
                continue
            parent = nodes.get(node.parent_id)
            if parent is not None:
                parent_state = fate.get(parent.id, parent.status)
                if parent_state == "rejected":
                    fate[node.id] = "rejected"
                    rejects.append(
                        Reject(node, Reason.PARENT_REJECTED, f"parent {parent.id} was rejected")
                    )
                    continue
                if parent_state in ("waiting", "pending"):
                    # under a parent that is overdue (never scored) it is overdue too, and holds
                    # nothing up (_in_reveal_order)
                    fate[node.id] = "waiting"
                    above = [w for w in waits if w.node.id == parent.id]
                    waits.append(
                        Wait(
                            node,
                            f"parent {parent.id} is not scored yet",
                            overdue=any(w.overdue for w in above),
                            own=any(w.own for w in above),
                        )
                    )
                    continue

            fetch = Fetcher(self.market.store, age(node.block), self.fetch_timeout, own=True)
            try:
                arch = _architecture(node, nodes)
                if node.kind == "architecture":
                    specs[node.id] = spec = architecture_spec(fetch, node, task.info)
                    ok = check(fetch, node, spec, task.info.input_box)
                    self._check_duplicate(ok, nodes, specs, checked, task)
                else:
                    assert (
                        parent is not None
                    )  # the contract admits a trained node under a node only
                    spec = self._arch_spec(arch, specs, task)
                    ok = check(fetch, node, spec, task.info.input_box)
                    self._check_lineage(ok, nodes, specs, checked, task)
                    parent_fetch = Fetcher(self.market.store, age(parent.block), self.fetch_timeout)
                    self._verify_training(ok, parent, task, parent_fetch, fetch)
                # Its file pinned before it may be scored, never after: its children are checked
                # against it (lineage, replay, their architecture's spec), and the validator asks
                # for it once it is the best. An author who stopped serving it used to hold a child
                # waiting without end (attacker review of the validator's files); and a leader
                # whose pin failed (best effort, after the record) could withdraw its file and
                # keep the lead, the Ladder's exact best uncountable (open finding, session 23).
                for cid in dict.fromkeys((node.cid, ok.node.weights_cid(ok.spec))):
                    if cid not in self._pinned:  # once per process, not a re-read a round
                        fetch.pin(cid, "file")
                        self._pinned.add(cid)
            except StoreUnavailable:
                raise
            except Rejected as exc:
                fate[node.id] = "rejected"
                rejects.append(Reject(node, exc.reason, str(exc)))
            except NotYet as exc:
                fate[node.id] = "waiting"
                waits.append(Wait(node, str(exc), overdue=exc.overdue, own=exc.own))
            except Exception as exc:  # a file that makes a check fail in a way nobody foresaw
                fate[node.id] = "rejected"
                reason = Reason.INVALID_SPEC if node.kind == "architecture" else Reason.CORRUPT
                rejects.append(
                    Reject(
                        node,
                        reason,
                        f"its files cannot be checked ({type(exc).__name__}: {str(exc)[:200]})",
                    )
                )
            else:
                fate[node.id] = "ready"
                checked[node.id] = ok
                ready.append(ok)
        young = [
            w.node.id for w in waits if not w.overdue and age(w.node.block)() < self.fetch_timeout
        ] + [ok.node.id for ok in ready if self._holds_after_failure(ok.node.id, now)]
        return self._in_reveal_order(ready, waits, young), rejects, waits

    def _holds_after_failure(self, node_id: int, now: float) -> bool:
        """Whether a node whose session failed still holds the nodes revealed after it: for the
        fetch timeout from its first failure (so a node that becomes ready late, then fails, is
        held for as long as one that fails at once), and never longer, however often it fails."""
        failing = self._failing.get(node_id)
        return failing is not None and now - failing.since < self.fetch_timeout

    @staticmethod
    def _in_reveal_order(ready: list[Ready], waits: list[Wait], holding: list[int]) -> list[Ready]:
        """The ready nodes that may be recorded now: those revealed before every node in
        `holding` (waiting, for whatever reason, and younger than the fetch timeout; or ready,
        whose session failed lately, and which is itself tried again); the others wait too
        (appended to `waits`). A new best's raise is counted from the task's best when it
        is recorded, so recording a later node first would let a copy of a waiting node (its
        weights read from the store, dressed as new work) take that node's raise. A node holds the
        others for its fetch timeout at most, whatever it waits for (its files, its parent's, its
        architecture's spec), so that no file kept unreadable stalls the task."""
        if not holding:
            return ready
        first = min(holding)  # a holder that is ready itself (its session failed) is retried
        # held behind a node waiting for its own files, a node waits on no validator either
        own = any(w.own for w in waits if w.node.id == first)
        for ok in ready:
            if ok.node.id > first:
                why = f"node {first}, revealed before it, is not scored yet"
                waits.append(Wait(ok.node, why, own=own))
        return [ok for ok in ready if ok.node.id <= first]

    def _arch_spec(
        self, arch: NodeView, specs: dict[int, ModelSpec | None], task: TaskView
    ) -> ModelSpec:
        """The spec of a trained node's architecture (checked this round, or scored earlier); a
        spec that is not in the store right now makes its children wait, not fail."""
        if arch.id not in specs:
            try:
                specs[arch.id] = architecture_spec(
                    Fetcher(self.market.store, lambda: 0.0, float("inf")), arch, task.info
                )
            except (Rejected, SpecError):
                specs[arch.id] = None
        spec = specs[arch.id]
        if spec is None:
            raise Rejected(Reason.INVALID_SPEC, f"its architecture {arch.id} has no usable spec")
        return spec

    def _flat_of(self, node: NodeView, spec: ModelSpec) -> torch.Tensor | None:
        """A scored node's weights, flattened (cached by CID); None if they cannot be read now."""
        cid = node.weights_cid(spec)
        if cid not in self._flat:
            try:
                state = weights_io.load(
                    get_bytes(self.market.store, cid, weights_io.max_bytes(spec)), spec
                )
            except StoreUnavailable:
                raise
            except (StoreError, Rejected):
                return None
            flat = weights_io.flatten(state)
            while self._flat and self._flat_floats + flat.numel() > MAX_CACHED_FLOATS:
                self._flat_floats -= self._flat.pop(next(iter(self._flat))).numel()
            self._flat[cid] = flat
            self._flat_floats += flat.numel()
        return self._flat[cid]

    def _same_layout(
        self,
        nodes: dict[int, NodeView],
        specs: dict[int, ModelSpec | None],
        task: TaskView,
        spec: ModelSpec,
        before: int,
        checked: dict[int, Ready],
    ) -> dict[int, torch.Tensor]:
        """The weights of every earlier, not rejected node of the task whose architecture has the
        same tensors as `spec`, whatever architecture node it hangs from: a copy re-hung under a
        duplicate architecture is compared with its original all the same."""
        earlier: dict[int, torch.Tensor] = {}
        for other in nodes.values():
            if other.id >= before or other.status == "rejected":
                continue
            if other.id in checked:
                if checked[other.id].spec.tensors == spec.tensors:
                    earlier[other.id] = checked[other.id].flat
                continue
            if other.status != "scored":
                continue
            try:
                other_spec = self._arch_spec(_architecture(other, nodes), specs, task)
            except (Rejected, NotYet):
                continue
            if (
                other_spec.tensors == spec.tensors
                and (flat := self._flat_of(other, other_spec)) is not None
            ):
                earlier[other.id] = flat
        return earlier

    def _check_duplicate(
        self,
        ok: Ready,
        nodes: dict[int, NodeView],
        specs: dict[int, ModelSpec | None],
        checked: dict[int, Ready],
        task: TaskView,
    ) -> None:
        """An architecture that repeats an earlier one of the task (same layers and recipe, the
        seed and name aside) adds no expertise: rejected as a copy. Only architectures that are
        scored, or passed their checks this round, count: one that is itself rejected (trained
        weights, say) must not shut out the design it imitates."""
        design = _design(ok.spec)
        for other in nodes.values():
            if (
                other.parent_id
                or other.id >= ok.node.id
                or not (other.status == "scored" or other.id in checked)
            ):
                continue
            try:
                other_spec = self._arch_spec(other, specs, task)
            except (Rejected, NotYet):
                continue
            if _design(other_spec) == design:
                raise Rejected(
                    Reason.COPY, f"architecture {ok.node.id} repeats architecture {other.id}"
                )

    def _check_lineage(
        self,
        ok: Ready,
        nodes: dict[int, NodeView],
        specs: dict[int, ModelSpec | None],
        checked: dict[int, Ready],
        task: TaskView,
    ) -> None:
        """Rejects a copy (see lineage.py), compared with every earlier node of the same layout."""
        earlier = self._same_layout(nodes, specs, task, ok.spec, ok.node.id, checked)
        if ok.node.parent_id not in earlier:
            raise NotYet(f"the weights of parent {ok.node.parent_id} cannot be read now")
        verdict = check_lineage(ok.node.id, ok.flat, ok.node.parent_id, earlier)
        if verdict.is_copy:
            raise Rejected(Reason.COPY, verdict.detail)

    def _dataset_rows(
        self, task: TaskView, dataset_id: int, fetch: Fetcher
    ) -> datasets.Dataset | None:
        """A published dataset's rows (None if it cannot be trained on); a dataset not in the
        store yet is waited for within the node's fetch timeout, never remembered as bad. Not
        the node's own file: a node waiting for it keeps the word on the validator (_held)."""
        key = (task.id, dataset_id)
        if key not in self._rows:
            try:
                cid = self.market.dataset_cid(task.id, dataset_id)
                raw = replace(fetch, own=False).get(
                    cid, datasets.MAX_DATASET_BYTES, f"dataset {dataset_id}"
                )
                rows = datasets.load_bytes(raw, f"dataset {dataset_id}", task.info.label_column)
                datasets.check_against(
                    rows, task.info.num_features, task.info.num_classes, f"dataset {dataset_id}"
                )
            except (NotYet, StoreUnavailable):
                raise
            except Rejected as exc:
                if (
                    exc.reason == Reason.MISSING
                ):  # past this node's time limit; a newer node may still wait
                    return None
                rows = None
            except (UserError, MemoryError):  # unreadable or unfit: nothing can be trained on it
                rows = None
            while len(self._rows) >= MAX_CACHED_DATASETS:
                self._rows.pop(next(iter(self._rows)))
            self._rows[key] = rows
        return self._rows[key]

    def _verify_training(
        self, ok: Ready, parent: NodeView, task: TaskView, parent_fetch: Fetcher, fetch: Fetcher
    ) -> None:
        """Replays a node's training where the data is public (see replay.py): sets its verified
        operations and dataset, or rejects it. A node's outcome is kept, so it is replayed once."""
        node, _spec = ok.node, ok.spec
        if node.id not in self._trained:
            self._trained[node.id] = self._replay(ok, parent, task, parent_fetch, fetch)
        outcome = self._trained[node.id]
        if isinstance(outcome, Reject):
            raise Rejected(outcome.reason, outcome.detail)
        ok.verified_ops, ok.dataset_id = outcome

    def _replay(
        self, ok: Ready, parent: NodeView, task: TaskView, parent_fetch: Fetcher, fetch: Fetcher
    ) -> tuple[int, int] | Reject:
        node, spec = ok.node, ok.spec
        parent_cid = parent.weights_cid(spec)
        parent_weights = parent_fetch.get(parent_cid, weights_io.max_bytes(spec), "parent weights")
        if node.dataset_id:
            rows = self._dataset_rows(task, node.dataset_id, fetch)
            if rows is None:
                return Reject(
                    node,
                    Reason.REPLAY_MISMATCH,
                    f"its dataset {node.dataset_id} cannot be trained on",
                )
            cost = replay_cost(spec, rows)
            if cost is not None:
                return Reject(
                    node, Reason.TOO_COSTLY, f"replaying it on dataset {node.dataset_id} {cost}"
                )
            try:
                result = replay(spec, parent_weights, rows, ok.flat)
            except (
                Exception
            ) as exc:  # the recipe cannot run on these rows (a BatchNorm batch of one, …)
                return Reject(
                    node,
                    Reason.REPLAY_MISMATCH,
                    f"training on dataset {node.dataset_id} fails "
                    f"({type(exc).__name__}: {str(exc)[:120]})",
                )
            if not result.matches:
                return Reject(
                    node,
                    Reason.REPLAY_MISMATCH,
                    f"training parent {parent.id} on dataset "
                    f"{node.dataset_id} gives other weights (off by "
                    f"{result.distance:.2e})",
                )
            return result.ops, node.dataset_id
        # Declared private: only datasets published before the node was revealed can be its source.
        for dataset_id, block in self.market.datasets_of(task.id)[:MAX_ATTRIBUTION_REPLAYS]:
            if block >= node.block:
                break
            try:
                rows = self._dataset_rows(task, dataset_id, fetch)
                if rows is None or replay_cost(spec, rows) is not None:
                    continue
                result = replay(spec, parent_weights, rows, ok.flat)
            except (NotYet, StoreUnavailable):
                raise
            except Exception:  # a dataset the recipe cannot run on reproduces nothing
                continue
            if result.matches:
                self.log(
                    f"task {task.id} node {node.id}: declared private data, but dataset {dataset_id} "
                    f"reproduces it; attributed to the dataset"
                )
                return result.ops, dataset_id
        return 0, 0

    # ── scoring ─────────────────────────────────────────────────────────────

    def score_task(self, task_id: int, r: TaskRound) -> None:
        task = self.market.task(task_id)
        if task.finalized:  # nothing can be recorded in a finalized task
            return
        validation = registered(
            self.market.chain.settings.home, self.market.chain.chain_id, task_id
        )
        if (
            self.validator is None and validation is None
        ):  # before any check: no work without a validator
            raise UserError(
                f"no validator for task {task_id}: run `python -m oracle validator --task {task_id} "
                f"--validation FILE` on the sponsor's host and pass its address with --validator"
            )
        ready, rejects, waits = self._classify(task)
        r.classified = {x.node.id for x in ready} | {x.node.id for x in rejects}
        r.classified |= {w.node.id for w in waits}
        r.own_waits = {w.node.id for w in waits if w.own}
        r.waiting = {w.node.id: w.detail for w in waits}
        r.unscorable |= {w.node.id: w.detail for w in waits if w.overdue}
        for w in waits:
            # Said again when a wait turns overdue: the operator learns the node will not be
            # scored and that finalize no longer waits for it.
            state = "overdue, not scored; finalize does not wait for it" if w.overdue else "waiting"
            self.say(f"wait {w.node.id}", f"task {task_id} node {w.node.id}: {state} ({w.detail})")
        for batch in _batches(rejects, self.batch_size):
            sent = self.market.reject_nodes(task_id, [(x.node.id, x.reason) for x in batch])
            for x in batch:
                r.rejected[x.node.id] = x.reason.label
                self.log(
                    f"task {task_id} node {x.node.id}: rejected ({x.reason.label}: {x.detail})"
                )
            self.log(f"task {task_id}: {len(batch)} rejected  {sent}")
        now = self.market.chain.w3.eth.get_block("latest")["timestamp"]
        resting = {
            x.node.id: f for x in ready if (f := self._failing.get(x.node.id)) and f.resting(now)
        }
        for node_id, f in resting.items():
            why = f"its session failed {f.count} time(s); tried again in {f.next_try - now:.0f} s"
            r.unscorable[node_id] = why
            self.say(f"wait {node_id}", f"task {task_id} node {node_id}: not scored ({why})")
        ready = [x for x in ready if x.node.id not in resting]
        if not ready:
            return
        unread = self._unread.resting(task_id, task.released_best, now)
        # no session spent on nodes that would wait again; one whose own session failed is
        # tried at its own pace (its clock towards the word on the validator runs meanwhile)
        if unread is not None and not any(x.node.id in self._failing for x in ready):
            why = (
                f"the validator could not count the best node {task.released_best}; "
                f"tried again in {unread.next_try - now:.0f} s"
            )
            for x in ready:
                r.waiting[x.node.id] = why
            self.say("unread best", f"task {task_id}: {len(ready)} node(s) wait ({why})")
            return
        tried = frozenset(x.node.id for x in ready)
        rest = self._task_rest.get(task_id)
        if rest is not None and rest.failing.resting(now) and tried <= rest.tried:
            self.say(
                "rest",
                f"task {task_id}: every session failed lately; tried again in "
                f"{rest.failing.next_try - now:.0f} s",
            )
            return
        self.log(f"task {task_id}: scoring {len(ready)} node(s) in one two-party session")
        try:
            correct = self._evaluate(task, ready, validation, r)
        except UserError:
            if rest is None:
                failing = Failing(now, base_s=TASK_RETRY_BASE_S, max_s=TASK_RETRY_MAX_S)
                rest = self._task_rest[task_id] = TaskRest(failing, tried)
            rest.failing.failed(now, now)
            rest.tried = rest.tried | tried
            for x in ready:  # counted against each node, its next try paced by the task's rest
                self._failing.setdefault(x.node.id, Failing(since=now)).count += 1
            self._note_unserved(task_id, [x.node.id for x in ready], now)
            raise
        self._task_rest.pop(task_id, None)
        if correct:
            self._last_success[task_id] = now
        scores, done = [], set()
        # A node whose session failed holds the nodes revealed after it back, as a node waiting
        # for its files does (`_in_reveal_order`) and for as long (the fetch timeout, from its
        # first failure): recorded first, a copy of it could take its raise. Later rounds hold
        # them before any session (`_classify`), so they are not evaluated again meanwhile.
        for x in ready:
            if x.node.id in correct:
                self._failing.pop(x.node.id, None)
            else:
                failing = self._failing.setdefault(x.node.id, Failing(since=now))
                failing.failed(now, failing.since + self.fetch_timeout)
        # counted is not recorded (a node held back in reveal order keeps its clock)
        self._note_unserved(task_id, [x.node.id for x in ready if x.node.id not in correct], now)
        holding = [x.node.id for x in ready if self._holds_after_failure(x.node.id, now)]
        held: list[Wait] = []
        counted = self._in_reveal_order([x for x in ready if x.node.id in correct], held, holding)
        for w in held:
            r.waiting[w.node.id] = w.detail
            self.say(f"wait {w.node.id}", f"task {task_id} node {w.node.id}: waiting ({w.detail})")
        pending = r.classified or set()
        for x in counted:  # in id order
            # a node whose pending parent got no score (in this session, resting, waiting)
            # cannot be recorded: the contract refuses the whole batch (ParentNotScored; a
            # resting parent stalled every record of its task, attacker review)
            if x.node.parent_id in pending and x.node.parent_id not in done:
                why = f"parent {x.node.parent_id} is not scored yet"
                r.waiting[x.node.id] = why
                self.say(f"wait {x.node.id}", f"task {task_id} node {x.node.id}: waiting ({why})")
                continue
            done.add(x.node.id)
            scores.append((x, correct[x.node.id]))
        if not scores:
            return
        least, most = self._best_bounds(task_id, task.info.margin_bps)
        if least == most:
            self._unread.read(task_id)
        else:  # the validator could not count the best
            scores = self._held_for_best(task, scores, now, r)
            if not scores:
                return
        steps = self._ladder(task_id, task.info.margin_bps, scores, most)
        for batch in _batches(scores, self.batch_size):
            records = [
                Score(x.node.id, steps[x.node.id].recorded_bps, x.verified_ops, x.dataset_id)
                for x, _ in batch
            ]
            sent = self.market.record_scores(task_id, records)
            for rec in records:
                step = steps[rec.node_id]
                if step.improved:
                    self._exact_best[task_id] = ExactBest(rec.node_id, step.exact_bps)
                r.scored[rec.node_id] = rec.accuracy_bps
                r.exact[rec.node_id] = step.exact_bps
                self._unserved.pop(rec.node_id, None)
                self.log(
                    f"task {task_id} node {rec.node_id}: {step.exact_bps / 100:.2f}%, recorded "
                    f"{rec.accuracy_bps / 100:.2f}%"
                    + (" (a new best)" if step.improved else " (its parent's: not a new best)")
                    + (
                        f", {rec.verified_ops:,} ops replayed on dataset {rec.dataset_id}"
                        if rec.verified_ops
                        else ""
                    )
                )
            self.log(f"task {task_id}: {len(batch)} scored  {sent}")
            self._save_unserved()
            self.batches_sent += 1
            if f"after-score-batch:{self.batches_sent}" == FAILPOINT:
                os._exit(137)

    def _best_bounds(self, task_id: int, margin_bps: int) -> tuple[int, int]:
        """The least and the most the exact score of the task's best node can be: its exact
        score, as the validator counted it in this round's session (or the oracle's own
        release); when the validator could not read the best, anything from its release to
        the next (release + η − 1)."""
        task = self.market.task(task_id, with_info=False)
        if not task.released_best:
            return 0, 0  # nothing released yet: the first release is η above 0
        known = self._exact_best.get(task_id)
        if known is None or known.node_id != task.released_best:
            # every session's ticket names the chain's best and the validator counts it,
            # and only this oracle records: not reached unless the chain changed under it
            raise UserError(
                f"task {task_id}: no count of the best node {task.best_node} (the Ladder "
                "compares against its exact score); nothing recorded"
            )
        if known.bps is not None:
            return known.bps, known.bps
        return task.best_bps, task.best_bps + margin_bps - 1

    def _ladder(
        self, task_id: int, margin_bps: int, scores: list[tuple[Ready, int]], best: int
    ) -> dict[int, ladder.Step]:
        """What each node records (bountytree/market/ladder.py), in the order they are recorded,
        from `best`, the exact score of the task's best node, and the parents' scores on-chain
        right now: only the oracle records scores."""
        recorded = {
            n.id: n.accuracy_bps
            for n in self.market.nodes(task_id).values()
            if n.status == "scored"
        }
        entries = [ladder.Entry(x.node.id, x.node.parent_id, bps) for x, bps in scores]
        steps = ladder.climb(entries, best_bps=best, margin_bps=margin_bps, recorded=recorded)
        return {step.node_id: step for step in steps}

    def _held_for_best(
        self, task: TaskView, scores: list[tuple[Ready, int]], now: float, r: TaskRound
    ) -> list[tuple[Ready, int]]:
        """The scores that may be recorded now, counted in a session that could not count the
        best: those of nodes revealed HOLD_S ago or more, recorded against the most the best
        can be; every later one waits for a session that counts it (oracle/unread_best.py)."""
        eth = self.market.chain.w3.eth
        # from its reveal, or from when the best was first found unread: a node delayed past
        # an hour (an oracle or validator away) gets its hour all the same (second review)
        since = self._unread.since(task.id, task.released_best, now)
        held, hold_ends = len(scores), now
        for i, (x, _) in enumerate(scores):  # in reveal order: the held are the last ones
            ends = max(eth.get_block(x.node.block)["timestamp"], since) + HOLD_S
            if now < ends:
                held, hold_ends = i, ends
                break
        self._unread.unread(task.id, task.released_best, now, hold_ends)
        # counted: the validator served them, and their clock towards the word that it keeps
        # work waiting stops (it ran on while they waited, second review)
        if any(self._unserved.pop(x.node.id, None) for x, _ in scores[held:]):
            self._save_unserved()
        if held:
            self.log(
                f"task {task.id}: the best node {task.released_best} is still uncounted "
                f"{HOLD_S / 3600:g} h after node(s) {[x.node.id for x, _ in scores[:held]]} "
                "were revealed: recorded against the most its exact score can be"
            )
        why = (
            f"the validator could not count the best node {task.released_best}; held until a "
            f"session counts it, for up to {HOLD_S / 3600:g} h from its reveal"
        )
        for x, _ in scores[held:]:
            r.waiting[x.node.id] = why
            self.say(f"wait {x.node.id}", f"task {task.id} node {x.node.id}: waiting ({why})")
        return scores[:held]

    def _evaluate(
        self,
        task: TaskView,
        ready: list[Ready],
        validation,
        r: TaskRound,
        files: dict[str, int] | None = None,
    ) -> dict[int, int]:
        """Accuracy (bps) of each node, from one two-party session; if the session fails, each
        node alone, so no node keeps the others from being scored. When every session fails,
        the validator or the machine is at fault, not a node: the round fails (UserError) and is
        retried. More nodes than a session admits go in parts, and a part whose every node fails
        alone fails alone: its nodes are left unscored (and rest, `Failing`), the others are
        scored (nodes that each fail, revealed first, used to fail the round, so no later node
        was ever scored). A count out of [0, rows] or a row count other than the task's is
        refused (the node stays pending, unblamed)."""
        if files is None:  # read once for the round's sessions (its parts, each node alone)
            files = self._session_files(task, ready)
        if len(ready) > MAX_NODES_PER_SESSION:  # the validator admits at most this many per session
            out: dict[int, int] = {}
            parts = _batches(ready, MAX_NODES_PER_SESSION)
            failed: list[tuple[list[Ready], UserError]] = []
            for part in parts:
                try:
                    out |= self._evaluate(task, part, validation, r, files)
                except UserError as exc:
                    failed.append((part, exc))
            if len(failed) == len(parts):
                raise failed[0][1]
            for part, why in failed:
                for x in part:
                    r.unscorable.setdefault(x.node.id, str(why))
            return out
        info = task.info
        expect = {
            "rows": info.validation_rows,
            "features": info.num_features,
            "classes": info.num_classes,
        }
        try:
            if FAILPOINT in {f"session-fails:{x.node.id}" for x in ready}:
                raise UserError(f"the session failed ({FAILPOINT})")
            session = run_session(
                task.id,
                ready,
                ticket=lambda link: issue(
                    self.market, task.id, [x.node.id for x in ready], link=link
                ),
                expect=expect,
                validator_key=info.validator_key,
                validation_file=validation,
                validator=self.validator,
                settings_env=self.settings_env,
                files=files,
                progress=lambda line: self.log(f"task {task.id}: {line}"),
            )
        except UserError as exc:
            if len(ready) == 1:
                raise
            self.log(f"task {task.id}: {exc}; scoring each node in a session of its own")
            out = {}
            failures: dict[int, str] = {}
            for x in ready:
                try:
                    out |= self._evaluate(task, [x], validation, r, files)
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
            self.log(
                f"task {task.id}: the validator reported {session.rows} rows, the task has {expected}; "
                "result refused"
            )
            return {}
        out = {}
        for x in ready:
            count = session.correct.get(x.node.id)
            if not isinstance(count, int) or not 0 <= count <= session.rows:
                self.log(
                    f"task {task.id} node {x.node.id}: count {count!r} out of [0, {session.rows}]; refused"
                )
                continue
            out[x.node.id] = ladder.bps(count, session.rows)
        if session.best is not None:  # the node the ticket named, checked by the model party
            b = session.best
            if b.correct is None and self._best_was_given(task, b.node_id, files, session):
                # a validator that says it cannot count the best though the model party gave it
                # (or would have given) its files: every node counted would wait for an hour,
                # then be recorded against the most the best can be (a margin's release lost,
                # the target perhaps not reached: the sponsor's gain); a session it failed
                raise UserError(
                    f"the validator did not count the best node {b.node_id}, whose files the "
                    "model party gave it when asked; nothing recorded"
                )
            exact = None if b.correct is None else ladder.bps(b.correct, session.rows)
            self._exact_best[task.id] = ExactBest(b.node_id, exact)
        return out

    def _session_files(self, task: TaskView, ready: list[Ready]) -> dict[str, int]:
        """The files (CID: most bytes) the model party may give the validator when its store
        lacks them: each node's spec and weights, which this oracle read to check it, and the
        best's (docs/design.md, "The oracle's checks"). The validator takes a file only when its
        bytes are the CID the chain records."""
        nodes = self.market.nodes(task.id)
        out: dict[str, int] = {}
        for x in ready:
            out[_architecture(x.node, nodes).cid] = MAX_SPEC_BYTES
            out[x.node.weights_cid(x.spec)] = weights_io.max_bytes(x.spec)
        return out | self._best_files(task, nodes)

    def _best_files(self, task: TaskView, nodes: dict[int, NodeView]) -> dict[str, int]:
        """The spec and weights (CID: most bytes) of the task's best node, as far as this
        oracle can read them now (without them, the validator counts the best only from its own
        copy or store)."""
        best = nodes.get(task.released_best)
        if best is None:
            return {}
        arch = _architecture(best, nodes)
        out = {arch.cid: MAX_SPEC_BYTES}
        try:
            spec = self._arch_spec(arch, {}, task)
            out[best.weights_cid(spec)] = weights_io.max_bytes(spec)
        except (Rejected, StoreError, NotYet):  # the validator counts the best without it
            pass
        return out

    def _best_was_given(
        self, task: TaskView, best: int, files: dict[str, int], session: SessionResult
    ) -> bool:
        """Whether the model party offered the validator both of the best node's files (its
        spec and weights, pinned by this oracle before it was scored) and gave each it was asked
        for: an honest validator then always counts the best (from its copy, its store or
        those files). A file the model party could not read when asked (its store busy or
        down, the file lost) blames nobody: the nodes then wait for a count of the best."""
        if best != task.released_best:  # not the best the offer was made for
            return False
        offered = self._best_files(task, self.market.nodes(task.id))
        return (
            len(offered) == 2
            and all(cid in files for cid in offered)
            and not set(offered) & session.undelivered
        )

    def score_test_if_due(self, task_id: int, r: TaskRound) -> None:
        """Once a task is finalized, scores its winner on the sponsor's test part, once, in a
        session of its own, and records that score. The validator admits one such session per
        task; a session that fails is tried again in later rounds, at most MAX_TEST_SESSIONS (as many as the validator admits)
        times in this process."""
        if task_id in self._test_settled:
            return
        task = self.market.task(task_id)
        if not task.finalized:
            return
        if (
            not task.winner
            or not task.info.test_rows
            or (self.market.test_score(task_id) is not None)
        ):
            self._test_settled.add(task_id)
            return
        home, chain_id = self.market.chain.settings.home, self.market.chain.chain_id
        validation = registered(home, chain_id, task_id)
        if self.validator is None and registered_test(home, chain_id, task_id) is None:
            self._test_settled.add(task_id)
            self.log(f"task {task_id}: no test part on this machine and no --validator; not tested")
            return
        attempts = self._test_attempts[task_id] = self._test_attempts.get(task_id, 0) + 1
        if attempts >= MAX_TEST_SESSIONS:
            self._test_settled.add(task_id)
        winner = self._winner(task)
        self.log(f"task {task_id}: scoring winner node {task.winner} on the test part, once")
        session = run_session(
            task_id,
            [winner],
            ticket=lambda link: issue(self.market, task_id, [task.winner], part=TEST, link=link),
            expect={
                "rows": task.info.test_rows,
                "features": task.info.num_features,
                "classes": task.info.num_classes,
            },
            validator_key=task.info.validator_key,
            validation_file=validation,
            validator=self.validator,
            settings_env=self.settings_env,
            files=self._session_files(task, [winner]),
        )
        count = session.correct.get(task.winner)
        if session.rows != task.info.test_rows or not (
            isinstance(count, int) and 0 <= count <= session.rows
        ):
            raise UserError(
                f"task {task_id}: the test session reported {count!r} of {session.rows} rows "
                f"(the task has {task.info.test_rows}); result refused"
            )
        bps = ladder.bps(count, session.rows)
        sent = self.market.record_test_score(task_id, bps)
        self._test_settled.add(task_id)
        r.test_bps = bps
        self.log(
            f"task {task_id}: winner node {task.winner} scores {bps / 100:.2f}% on the test part  {sent}"
        )

    def _winner(self, task: TaskView) -> Ready:
        """The finalized winner's files, checked as any node's are (it was scored with them)."""
        nodes = self.market.nodes(task.id)
        node = nodes[task.winner]
        arch = _architecture(node, nodes)
        anyway = Fetcher(self.market.store, lambda: 0.0, float("inf"))
        spec = architecture_spec(anyway, arch, task.info)
        return check(anyway, node, spec, task.info.input_box)

    def note_validator(self, task_id: int, r: TaskRound) -> None:
        """Says on-chain whether the sponsor's validator keeps this task's work waiting
        (`Market.mark_validation_unread`): once a pending node's sessions have failed for
        GIVE_UP_S without its score being recorded since (the validator away, or refusing it),
        and still waiting on the validator (`_held`), and again, cleared, once no pending node
        waits on it. A task
        finalized leaving nodes pending burns the sponsor's bond only while it is said: before,
        any node left pending did, so an oracle away for a day past the deadline, or a
        stranger's node whose files never came, cost an honest sponsor its bond. The word used
        to be taken back only once no node of the task was pending, which a busy task never
        is: a validator away for an hour once kept it to the end, and a node left pending for
        a reason of its own then burned the bond (open finding, "the validation word is per
        task")."""
        task = self.market.task(task_id, with_info=False)
        if task.finalized:
            return
        if task.validation_unread:
            if task.pending_nodes == 0 or _held(self.market.nodes(task_id), r) == set():
                sent = self.market.mark_validation_unread(task_id, False)
                self.log(
                    f"task {task_id}: the validator scored every node it was given; said "
                    f"on-chain  {sent}"
                )
            return
        mine = {n: since for n, (t, since) in self._unserved.items() if t == task_id}
        if not mine:
            return
        now = self.market.chain.w3.eth.get_block("latest")["timestamp"]
        nodes = self.market.nodes(task_id)
        held = _held(nodes, r)
        gone = [n for n in mine if n not in nodes or nodes[n].status != "pending"]
        if gone:  # rejected, or scored by another oracle
            for n in gone:
                del self._unserved[n], mine[n]
            self._save_unserved()
        late = sorted(
            n
            for n, since in mine.items()
            if now - since >= GIVE_UP_S and (held is None or n in held)
        )
        if late:
            sent = self.market.mark_validation_unread(task_id, True)
            self.log(
                f"task {task_id}: the validator has not scored node(s) {late} for "
                f"{GIVE_UP_S / 3600:g} h; said on-chain (a finalize leaving them burns the "
                f"sponsor's bond)  {sent}"
            )

    def _note_unserved(self, task_id: int, node_ids: list[int], now: float) -> None:
        added = [n for n in node_ids if n not in self._unserved]
        for n in added:
            self._unserved[n] = (task_id, now)
        if added:
            self._save_unserved()

    def _save_unserved(self) -> None:
        nodes = {str(n): [t, s] for n, (t, s) in self._unserved.items()}
        try:
            atomic_write_json(self._unserved_file, {"deployment": self._deployment, "nodes": nodes})
        except OSError as exc:  # kept in memory: said by this process, forgotten by the next
            self.log(f"the failed sessions' record is not kept ({exc})")

    def finalize_if_due(self, task_id: int, r: TaskRound) -> None:
        """Finalizes a due task once nothing submitted is left to score: every node scored or
        rejected, except nodes overdue for their files and nodes whose own sessions kept
        failing (GIVE_UP_S); or once the grace period is over. Never
        while a commitment made in time may still be revealed (the contract waits for it too)."""
        task = self.market.task(task_id, with_info=False)
        if task.reveals_open and (task.target_reached or task.seconds_left < 0):
            self.say(
                "reveals",
                f"task {task_id}: due, waiting for {task.open_commitments} commitment(s) to be "
                f"revealed (at the latest until {_utc(task.reveals_close_at)})",
            )
            return
        if not task.finalizable(by_scorer=True):
            return
        # left pending: nodes overdue for their files, and nodes whose sessions kept failing
        # long enough (GIVE_UP_S) while the validator worked; a node that failed lately is
        # still work to do
        now = self.market.chain.w3.eth.get_block("latest")["timestamp"]
        last = self._last_success.get(task_id, float("-inf"))
        given_up = {n for n in r.unscorable if n not in self._failing}  # overdue: pending
        failed = {n for n, f in self._failing.items() if f.given_up(now, last)}
        if failed:  # of any task: which are this task's, pending (read only when there are some)
            nodes = self.market.nodes(task_id).values()
            given_up |= failed & {n.id for n in nodes if n.status == "pending"}
        work_left = task.pending_nodes - len(given_up)
        if work_left > 0 and not task.finalizable(by_scorer=False):
            self.say(
                "due", f"task {task_id}: due, {work_left} node(s) still to score before finalizing"
            )
            return
        if failed & given_up and not task.validation_unread:
            # nodes left because their sessions kept failing: said first, whatever the last
            # round's clock said (a block between the two reads, a word whose send failed)
            self.market.mark_validation_unread(task_id, True)
        # the nodes left pending are exactly those it saw: one revealed since refuses the call
        leaving = task.pending_nodes if task.pending_nodes else None
        out = self.market.finalize(task_id, leaving=leaving)
        r.finalized = True
        self.log(f"task {task_id}: finalized, winner node {out.winner}  {out.sent}")


def _held(nodes: dict[int, NodeView], r: TaskRound) -> set[int] | None:
    """The task's pending nodes that wait on the validator, as this round found them: every
    node it classified and did not find waiting for files of its own, or under or behind a
    node that does (Wait.own), so a node ready and not recorded (its session failed, it rests, it waits
    for the best's count, or behind such a node), and a child of a node recorded this
    round, never tried yet. A node revealed since the round's classification is not held
    (the validator has not had it). None when the round classified nothing: it knows of
    no node. Read from the round, never from the failures' clock, so an oracle process
    without the clock (restarted with a fresh home, a second one) on the same store says
    what any other would: the first version, which counted only the nodes whose sessions had failed,
    took the word back while the children of late roots waited untried (its attacker
    review)."""
    if r.classified is None:
        return None
    return {
        n.id
        for n in nodes.values()
        if n.status == "pending" and n.id in r.classified and n.id not in r.own_waits
    }


def _deployment_key(market: Market) -> str:
    """The contract's address and its first block's hash ("" if the chain did not answer: a
    record made then is never read back)."""
    try:
        first = market.chain.w3.eth.get_block(market.first_block)["hash"].hex()
    except Exception:
        return ""
    return f"{market.tree.address.lower()}@{first.removeprefix('0x')}"


def _read_unserved(path: Path, deployment: str) -> dict[int, tuple[int, float]]:
    """The record `_save_unserved` keeps: node id -> (its task, when its sessions first
    failed); nothing if it is missing or another deployment's."""
    try:
        raw = json.loads(path.read_text())
        if not deployment or raw["deployment"] != deployment:
            return {}
        return {int(n): (int(t), float(s)) for n, (t, s) in raw["nodes"].items()}
    except (OSError, ValueError, AttributeError, TypeError, KeyError, ArithmeticError):
        return {}


def _utc(timestamp: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(timestamp))


def _design(spec: ModelSpec) -> str:
    """What makes two architectures the same design: layers and recipe, seed and name aside."""
    data = spec.to_json()
    data.pop("name", None)
    data.pop("init_weights", None)
    data["training"] = {k: v for k, v in data["training"].items() if k != "seed"}
    return json.dumps(data, sort_keys=True)


def _architecture(node: NodeView, nodes: dict[int, NodeView]) -> NodeView:
    while node.parent_id:
        node = nodes[node.parent_id]
    return node


def _batches(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def serve(
    make_oracle: Callable[[], Oracle],
    task_ids: list[int] | None,
    interval: float,
    log: Log = print,
    stop: Callable[[], bool] = lambda: False,
) -> None:
    """Runs rounds forever; an unreachable chain or store is retried with backoff, said once per try."""
    backoff = 1.0
    oracle = None
    while not stop():
        try:
            oracle = oracle or make_oracle()
            oracle.run_round(task_ids)
            backoff = 1.0
            time.sleep(interval)
        except (
            Exception
        ) as exc:  # a chain or store down (requests' ConnectionError is an OSError), or worse
            oracle = None
            text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            log(f"unavailable: {text}; retrying in {backoff:.0f}s")
            time.sleep(backoff)
            backoff = min(backoff * 2, 60.0)
