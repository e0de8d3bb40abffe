"""A custodian's rounds: for each private task it holds, in node-id order, whatever the next
node needs, one MPC session at a time (both custodians walk the same nodes in the same order
over the same chain, so they arrive at the same session).

Per pending node:
- an architecture: its weights are public (checked to be its spec's seeded initialisation and
  a layout the custodians can train); its holding is (weights, 0) on custodian 0 and (0, 0)…
  i.e. a share of a public value, made without a session;
- a trained node: its record names the data owner's rows sealed to each custodian; the two
  train the child from the parent's shares in a session (`session.TRAIN`);
- then each commits to its share on-chain, and once both have, they score it in a session on
  the sponsor's shared validation rows with the Ladder inside (`session.SCORE`) and each
  attests the record; the second equal attestation records it (contracts/PrivateCustody.sol).
A node whose files are not what they should be is rejected by both, with its reason.
Once the task is finalized, each hands its share of the winner over to the sponsor.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import save

from bountytree.errors import UserError
from bountytree.files import atomic_write_json
from bountytree.market.actions import Market, NodeView, TaskView
from bountytree.market.custody import REJECT, SCORE, Custody, CustodyView
from bountytree.models import weights as weights_io
from bountytree.models.fields import SpecError
from bountytree.models.flops import training_ops
from bountytree.models.spec import ModelSpec, private_problem
from bountytree.mpc.links import HANDSHAKE_S
from bountytree.private import handover, rows
from bountytree.private.sealing import read_private_key
from bountytree.private.shares import Share, ShareError, commitment, public_share
from bountytree.processes import die_with_parent
from bountytree.reasons import Reason, Rejected
from bountytree.storage.store import (
    BlockCorrupted,
    BlockMissing,
    StoreError,
    StoreUnavailable,
    TooLarge,
    get_bytes,
)

from . import session
from .clocks import Clocks
from .holdings import Holdings

Log = Callable[[str], None]
# Scoring sessions of one node that revealed its record, after which this custodian scores it
# no more (one that ended well is attested; one that did not gives the node up): each run shows a
# deviating custodian what its record compares, of its choosing (custodian 0 adds every public
# operand of the Ladder, its thresholds included), so a node is revealed once (holdings.py).
MAX_SCORING_RUNS = 1
# Seconds a node's file, or the sponsor's validation share, may stay missing from the store
# before its owner is blamed (the node rejected; the sponsor's share said unreadable on-chain).
FETCH_TIMEOUT = 60.0
# Seconds every session with the other custodian may find no dealer before this custodian says
# on-chain that the dealer does not come (PrivateCustody.reportDealer).
DEALER_TIMEOUT = 600.0
# Times one kept record may be attested, each after the chain dropped the last (two attestations
# that differ are both dropped), before this custodian gives the node up.
MAX_ATTESTATIONS = 3
# Sessions of one node of one kind (trainings, or scorings) that ran over the session budget,
# the dealer not to blame, after which this custodian rejects the node as TOO_SLOW (its stake
# comes back, whatever the other says beside it) and the other follows (a scoring's, once one of
# its own ran over too). The operations counted before
# training (MAX_PRIVATE_OPS) are PyTorch's multiply-adds, which leave out comparisons (ReLU, max
# pooling) and round trips, far dearer on shares, and a machine may be slower than the one the
# bound was set on. A node too slow for the budget used to be tried again every round, each time
# for the whole budget, holding both custodians, the dealer and every node behind it (and a word
# on the validation share on it). Scorings count too: an architecture is never trained, so a wide
# one cheap to propose but too slow to score on the sponsor's rows held every task of its
# custodians for one fee (a sponsor whose rows are too many to score any node in the budget sees
# its nodes refused, their stakes back: its own task's loss, docs/private-models.md).
MAX_OVER_BUDGET = 2
# What custodians train on shares: at most this many operations (about half an hour of MPC
# here), and batches whose widest layer the dealer can deal for.
MAX_PRIVATE_OPS = 10**11
MAX_BATCH_VALUES = 1 << 22


def training_cost(spec: ModelSpec, rows: int) -> str | None:
    """Why training the spec on `rows` rows on shares is too costly, or None."""
    ops = training_ops(spec, rows * spec.training["epochs"])
    if ops > MAX_PRIVATE_OPS:
        return f"training would take {ops:.2e} operations on shares, at most {MAX_PRIVATE_OPS:.0e}"
    if spec.training["batch_size"] * spec.widest > MAX_BATCH_VALUES:
        return f"a batch would hold more than {MAX_BATCH_VALUES:,} values in its widest layer"
    return None


@dataclass
class Job:
    kind: str
    task_id: int
    node_id: int
    spec: ModelSpec
    inputs: dict[str, np.ndarray]
    margin: int = 0
    parent_bps: int = 0
    best_from: int = 0  # a score's: the node whose kept best it is compared with (0: none)


class Refuse(Exception):
    """A node both custodians must reject (its reason)."""

    def __init__(self, reason: Reason, why: str):
        super().__init__(why)
        self.reason = reason


class Custodian:
    def __init__(
        self,
        market: Market,
        key_file: Path,
        peer: str,
        *,
        log: Log = print,
        session_timeout: float = 60.0,
        session_budget: float = session.SESSION_BUDGET,
        fetch_timeout: float = FETCH_TIMEOUT,
        dealer_timeout: float = DEALER_TIMEOUT,
        tasks: list[int] | None = None,
    ):
        self.market = market
        self.custody = Custody(market)
        self.me = market.chain.address
        folder = market.chain.settings.home / "custodian" / str(market.chain.chain_id)
        self.key_file = Path(key_file)
        self.holdings = Holdings(folder / self.me.lower(), read_private_key(self.key_file))
        self.peer = peer
        self.log = log
        self.session_timeout = session_timeout
        # What one session may take, start to end (a training of many rows and epochs is long)
        self.session_budget = session_budget
        # A session that lasted this long ran to its budget here or at the other custodian
        # (whose session may have started a rendezvous and a handshake before this one's)
        self._long_session = session.own_budget(session_budget, session_timeout) - (
            session_timeout + HANDSHAKE_S
        )
        self.fetch_timeout = fetch_timeout
        self.dealer_timeout = dealer_timeout
        # ("node", id) or ("validation", task): when its file was first missing; ("dealer",
        # task): the first of the sessions since that all found the dealer alone missing
        self.clocks = Clocks(self.holdings.folder / "clocks.json", log)
        # tasks whose validation share is pinned
        self._validation_pinned: set[int] = set()
        self._validation_tried: set[int] = set()  # tasks whose word read the share this round
        # task -> (pending nodes, submissions) this custodian last agreed to finalize leaving
        self._agreed: dict[int, tuple[int, int]] = {}
        self._unaccepted: set[int] = set()  # tasks whose custody this account has not accepted
        self.only = tasks
        self._round = 0  # rounds run by this process
        self._dealer_found: dict[int, int] = {}  # task -> the round its dealer was last missing

    # ── the round ──

    def my_tasks(self) -> list[CustodyView]:
        out = []
        for task_id in self.only or self.market.task_ids():
            view = self.custody.of(task_id)
            if view and view.party_of(self.me) in (0, 1) and not view.settled:
                out.append(view)
        return out

    def run_round(self) -> None:
        self._round += 1
        for view in self.my_tasks():
            try:
                self.serve_task(view)
            except StoreUnavailable as exc:
                self.log(f"task {view.task_id}: the store is unavailable ({exc}); next round")
            except UserError as exc:
                self.log(f"task {view.task_id}: {exc}")
            except Exception as exc:  # one task's trouble never stops the custodian's others
                self.log(f"task {view.task_id}: {type(exc).__name__}: {exc}")

    def serve_task(self, view: CustodyView) -> None:
        index = view.party_of(self.me)
        assert index in (0, 1)
        if view.keys[index] is None:  # not accepted by this custodian (yet): said once
            if view.task_id not in self._unaccepted:
                self._unaccepted.add(view.task_id)
                self.log(
                    f"task {view.task_id}: this account has not accepted the custody it is named "
                    f"for (`bountytree custody accept --task {view.task_id}`); nothing to do until it does"
                )
            return
        if view.keys[index] != self.holdings.public:
            raise UserError("the key file is not the key this custodian accepted custody with")
        if not view.ready:
            return
        task = self.market.task(view.task_id)
        if task.finalized:
            if task.winner and not view.delivered >> index & 1:
                self.hand_over(view, task.winner, index)
            elif not task.winner:  # nothing to hand over: the custody was served, settle it
                self.custody.settle(view.task_id)
                self.log(f"task {view.task_id}: finalized with no winner; custody settled")
            return
        validation = self.custody.validation_shares(view.task_id)
        if validation is None:
            return  # the sponsor has not shared its validation rows yet
        nodes = self.market.nodes(view.task_id)
        self._validation_tried.discard(view.task_id)
        self._review_word(view, index, validation, nodes)
        for node in nodes.values():  # their clocks no longer count
            if node.status != "pending":
                self.clocks.stop(("node", node.id))
        pending = sorted((n for n in nodes.values() if n.status == "pending"), key=lambda n: n.id)
        for i, node in enumerate(pending):
            if i and self._recorded_under_word(view.task_id, pending[i - 1].id):
                # a word kept for a round of sessions after its last node was recorded burned
                # the bond of a finalize meanwhile (attacker review)
                self._review_word(view, index, validation, self.market.nodes(view.task_id))
            if not self.advance(view, index, node, nodes, validation):
                return
        task = self.market.task(view.task_id, with_info=False)
        self.leave_if_due(view, index, validation, task)

    def leave_if_due(
        self, view: CustodyView, index: int, validation: tuple[str, str], task: TaskView
    ) -> None:
        """Agrees to finalize a due task leaving its pending nodes once this custodian has given
        up on every one (its record fell out of range, or its parent is such a node); the other
        custodian's equal agreement finalizes it (PrivateCustody.finalizeLeaving). Such nodes
        used to hold the task until the grace period after its deadline. Its word on the
        validation share is reviewed first: given-up nodes hold none, and the other custodian's
        agreement may finalize the task in the next block (attacker review: a word still said
        from the round's start burned an honest sponsor's bond)."""
        if task.pending_nodes == 0 or not task.finalizable(by_scorer=True):
            return
        task_id = view.task_id
        nodes = self.market.nodes(task_id)
        if not self._review_word(view, index, validation, nodes):
            return  # the store failed its review: agreeing could leave a word standing
        given_up = self._given_up(task_id, nodes)
        pending = (n for n in nodes if nodes[n].status == "pending")
        seen = (task.pending_nodes, task.submissions)
        if any(n not in given_up for n in pending) or self._agreed.get(task_id) == seen:
            return
        self.custody.finalize_leaving(task_id, task.pending_nodes, task.submissions)
        self._agreed[task_id] = seen
        self.log(f"task {task_id}: agreed to finalize leaving {task.pending_nodes} node(s)")

    def advance(
        self,
        view: CustodyView,
        index: int,
        node: NodeView,
        nodes: dict[int, NodeView],
        validation: tuple[str, str],
    ) -> bool:
        """Does what the node needs from this custodian now; True to go on to the next node."""
        task_id = view.task_id
        held = self.holdings.share(task_id, node.id)
        if held is None and node.parent_id and self.custody.commitment(node.id, 1 - index):
            # the other custodian kept its share and heard this one had kept its own (it
            # commits only then): this one was stopped before it promoted it
            held = self.holdings.promote(task_id, node.id)
            if held is None:  # it committed without this one's word: it deviated
                if node.id in self.holdings.given_up(task_id):
                    return True  # said once
                return self._give_up(
                    node, "the other custodian committed to a share this one never kept"
                )
        other = self.custody.attestation(node.id, 1 - index)
        deviation = session.FAILPOINT.split(":")
        if deviation[:2] == ["custodian-rejects", str(index)] and node.parent_id and held is None:
            self._attest(node, REJECT, int(deviation[2]), "a deviation: the failpoint's")
            return True
        try:
            try:
                if held is None and node.parent_id and nodes[node.parent_id].status == "rejected":
                    raise Refuse(Reason.PARENT_REJECTED, f"parent {node.parent_id} was rejected")
                if other is not None and other[0] == REJECT and held is None:
                    # The other custodian found a fault in its share of the node's files, which
                    # only it can see (a share sealed wrongly to it, say). This custodian checks
                    # its own (a fault there is rejected for its own reason) and then rejects
                    # too: a node one custodian cannot train would otherwise stay pending and
                    # hold up the task's finalization. It cannot confirm the other's fault, so
                    # it says so (UNCONFIRMED), and the node's stake comes back: a custodian
                    # that rejected honest nodes used to have their stakes forfeited. Only a
                    # fault of the other's own share is followed so (attacker review: a
                    # custodian following a fault both could see with UNCONFIRMED handed the
                    # node's stake back); a fault of the files both read alike is its own.
                    if node.id in self.holdings.given_up(task_id):
                        return True  # decided once: its files are not read again
                    if node.parent_id:
                        self._training_rows(view, index, node)
                    else:
                        self._architecture(node, index)
                    self.clocks.stop(("node", node.id))  # its files were there
                    said = Reason.describe(other[1])
                    known = other[1] in Reason._value2member_map_
                    if other[1] == Reason.TOO_SLOW:
                        # the other could not train it in its budget, which this one cannot
                        # check; the stake comes back whatever is said beside it
                        raise Refuse(Reason.TOO_SLOW, "the other custodian ran over its budget")
                    if known and Reason(other[1]).seen_alone(architecture=not node.parent_id):
                        raise Refuse(
                            Reason.UNCONFIRMED,
                            f"the other custodian found the node's files {said}; "
                            "this one's are sound",
                        )
                    # a fault both would see, which this one does not: a deviation it will not
                    # follow (the node stays pending; its author reclaims the stake)
                    return self._give_up(node, f"the other custodian says {said}; it is not")
                if held is None:
                    if node.parent_id == 0:
                        held = self.holdings.keep(task_id, node.id, self._architecture(node, index))
                    else:
                        self._refuse_if_too_slow(node, session.TRAIN)
                        trained = self._train(view, index, node, nodes[node.parent_id])
                        self.clocks.stop(("node", node.id))  # its files were there
                        return trained
                self._spec(node)  # an architecture the task cannot use stops here, too
                self.clocks.stop(("node", node.id))  # its files were there
            except (StoreUnavailable, BlockCorrupted):
                raise  # the store is down or damaged: nobody's node is at fault
            except BlockMissing as exc:
                if self.clocks.still_waiting(("node", node.id), self.fetch_timeout):
                    self.log(f"node {node.id}: {exc}; waiting")
                    return False
                raise Refuse(Reason.MISSING, str(exc)) from None
            except TooLarge as exc:
                raise Refuse(Reason.TOO_LARGE, str(exc)) from None
            except Rejected as exc:
                raise Refuse(exc.reason, str(exc)) from None
            except SpecError as exc:
                raise Refuse(Reason.INVALID_SPEC, str(exc)) from None
            except (ShareError, StoreError) as exc:
                raise Refuse(Reason.CORRUPT, str(exc)) from None
        except Refuse as refused:
            return self._reject(node, refused)
        if node.id in self.holdings.given_up(task_id):
            return True
        if self.custody.commitment(node.id, index) is None:
            self.custody.commit_share(node.id, commitment(held.share, held.salt))
            self.log(f"node {node.id}: committed to share {index}")
        if self.custody.commitment(node.id, 1 - index) is None:
            if other is not None:  # it attested instead of committing: it deviated
                return self._give_up(node, "the other custodian attested without committing")
            return False  # the other custodian is behind
        if node.parent_id and nodes[node.parent_id].status != "scored":
            return True  # waits for its parent; the others go on
        recorded = self.holdings.scored(task_id, node.id, index)
        if recorded is not None:  # this one ended its scoring well: never scored again
            return self._attest_kept(node, index, recorded)
        if (other := self.custody.attestation(node.id, 1 - index)) is not None:
            if other == (REJECT, Reason.TOO_SLOW):  # the other could not score it in time
                return self._follow_too_slow(node)
            return self._follow(node, index, other)
        if self.holdings.scoring_runs(task_id, node.id) >= MAX_SCORING_RUNS:
            return self._give_up(node, "a scoring revealed its record and did not end well")
        try:
            self._refuse_if_too_slow(node, session.SCORE)
        except Refuse as refused:
            return self._reject(node, refused)
        return self._score(view, index, node, nodes, held.share, validation)

    def _refuse_if_too_slow(self, node: NodeView, kind: str) -> None:
        """Refuses the node (TOO_SLOW) once MAX_OVER_BUDGET of its sessions of `kind` ran over
        the budget. On-chain, so the other custodian follows: one that gave the node up alone
        parted ways with the other for good, and both stopped their rounds at it (attacker
        review)."""
        runs = self.holdings.over_budget(node.task_id, node.id, kind)
        if runs >= MAX_OVER_BUDGET:
            raise Refuse(Reason.TOO_SLOW, f"its {kind} sessions ran over the budget {runs} times")

    def _follow_too_slow(self, node: NodeView) -> bool:
        """The other custodian says a node both committed to could not be scored in its budget.
        Followed only when one of this custodian's own scoring sessions of it ran over too (or
        ran as long: `_session`): said right after both committed, with no session over, it
        would turn a node the other could only stall into one rejected, its fee in the winner's
        pool (attacker review). Otherwise the node is given up on (pending, not retried: this
        one's round goes on). A deviating custodian that lags one session to the budget (a
        custodian's lag is excused, blame.py) still has it followed."""
        if self.holdings.over_budget(node.task_id, node.id, session.SCORE) == 0:
            return self._give_up(node, "the other custodian says it ran over; no session here did")
        self._attest(node, REJECT, Reason.TOO_SLOW, "the other custodian ran over its budget")
        return True

    def _reject(self, node: NodeView, refused: Refuse) -> bool:
        self._attest(node, REJECT, int(refused.reason), str(refused))
        return True

    def _give_up(self, node: NodeView, why: str) -> bool:
        self.holdings.give_up(node.task_id, node.id)
        self.log(f"node {node.id}: {why}; given up on")
        return True

    def _attest_kept(self, node: NodeView, index: int, recorded: int) -> bool:
        """Attests the record this custodian kept, once more if the chain dropped it (two
        attestations that differ are both dropped), a bounded number of times."""
        if self.custody.attestation(node.id, index) is not None:
            return True
        if self.holdings.attestations_sent(node.task_id, node.id) >= MAX_ATTESTATIONS:
            return self._give_up(node, "its record was attested and dropped again and again")
        self._attest(node, SCORE, recorded, f"record {recorded} bps")
        self.holdings.note_attestation_sent(node.task_id, node.id)  # once it landed
        return False  # the record lands when both have attested; the next round goes on

    def _follow(self, node: NodeView, index: int, other: tuple[int, int]) -> bool:
        """The other custodian attested first: it heard this one say it kept its result of
        their scoring session (it attests only then), so this one promotes that result and
        attests its own record, with no session of its own (a run a round for a custodian that
        never attests used to draw a fresh best each time)."""
        recorded = self.holdings.promote_best(node.task_id, node.id, index)
        if other[0] != SCORE or recorded is None:  # it attested what no session both kept
            return self._give_up(node, "the other custodian attested a scoring this one never kept")
        return self._attest_kept(node, index, recorded)

    # ── the node's inputs ──

    def _spec(self, node: NodeView) -> ModelSpec:
        spec = self.market.architecture_spec(node)
        if (problem := private_problem(spec)) is not None:
            raise Refuse(Reason.UNFIT_SPEC, problem)
        info = self.market.task(node.task_id).info
        if (spec.num_features, spec.num_classes) != (info.num_features, info.num_classes):
            raise Refuse(
                Reason.UNFIT_SPEC,
                f"{spec.num_features} features and {spec.num_classes} classes; the task has "
                f"{info.num_features} and {info.num_classes}",
            )
        return spec

    def _architecture(self, node: NodeView, index: int) -> Share:
        spec = self._spec(node)
        raw = get_bytes(self.market.store, node.weights_cid(spec), weights_io.max_bytes(spec))
        state = weights_io.load(raw, spec, f"node {node.id}")
        torch.manual_seed(spec.training["seed"])
        initial = weights_io.load(weights_io.initial_weights(spec), spec)
        if any(not torch.equal(state[k], initial[k]) for k in initial):
            raise Refuse(Reason.NOT_INITIAL, "not its spec's seeded initialisation")
        return public_share({k: v.detach().numpy() for k, v in state.items()}, index)

    def _rows(
        self, cid: str, index: int, what: str, context: bytes, shape: tuple[int, int]
    ) -> Share:
        raw = get_bytes(self.market.store, cid, rows.MAX_SEALED_ROWS_BYTES)
        return rows.open_rows(raw, self.holdings.key, index, what, context, shape)

    # ── sessions ──

    def _training_rows(self, view: CustodyView, index: int, node: NodeView) -> Share:
        """This custodian's share of the node's rows, after every check of the node's own files
        and cost that its share lets it make (Refuse with the reason otherwise)."""
        spec = self._spec(node)
        try:
            record = rows.PrivateNode.parse(
                get_bytes(self.market.store, node.cid, rows.MAX_RECORD), f"node {node.id}"
            )
        except ShareError as exc:
            raise Refuse(Reason.CORRUPT, str(exc)) from None
        if record.parent != node.parent_id:
            raise Refuse(Reason.CORRUPT, f"its record names parent {record.parent}")
        if (problem := training_cost(spec, record.rows)) is not None:
            raise Refuse(Reason.TOO_COSTLY, problem)
        context = rows.node_context(
            self.market.chain.chain_id, view.task_id, node.author, node.parent_id
        )
        shape = (spec.num_features, spec.num_classes)
        try:
            mine = self._rows(record.shares[index], index, f"node {node.id}'s rows", context, shape)
        except UserError as exc:  # the owner's files: its node is refused, nobody else's
            if isinstance(exc, StoreUnavailable | BlockMissing | BlockCorrupted):
                raise
            raise Refuse(Reason.CORRUPT, str(exc)) from None
        if len(mine.tensors["X"]) != record.rows:
            raise Refuse(Reason.CORRUPT, "its rows are not as many as its record says")
        return mine

    def _train(self, view: CustodyView, index: int, node: NodeView, parent: NodeView) -> bool:
        parent_share = self.holdings.share(view.task_id, parent.id)
        if parent.status != "scored" or parent_share is None:
            return True  # its parent is not scored (stalled, say): it waits, the others go on
        mine = self._training_rows(view, index, node)
        spec = self._spec(node)
        inputs = {f"w:{k}": v for k, v in parent_share.share.tensors.items()}
        inputs.update(X=mine.tensors["X"], Y=mine.tensors["Y"])
        result = self._session(view, index, Job(session.TRAIN, view.task_id, node.id, spec, inputs))
        if result is None:
            return False
        if f"custodian-trained:{index}" == session.FAILPOINT:
            os._exit(137)
        held = self.holdings.promote(view.task_id, node.id)  # the session kept it tentatively
        if held is None:
            raise UserError(f"node {node.id}: the training session kept no share")
        self.custody.commit_share(node.id, commitment(held.share, held.salt))
        self.log(f"node {node.id}: trained on shares, committed to share {index}")
        return False  # the next round scores it, once the other custodian has committed too

    def _score(
        self,
        view: CustodyView,
        index: int,
        node: NodeView,
        nodes: dict[int, NodeView],
        share: Share,
        validation: tuple[str, str],
    ) -> bool:
        spec = self._spec(node)
        context = rows.validation_context(self.market.chain.chain_id, view.task_id)
        shape = (spec.num_features, spec.num_classes)
        rows_share = self._validation_rows(view.task_id, index, validation[index], context, shape)
        if rows_share is None:
            return False
        # the chain as it is now (not the round's first read): which earlier nodes are scored
        scored = {n.id for n in self.market.nodes(view.task_id).values() if n.status == "scored"}
        best_from = self.holdings.best_source(node.id, scored)
        inputs = {f"w:{k}": v for k, v in share.tensors.items()}
        inputs.update(
            X=rows_share.tensors["X"],
            Y=rows_share.tensors["Y"],
            best=self.holdings.best_before(view.task_id, node.id, index, best_from).reshape(1),
        )
        task = self.market.task(view.task_id)
        margin = task.description.margin_bps if task.description else 100
        parent_bps = nodes[node.parent_id].accuracy_bps if node.parent_id else 0
        job = Job(session.SCORE, view.task_id, node.id, spec, inputs, margin, parent_bps, best_from)
        result = self._session(view, index, job)
        if result is None:
            return False
        if result.get("out_of_range"):
            return self._give_up(node, "its record fell out of range (a custodian deviated)")
        if f"custodian-scored:{index}" == session.FAILPOINT:
            os._exit(137)
        recorded = self.holdings.promote_best(view.task_id, node.id, index)  # kept tentatively
        if recorded is None:
            raise UserError(f"node {node.id}: the scoring session kept no best")
        return self._attest_kept(node, index, recorded)

    def _validation_rows(
        self, task_id: int, index: int, cid: str, context: bytes, shape: tuple[int, int]
    ) -> Share | None:
        """This custodian's share of the sponsor's validation rows, pinned in its store once
        read (a sponsor that served it once cannot stall later nodes by serving it no more);
        None while it waits for it. The sponsor's files blame no node: a share not served within
        the fetch timeout, or one that does not open, is said on-chain instead
        (PrivateCustody.reportValidation), and a task finalized with nodes pending while it is
        said burns the sponsor's bond, as a public task whose validator never ran does. Before,
        a sponsor that shared CIDs and never served the files had every node wait and its bond
        back. The first read after such a word notes the task's newest node (read then: one
        revealed since never waited on the share), and the word is taken back once the nodes up
        to it are done (`_review_word`)."""
        try:
            share = self._rows(cid, index, "the validation rows", context, shape)
        except (StoreUnavailable, BlockCorrupted):
            raise  # the store is down or damaged: not the sponsor's doing
        except BlockMissing as exc:
            if self.clocks.still_waiting(("validation", task_id), self.fetch_timeout):
                self.log(f"task {task_id}: the sponsor's validation share: {exc}; waiting")
                return None
            why = str(exc)
        except UserError as exc:
            why = str(exc)
        else:
            self.clocks.stop(("validation", task_id))
            if self.holdings.validation_word(task_id) == 0:  # said, and read since only now
                newest = max(self.market.nodes(task_id))
                self.holdings.note_validation_read(task_id, newest)
                self.log(f"task {task_id}: read the validation share; newest node {newest}")
            if task_id not in self._validation_pinned:
                try:
                    self.market.store.pin(cid)
                    self._validation_pinned.add(task_id)
                except StoreError as exc:
                    self.log(f"task {task_id}: the validation share is not pinned ({exc})")
            return share
        self.holdings.say_validation_word(task_id)  # the nodes up to now wait on it again
        if not self.custody.validation_unread(task_id) >> index & 1:
            self.custody.report_validation(task_id, readable=False)
            self.log(f"task {task_id}: said the sponsor's validation share cannot be read")
        raise UserError(f"the sponsor's validation share: {why}")

    def _note_dealer(
        self, job: Job, index: int, ended_well: bool, missing: list[int] | None, began: float
    ) -> None:
        """What a session says of the dealer. One that ended well had it: the clock starts
        again. One whose rendezvous the dealer came to takes back a word that its node waits
        for the dealer (so does one that ended well), without starting the clock again: one
        that came to a node's session that failed later for another reason is not unpaid for
        that node (final review). One whose rendezvous found the dealer alone missing, or that
        the dealer failed after it came (`missing` is then [dealer], from rendezvous.json: a
        dealer that joined and went silent used to count as come), counts: once such sessions
        have run for the dealer timeout with none ending well between them, the node of the
        last one is said on-chain to wait for the dealer, and a task finalized leaving a node both custodians say waits refunds the
        dealer's fee third to the sponsor (before, a dealer that never joined held every node
        pending and was paid at settlement). A rendezvous the other custodian missed starts the
        clock again (its outage is not the dealer's); a session that failed before its
        rendezvous says nothing either way."""
        key = ("dealer", job.task_id)
        if ended_well:
            self.clocks.stop(key)
        elif missing == []:  # tried this round: a dealer that came and failed it unnamed keeps
            self._dealer_found[job.task_id] = self._round  # the next finding in step (review)
        if ended_well or missing == []:  # the dealer came to this node's session
            if self.custody.dealer_wait(job.node_id) >> index & 1:
                self.custody.report_dealer(job.node_id, waits=False)
                self.log(f"node {job.node_id}: the dealer came to its session; said so")
            return
        if missing is None:
            return
        if missing != [session.DEALER]:
            self.clocks.stop(key)
            return
        # a finding further from the session before than the timeout (or than three sessions'
        # rendezvous, one after another) starts a new streak: a custodian that held no session
        # meanwhile saw nothing. Measured to this session's start (`began`): a session the
        # dealer made slow lasts up to the budget, and findings a budget apart started a new
        # streak each, so its word was never said (attacker review). Findings in rounds one
        # after another keep the streak however long the rounds, counting only their own time:
        # a dealer that served another task's sessions slowly (each round longer than the gap)
        # while never coming to this one's started its streak again each round (attacker
        # review); counting the rounds' whole time, two findings a round apart would name it.
        # Across a restart, the gap alone decides.
        found_before = self._dealer_found.get(job.task_id)
        self._dealer_found[job.task_id] = self._round
        in_step = found_before is not None and found_before >= self._round - 1
        gap = max(self.dealer_timeout, 3 * self.session_timeout)
        if self.clocks.still_waiting(
            key, self.dealer_timeout, gap=gap, since=began, in_step=in_step
        ):
            return
        if not self.custody.dealer_wait(job.node_id) >> index & 1:
            self.custody.report_dealer(job.node_id, waits=True)
            self.log(f"node {job.node_id}: said it waits for the dealer, who does not come")

    def _review_word(
        self,
        view: CustodyView,
        index: int,
        validation: tuple[str, str],
        nodes: dict[int, NodeView],
    ) -> bool:
        """Takes back this custodian's word that it cannot read its validation share once it
        read it again and no node that waited on it is held (`_word_holds`); False if the
        store kept it from reviewing the word. A sponsor that served the share at the last
        moment would otherwise finalize between the word and the sessions its nodes still
        needed (attacker review of the word); a word kept until no node at all was pending
        stayed to a busy task's end (nodes keep coming), and burned an honest sponsor's bond for
        a node left pending for another reason. A word not read since is read here, once a
        round: a round that scores nothing (every node given up, or waiting on the other
        custodian) would never read it. A word on-chain with no record here (a transaction
        mined after it was given up on, a holdings folder restored from before it) is taken as
        said and not read since: it was never taken back (attacker review)."""
        task_id = view.task_id
        word = self.holdings.validation_word(task_id)
        if word is None:
            if not self.market.task(task_id, with_info=False).validation_unread:
                return True
            if not self.custody.validation_unread(task_id) >> index & 1:
                return True  # the other custodian's word
            self.holdings.say_validation_word(task_id)
            word = 0
        if word == 0:
            if task_id in self._validation_tried:
                return True
            self._validation_tried.add(task_id)
            info = self.market.task(task_id).info
            context = rows.validation_context(self.market.chain.chain_id, task_id)
            shape = (info.num_features, info.num_classes)
            try:
                self._validation_rows(task_id, index, validation[index], context, shape)
            except (StoreUnavailable, BlockCorrupted) as exc:
                self.log(f"task {task_id}: the word on the validation share waits ({exc})")
                return False
            except UserError:
                return True  # it cannot be read: the word stands, said
            word = self.holdings.validation_word(task_id)
            nodes = self.market.nodes(task_id)  # the newest noted is as fresh
        if not word or self._word_holds(task_id, nodes, word):
            return True
        if self.custody.validation_unread(task_id) >> index & 1:
            self.custody.report_validation(task_id, readable=True)
            self.log(f"task {task_id}: the sponsor's validation share is read; said so")
        self.holdings.forget_validation_word(task_id)
        return True

    def _recorded_under_word(self, task_id: int, node_id: int) -> bool:
        """Whether node `node_id`, walked in this round and held by this custodian's word, has
        been recorded since the round began (one call per such node, none without a word)."""
        word = self.holdings.validation_word(task_id) or 0
        return node_id <= word and self.market.node(node_id).status != "pending"

    def _given_up(self, task_id: int, nodes: dict[int, NodeView]) -> set[int]:
        """The nodes this custodian gave up on, and the pending children of those (parents
        first: a child of a node given up on waits for good)."""
        given_up = self.holdings.given_up(task_id)
        for n in sorted(nodes):
            if nodes[n].status == "pending" and nodes[n].parent_id in given_up:
                given_up.add(n)
        return given_up

    def _word_holds(self, task_id: int, nodes: dict[int, NodeView], up_to: int) -> bool:
        """Whether a pending node still owes the sessions the unread share held up: one up to
        the task's newest when it was read again (later ones never waited on it), not given up
        by this custodian (a deviating custodian's doing, which it could stall as well with the
        rows on time). A node the dealer or the other custodian holds now holds the word too:
        had the rows come in time, it would have been scored before they went (attacker review:
        a dealer away when the share was served, excused, cleared the word, and the sponsor
        finalized in the next block)."""
        given_up = self._given_up(task_id, nodes)
        return any(nodes[n].status == "pending" and n not in given_up for n in nodes if n <= up_to)

    def _attest(self, node: NodeView, kind: int, value: int, what: str) -> None:
        index = self.custody.require(node.task_id).party_of(self.me)
        if self.custody.attestation(node.id, int(index or 0)) is None:
            self.custody.attest(node.id, kind, value)
            verb = "scored" if kind == SCORE else "rejected"
            self.log(f"node {node.id}: {verb} ({what})")

    def _session(self, view: CustodyView, index: int, job: Job) -> dict | None:
        """Runs the job in a fresh process as rank `index`; None if the session did not happen
        (the other custodian or the dealer was not there, disagreed, or could not prove the key
        the chain holds for it): the next round retries. The process reads this custodian's key
        from its key file and accepts, as each peer, only the key the chain holds for it."""
        peers = {r: view.keys[r] for r in (1 - index, session.DEALER)}
        with tempfile.TemporaryDirectory(prefix="custodian-session-") as scratch:
            folder = Path(scratch)
            os.chmod(folder, 0o700)
            atomic_write_json(
                folder / "job.json",
                {
                    "address": self.peer,
                    "rank": index,
                    "kind": job.kind,
                    "task": job.task_id,
                    "node": job.node_id,
                    "spec": job.spec.to_json(),
                    "margin": job.margin,
                    "parent_bps": job.parent_bps,
                    "best_from": job.best_from,
                    "timeout": self.session_timeout,
                    # from now, not from the process's start: its imports and inputs are in it
                    "deadline": time.monotonic()
                    + session.own_budget(self.session_budget, self.session_timeout),
                    "key_file": str(self.key_file.resolve()),
                    "holdings": str(self.holdings.folder.resolve()),
                    "peers": {str(r): key.hex() for r, key in peers.items() if key},
                },
            )
            self.log(f"node {job.node_id}: {job.kind} session at {self.peer}")
            began = time.time()
            try:
                status = subprocess.run(
                    [sys.executable, "-m", "custodian", "session", str(folder)],
                    input=save(job.inputs),  # this custodian's shares, through a pipe only
                    preexec_fn=die_with_parent(),
                    capture_output=True,
                    timeout=self.session_budget,
                )
                tail = status.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
                killed = False
            except subprocess.TimeoutExpired:
                tail, killed = [f"stopped at {self.session_budget:.0f} s"], True
            # a result written is the session's, even if leaving it failed afterwards
            result: dict | None = None
            if (folder / "result.json").exists():
                result = json.loads((folder / "result.json").read_text())
            else:
                self.log(f"node {job.node_id}: no {job.kind} session this round ({tail[0][:300]})")
            ended = _ending(folder)
            # Over its budget with the dealer not to blame, by both custodians' words, or killed
            # at the budget after its rendezvous with no word on the dealer (its own work, too
            # long between two messages to end itself), or run that long with no word at all (the
            # other was killed at its budget, and this one timed out on it): the node's cost. A
            # session after whose words named the dealer is the dealer's (attacker review: a kill
            # was counted against the node). Without the last case, one custodian counted the
            # sessions the other's service killed and the other none, and the two parted ways
            # over a scoring's refusal (attacker review).
            ran_long = time.time() - began >= self._long_session
            over = ended.over_budget or (ended.missing == [] and (killed or ran_long))
            if result is None and over:
                self.holdings.note_over_budget(job.task_id, job.node_id, job.kind)
                self.log(f"node {job.node_id}: the {job.kind} session ran over its budget")
            try:
                self._note_dealer(job, index, result is not None, ended.missing, began)
            except Exception as exc:  # the chain: said next round; the session's result is kept
                self.log(f"node {job.node_id}: the word on the dealer is not said ({exc})")
            return result

    # ── hand-over ──

    def hand_over(self, view: CustodyView, winner: int, index: int) -> None:
        held = self.holdings.share(view.task_id, winner)
        if held is None:
            raise UserError(f"no holding of the winner, node {winner}: nothing to hand over")
        if self.custody.commitment(winner, index) != commitment(held.share, held.salt):
            raise UserError(f"the holding of node {winner} is not the share committed to")
        sealed = handover.seal_share(held.share, held.salt, view.sponsor_key)
        cid = self.market.store.add(io.BytesIO(sealed))
        self.custody.hand_over(view.task_id, cid)
        self.log(f"task {view.task_id}: handed share {index} of node {winner} over as {cid}")


@dataclass(frozen=True)
class SessionEnd:
    """What a session's rendezvous file says: the ranks found missing ([] if all came; None if
    the session process never got that far), and whether it ran over its budget with the
    dealer not to blame."""

    missing: list[int] | None = None
    over_budget: bool = False


def _ending(folder: Path) -> SessionEnd:
    try:
        said = json.loads((folder / session.RENDEZVOUS).read_text())
        missing = said["missing"]
    except (OSError, ValueError, KeyError, TypeError):
        return SessionEnd()
    if not isinstance(missing, list):
        return SessionEnd()
    return SessionEnd([int(r) for r in missing], said.get("over_budget") is True)
