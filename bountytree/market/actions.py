"""The marketplace as its participants see it: tasks, the model tree, and every action a
sponsor, architect, data owner or anyone settling a task takes. The command line, the trainer,
the oracle and the app all call these functions; none of them talks to the contract directly.

Each action checks what it can off-chain first (files, specs, data against the task) and then
sends through `Chain.send`, which simulates before signing: a refused action sends nothing.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eth_abi import encode as abi_encode
from eth_utils import keccak
from web3.logs import DISCARD

from bountytree.chain.client import Chain, Sent, decode_record
from bountytree.errors import UserError
from bountytree.files import atomic_write_json
from bountytree.market import taskinfo, validation
from bountytree.market.ladder import DEFAULT_MARGIN_BPS
from bountytree.market.records import (
    Credited,
    DatasetPublished,
    DatasetRecord,
    Finalized,
    Payout,
    Proposed,
    Reclaimed,
    Submitted,
    TaskPosted,
    Withdrawn,
)
from bountytree.models import datasets
from bountytree.models.fixedpoint import SAFE_LIMIT
from bountytree.models.spec import ModelSpec, load_spec, private_problem
from bountytree.reasons import Reason, Rejected
from bountytree.storage.cid import bytes32_to_cid, cid_to_bytes32
from bountytree.storage.connect import open_store
from bountytree.storage.store import Store, add_bytes, cid_of, get_bytes
from bountytree.text import check_name

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from bountytree.config import Settings

STATUSES = ("pending", "scored", "rejected", "reclaimed")
PAYOUT_KINDS = ("data", "compute", "expertise", "refund", "stake", "bond", "burned")
BURNED = "0x" + "00" * 20  # where the contract credits what it burns: nobody can withdraw it
MAX_DESCRIPTION = 4000  # characters of a task's free-text description
BOND_STATES = ("none", "held", "returned", "forfeited")  # the contract's BondState
PUBLIC, AWAITING_CUSTODY, CUSTODIED = range(3)  # the contract's Privacy
# What a private task awaiting its custody takes (the contract refuses every commitment).
AWAITING = (
    "takes nothing until its custody is ready and holds the sponsor's validation rows "
    "(`bountytree custody show --task {task}`)"
)


@dataclass(frozen=True)
class ContractLimits:
    """Constants of the deployed contract that clients plan by."""

    finalize_grace_s: int  # FINALIZE_GRACE: after deadline + this, anyone may finalize
    reveal_window_s: int  # REVEAL_WINDOW: reveals after the deadline, and finalize's wait for them
    reputation_levy_bps: int  # REPUTATION_LEVY_BPS: burned of each path credit but the sponsor's
    weight_per_bps: int  # WEIGHT_PER_BPS: compute weight a raise of one bps gives its path
    max_batch: int  # MAX_BATCH: scores or rejections per call
    max_view: int  # MAX_VIEW: nodes per getNodes call


@dataclass
class TaskView:
    id: int
    sponsor: str
    bounty: int
    stake: int
    deadline: int
    target_bps: int
    shares_bps: tuple[int, int, int]
    finalized: bool
    description_cid: str
    commitment: bytes
    best_node: int
    best_bps: int
    winner: int
    forfeited: int
    pending_nodes: int = 0
    # The task's description, read from the store unless the view was asked for without it.
    description: taskinfo.TaskInfo | None = None
    now: int = 0  # the chain's time when read (a dev chain's clock may run ahead of the wall clock)
    scoring_fee: int = 0  # wei each node pays into the pool when scored or rejected (else burned)
    max_submissions: int = 0  # proposals + commitments per account; 0 = unlimited
    submissions: int = 0  # nodes of the task: proposals + revealed commitments
    audit_bond: int = 0  # wei held until the sponsor publishes the validation file
    bond_state: str = "none"  # none | held | returned | forfeited
    audit_window_end: int = 0  # while a bond is held after finalize: the last time to publish
    validation_published: bool = False
    # the task's scorer says the sponsor's validation rows cannot be had: a finalize leaving nodes
    # pending burns the bond
    validation_unread: bool = False
    test_score_bps: int | None = None  # the winner's score on the sponsor's test part
    finalize_grace_s: int = 0  # the contract's FINALIZE_GRACE
    open_commitments: int = 0  # commitments neither revealed nor reclaimed
    reveal_window_s: int = 0  # the contract's REVEAL_WINDOW
    raised_bps: int = 0  # the sum of every new best's raise: what data and expertise are split by
    compute_weight: int = 0  # the sum of its nodes' compute weights
    unclaimed_raise_bps: int = 0  # after finalize: raises off the winning path not claimed yet
    unclaimed_weight: int = (
        0  # after finalize: compute weights off the winning path not claimed yet
    )
    # IBountyTree.Privacy: 0 public, 1 private awaiting its custody (takes nothing), 2 private
    # and custodied (its custodians score it through PrivateCustody, never the oracle)
    privacy: int = 0

    @property
    def custodied(self) -> bool:
        """A private task, its custody registered or not: never the oracle's to score."""
        return self.privacy != PUBLIC

    @property
    def awaiting_custody(self) -> bool:
        """A private task whose custody is not ready yet (registered, accepted by all three,
        given the validation rows): it takes no commitment at all (AWAITING)."""
        return self.privacy == AWAITING_CUSTODY

    @property
    def info(self) -> taskinfo.TaskInfo:
        """The description; a view read with `with_info=False` has none, and asking is a bug."""
        if self.description is None:
            raise RuntimeError(f"task {self.id} was read without its description")
        return self.description

    @property
    def price(self) -> int:
        """What each proposal and commitment sends: the stake plus the scoring fee."""
        return self.stake + self.scoring_fee

    @property
    def pool(self) -> int:
        """What finalize shares out: bounty, forfeited stakes and the fees of settled nodes (the
        fees of nodes still pending are burned, a commitment never revealed reclaims its own)."""
        return (
            self.bounty
            + self.forfeited
            + self.scoring_fee * (self.submissions - self.pending_nodes)
        )

    @property
    def seconds_left(self) -> int:
        return self.deadline - (self.now or int(time.time()))

    @property
    def released_best(self) -> int:
        """The node holding the best released score, whose exact score the Ladder compares
        against; 0 while none is released (the contract names a best node even at 0)."""
        return self.best_node if self.best_bps else 0

    @property
    def target_reached(self) -> bool:
        return bool(self.best_node) and self.best_bps >= self.target_bps

    @property
    def status(self) -> str:
        if self.finalized:
            return "finalized"
        if self.target_reached:
            return "target reached"
        return "expired" if self.seconds_left < 0 else "open"

    @property
    def reveals_close_at(self) -> int:
        """The last moment a commitment to this task may be revealed (REVEAL_WINDOW after the
        deadline, which reaching the target brings forward)."""
        return self.deadline + self.reveal_window_s

    @property
    def reveals_open(self) -> bool:
        """Commitments made in time may still be revealed: finalize waits for them. Judged by the
        later of the last block's time and the wall clock: a local chain nobody uses mines no
        block, and the next one (a finalize) is stamped no earlier than now."""
        now = max(self.now, int(time.time()))
        return self.open_commitments > 0 and now <= self.reveals_close_at

    def finalizable(self, *, by_scorer: bool) -> bool:
        """The contract's rule, read from this view: due (target reached or deadline passed), no
        commitment still in its reveal window; for anyone but the task's scorer (who may leave
        nodes with `finalizeLeaving`), also no node left unscored, or the grace period over."""
        if self.finalized or not (self.target_reached or self.seconds_left < 0):
            return False
        if self.reveals_open:
            return False
        return by_scorer or self.pending_nodes == 0 or -self.seconds_left > self.finalize_grace_s


@dataclass
class NodeView:
    id: int
    task_id: int
    parent_id: int
    author: str
    depth: int
    cid: str
    status: str
    accuracy_bps: int
    verified_ops: int
    dataset_id: int
    # a trained node that set a new task best: its accuracy less the best before it (what the
    # data and expertise shares pay it for, on the winning path or off it); else 0
    raise_bps: int = 0
    # what its replayed training earns of the compute share: for each new best that is it or grew
    # from it, that raise × WEIGHT_PER_BPS split by ops over the best's path
    compute_weight: int = 0
    claimed: bool = False  # off the winning path, what it holds was paid by claim
    reason: str | None = None
    block: int = 0
    children: list[int] = field(default_factory=list)

    @property
    def kind(self) -> str:
        """An architecture is the node without a parent; its cid is its spec."""
        return "trained" if self.parent_id else "architecture"

    def weights_cid(self, spec: ModelSpec) -> str:
        """Where this node's weights are: a trained node's CID, or for an architecture its
        spec's seeded initial weights (`spec` is its architecture's)."""
        if self.kind == "trained":
            return self.cid
        if spec.init_weights is None:
            raise Rejected(Reason.INVALID_SPEC, f"architecture {self.id}'s spec names no weights")
        return spec.init_weights


@dataclass(frozen=True)
class Score:
    """What the oracle records for one node (the contract's `Score`)."""

    node_id: int
    accuracy_bps: int
    verified_ops: int
    dataset_id: int


@dataclass(frozen=True)
class _Opening:
    """What a commitment hides (after the author and the task, before the salt) and how it is
    revealed: the call, the event it emits and the id that event names."""

    types: list[str]
    values: list[Any]
    reveal: Callable[[bytes], Any]
    event: str
    id_key: str

    @property
    def kind(self) -> str:
        return "dataset" if self.id_key == "datasetId" else "node"


class Market:
    """One participant (an account on a chain) and the store they use."""

    def __init__(self, chain: Chain, store: Store):
        self.chain = chain
        self.store = store
        self.tree = chain.tree
        self.first_block = chain.first_block

    @functools.cached_property
    def limits(self) -> ContractLimits:
        """The contract's own constants, read once from the deployment (never copied here)."""
        f = self.tree.functions
        return ContractLimits(
            finalize_grace_s=int(f.FINALIZE_GRACE().call()),
            reveal_window_s=int(f.REVEAL_WINDOW().call()),
            reputation_levy_bps=int(f.REPUTATION_LEVY_BPS().call()),
            weight_per_bps=int(f.WEIGHT_PER_BPS().call()),
            max_batch=int(f.MAX_BATCH().call()),
            max_view=int(f.MAX_VIEW().call()),
        )

    # ── reading ──────────────────────────────────────────────────────────────

    def task(self, task_id: int, *, with_info: bool = True) -> TaskView:
        fn = self.tree.functions.getTask(task_id)
        t = decode_record(fn, fn.call())
        if t["deadline"] == 0:  # never created
            raise UserError(f"unknown task {task_id}")
        view = TaskView(
            task_id,
            t["sponsor"],
            t["bounty"],
            t["submissionStake"],
            t["deadline"],
            t["targetAccuracyBps"],
            (t["dataShareBps"], t["computeShareBps"], t["expertiseShareBps"]),
            t["finalized"],
            bytes32_to_cid(t["specCid"]),
            bytes(t["validationCommitment"]),
            t["bestNodeId"],
            t["bestAccuracyBps"],
            t["winnerNodeId"],
            t["forfeited"],
            t["pendingNodes"],
            now=self.chain.w3.eth.get_block("latest")["timestamp"],
            finalize_grace_s=self.limits.finalize_grace_s,
            scoring_fee=t.get("scoringFee", 0),  # (absent from deployments older than fees)
            max_submissions=t.get("maxSubmissions", 0),
            submissions=t.get("submissions", 0),
            audit_bond=t.get("auditBond", 0),
            bond_state=BOND_STATES[t.get("bondState", 0)],
            audit_window_end=t.get("auditWindowEnd", 0),
            validation_published=t.get("validationPublished", False),
            validation_unread=t.get("validationUnread", False),
            test_score_bps=t["testAccuracyBps"] if t.get("testScored") else None,
            open_commitments=t["openCommitments"],
            reveal_window_s=self.limits.reveal_window_s,
            raised_bps=t["raisedBps"],
            compute_weight=t["computeWeight"],
            unclaimed_raise_bps=t["unclaimedRaiseBps"],
            unclaimed_weight=t["unclaimedWeight"],
            privacy=int(t["privacy"]),
        )
        if with_info:
            view.description = taskinfo.parse(
                get_bytes(self.store, view.description_cid, taskinfo.MAX_BYTES),
                f"task {task_id} description {view.description_cid}",
            )
        return view

    def task_ids(self) -> list[int]:
        tasks, _ = self.tree.functions.counts().call()
        return list(range(1, tasks + 1))

    def node(self, node_id: int) -> NodeView:
        fn = self.tree.functions.getNode(node_id)
        return _node_view(node_id, decode_record(fn, fn.call()))

    def _nodes_batched(self, ids: list[int]) -> list[NodeView]:
        """Many nodes in few calls (getNodes takes up to the contract's MAX_VIEW ids)."""
        size = self.limits.max_view
        out = []
        for start in range(0, len(ids), size):
            part = ids[start : start + size]
            fn = self.tree.functions.getNodes(part)
            out += [
                _node_view(i, raw)
                for i, raw in zip(part, decode_record(fn, fn.call()), strict=False)
            ]
        return out

    def logs(self, event: str, **filters: Any) -> Any:
        """Events of this deployment since it was deployed, filtered on indexed arguments."""
        return getattr(self.tree.events, event).get_logs(
            from_block=self.first_block, argument_filters=filters
        )

    def nodes(self, task_id: int) -> dict[int, NodeView]:
        """Every node of a task (from its events), with rejection reasons and each scored node's
        gain as the payout counts it: over the best accuracy reached above it on its path."""
        ids = [
            (e["args"]["nodeId"], e["blockNumber"])
            for e in self.logs("ArchitectureProposed", taskId=task_id)
        ]
        ids += [
            (e["args"]["nodeId"], e["blockNumber"])
            for e in self.logs("NodeSubmitted", taskId=task_id)
        ]
        reasons = {
            e["args"]["nodeId"]: e["args"]["reason"]
            for e in self.logs("NodeRejected", taskId=task_id)
        }
        out: dict[int, NodeView] = {}
        blocks = dict(ids)
        for n in self._nodes_batched(sorted(blocks)):
            node_id = n.id
            n.block = blocks[node_id]
            if node_id in reasons:
                n.reason = Reason.describe(reasons[node_id])
            out[node_id] = n
        for n in out.values():
            parent = out.get(n.parent_id)
            if parent:
                parent.children.append(n.id)
        return out

    def path_to(self, node_id: int) -> list[NodeView]:
        """The node and its ancestors, architecture first."""
        path = [self.node(node_id)]
        while path[-1].parent_id:
            path.append(self.node(path[-1].parent_id))
        return path[::-1]

    def architecture_spec(self, node: NodeView) -> ModelSpec:
        arch = self.path_to(node.id)[0]
        return load_spec(
            get_bytes(self.store, arch.cid, 64 * 1024), f"spec {arch.cid} of node {arch.id}"
        )

    def best_parent(self, task: TaskView) -> int:
        """The node a trainer builds on by default: the best scored node, else the first architecture
        that is not rejected (ties: lowest id)."""
        if task.best_node:
            return task.best_node
        for e in self.logs("ArchitectureProposed", taskId=task.id):
            if self.node(e["args"]["nodeId"]).status != "rejected":
                return int(e["args"]["nodeId"])
        raise UserError(
            f"task {task.id} has no architecture to train yet (run `bountytree propose`)"
        )

    def payouts(self, task_id: int) -> list[Payout]:
        return [_payout(e["args"]) for e in self.logs("PayoutCredited", taskId=task_id)]

    def payout_reasons(
        self, task: TaskView, nodes: dict[int, NodeView]
    ) -> dict[tuple[str, str], str]:
        """(account, payout kind) -> why, for a finalized task and its nodes (as `task` and `nodes`
        read them): the raises a data provider's new bests added and the architectures they grew
        from, the replayed operations new bests grew from (on the winning path or off it)."""
        why: dict[tuple[str, str], list[str]] = {}
        if not task.winner:
            return {}

        def architecture(node: NodeView) -> NodeView:
            while node.parent_id:
                node = nodes[node.parent_id]
            return node

        for n in sorted(nodes.values(), key=lambda n: n.id):
            if n.compute_weight:
                why.setdefault((n.author, "compute"), []).append(
                    f"{n.verified_ops:,} ops on #{n.id}"
                )
            if not n.raise_bps:
                continue
            provider = (
                self.dataset_record(task.id, n.dataset_id).publisher if n.dataset_id else n.author
            )
            source = f" (dataset {n.dataset_id})" if n.dataset_id else ""
            why.setdefault((provider, "data"), []).append(
                f"new best +{n.raise_bps / 100:.2f} pts on #{n.id}{source}"
            )
            arch = architecture(n)
            why.setdefault((arch.author, "expertise"), []).append(
                f"+{n.raise_bps / 100:.2f} pts on architecture #{arch.id}"
            )
        if not task.raised_bps:
            arch = architecture(nodes[task.winner])
            why[(arch.author, "expertise")] = [f"architecture #{arch.id}"]
        why[(task.sponsor, "refund")] = ["what the path could not be paid"]
        why[(BURNED, "burned")] = [
            f"the reputation levy, {self.limits.reputation_levy_bps / 100:g}% of the pay; "
            "with any pool beyond the bounty, and the fees of work never scored"
        ]
        return {key: ", ".join(parts) for key, parts in why.items()}

    def pending(self, account: str | None = None) -> int:
        return int(self.tree.functions.pendingWithdrawals(account or self.chain.address).call())

    def reputation(self, account: str) -> int:
        return int(self.chain.reputation.functions.scoreOf(account).call())

    def reputation_board(self) -> dict[str, int]:
        """Every account whose reputation ever changed, with its score now, from the Reputation
        contract's own events: the chain's participants, whoever they are (not a list of names
        this machine happens to know)."""
        board: dict[str, int] = {}
        for e in self.chain.reputation.events.ReputationChanged().get_logs(
            from_block=self.first_block
        ):
            board[e["args"]["account"]] = int(e["args"]["score"])
        return board

    # ── sponsor ──────────────────────────────────────────────────────────────

    def create_task(
        self,
        validation_file: str | Path,
        *,
        name: str,
        bounty: int,
        target_bps: int,
        deadline_s: int,
        shares_bps: tuple[int, int, int] = (6000, 2000, 2000),
        stake: int = 0,
        label_column: str = "label",
        description: str = "",
        split: tuple[int, int, int] | None = None,
        margin_bps: int = DEFAULT_MARGIN_BPS,
        scoring_fee: int = 0,
        max_submissions: int = 0,
        audit_bond: int = 0,
        private_models: bool = False,
    ) -> TaskPosted:
        """Posts a bounty. The validation file stays here with a fresh secret salt; only
        SHA-256(salt ‖ cid of the file) goes on-chain, so nobody can confirm a guessed file
        offline. `margin_bps` is the Ladder's margin (bountytree/market/ladder.py). Each proposal and
        commitment will pay `scoring_fee` into the pool once scored or rejected (burned if never;
        an unrevealed commitment reclaims it), each account may make at
        most `max_submissions` of them (0: no cap), and `audit_bond` (sent with the bounty, apart
        from the pool) comes back only if the file is published after finalize
        (`publish_validation`). A task with `private_models` takes nothing until its custody is
        ready (`custody.Custody`: registered, accepted, given the rows): created so, it can
        never be kept public by a node revealed before the sponsor's other transactions."""
        check_name(name, "task name")
        if len(description) > MAX_DESCRIPTION:
            raise UserError(
                f"description: {len(description)} characters, at most {MAX_DESCRIPTION}"
            )
        if not 0 <= max_submissions <= 0xFFFF:
            raise UserError(f"max submissions: {max_submissions} is not in 0..65535 (0: no cap)")
        if scoring_fee < 0 or audit_bond < 0:
            raise UserError("scoring fee and audit bond cannot be negative")
        if not 1 <= target_bps <= 10_000:
            raise UserError(f"target: {target_bps / 10_000:g} is not in (0, 1]")
        if not 1 <= margin_bps <= 10_000:
            raise UserError(f"margin: {margin_bps / 10_000:g} is not in (0, 1]")
        if bounty <= 0:
            raise UserError("bounty: must be more than 0 ETH")
        if sum(shares_bps) != 10_000 or min(shares_bps) < 0:
            raise UserError(f"payout split {shares_bps} does not sum to 100 %")
        if split and private_models:
            # the train part would be published at once, which a private task refuses until
            # its custody holds the rows, and a private winner gets no test score (the attacker
            # review of private-from-creation: the bounty was escrowed, then the command failed)
            raise UserError(
                "--split with private models: a private task takes a dataset only once its "
                "custody holds the validation rows, and its winner gets no test score; split "
                "the file yourself and publish the train part then (`bountytree dataset publish`)"
            )
        ds = datasets.load_file(validation_file, label_column)
        parts = None
        if split:
            parts = _split(ds, split)
            ds = parts["validation"]
        num_classes = max(int(ds.y.max()) + 1, 2)
        scored = [ds, parts["test"]] if parts and len(parts["test"]) else [ds]
        box = _box(scored)
        info = taskinfo.TaskInfo(
            name=name,
            description=description,
            input_shape=(ds.num_features,),
            num_classes=num_classes,
            label_column=label_column,
            validation_rows=len(ds),
            margin_bps=margin_bps,
            test_rows=len(scored[1]) if len(scored) > 1 else 0,
            # Published, so rounded outward (InputBox.of_rows): never a private row's own value.
            input_range=(min(box.low), max(box.high)),
            feature_ranges=tuple(zip(box.low, box.high, strict=True)),
            feature_names=ds.feature_names,
            validator_key=validation.new_validator_key(
                self.chain.settings.home, self.chain.chain_id
            ),
        )
        home = self.chain.settings.home
        chain_id = self.chain.chain_id
        if parts:
            staged = validation.save_private(
                home, chain_id, f".staged-{os.getpid()}.npz", ds.to_npz_bytes()
            )
        else:
            staged = Path(validation_file)
        salt = os.urandom(32)
        commitment = validation.commitment(staged, salt)
        info_cid = add_bytes(self.store, info.to_bytes())
        self.store.pin(info_cid)
        deadline = self.chain.w3.eth.get_block("latest")["timestamp"] + deadline_s
        sent = self.chain.send(
            self.tree.functions.createTask(
                cid_to_bytes32(info_cid),
                commitment,
                target_bps,
                deadline,
                *shares_bps,
                stake,
                scoring_fee,
                max_submissions,
                audit_bond,
                private_models,
            ),
            value=bounty + audit_bond,
        )
        task_id = self._event(sent, "TaskCreated")["taskId"]
        kept = validation.register(home, chain_id, task_id, staged, salt)
        test_path, dataset = None, None
        if parts:
            staged.unlink()
            if len(parts["test"]):
                test_path = validation.save_private(
                    home, chain_id, f"task-{task_id}-test.npz", parts["test"].to_npz_bytes()
                )
            if len(parts["train"]):
                dataset = self.publish_dataset(task_id, data=parts["train"])
        return TaskPosted(task_id, info_cid, commitment.hex(), sent, kept, info, test_path, dataset)

    # ── architect ────────────────────────────────────────────────────────────

    def propose(self, task_id: int, spec: ModelSpec) -> Proposed:
        """Uploads the spec (and initial weights from its seed if it names none) and proposes it."""
        task = self.task(task_id)
        self.require_open(task)
        self.require_below_cap(task)
        info = task.info
        if spec.num_features != info.num_features or spec.num_classes != info.num_classes:
            raise UserError(
                f"spec: input_shape {list(spec.input_shape)} and num_classes {spec.num_classes} do not "
                f"fit task {task_id} ({info.num_features} features, {info.num_classes} classes)"
            )
        if task.custodied and (problem := private_problem(spec)) is not None:
            # the custodians would reject it, the stake forfeited (the attacker review of
            # private-from-creation: the examples' Adam and MaxPool2d specs)
            raise UserError(f"not proposed (nothing staked): task {task_id} is private; {problem}")
        # torch is imported by the actions that need it only: reading the market (`task show`)
        # must not wait for it (`make bench-cli`).
        from bountytree.models import weights as weights_io
        from bountytree.models.bounds import check_evaluable

        if spec.init_weights:
            state = weights_io.load(
                get_bytes(self.store, spec.init_weights, weights_io.max_bytes(spec)),
                spec,
                f"init_weights {spec.init_weights}",
            )
            if not weights_io.is_initial(state, spec):
                raise UserError(
                    f"init_weights {spec.init_weights}: not the initialisation of seed "
                    f"{spec.training['seed']}; an architecture carries no training (the oracle would "
                    "reject it); leave init_weights out to have it derived"
                )
        else:
            initial = weights_io.initial_weights(spec)
            state = weights_io.load(initial, spec, "initial weights")
        # The oracle's checks on the weights, before anything is uploaded or staked.
        try:
            check_evaluable(spec, state, info.input_box, "its initial weights")
        except Rejected as exc:
            raise UserError(f"not proposed (nothing staked): {exc}") from None
        if not spec.init_weights:
            # the seed's initialisation: anyone can derive it, so it may be stored at once
            init = add_bytes(self.store, initial)
            self.store.pin(init)
            spec = spec.with_init_weights(init)
        spec_bytes = spec.to_bytes()
        spec_cid = cid_of(spec_bytes)
        made = self.submit(task_id, 0, spec_cid, content=spec_bytes)
        assert spec.init_weights is not None  # set above from the seed when the spec named none
        return Proposed(
            commit=made.commit,
            reveal=made.reveal,
            node_id=made.node_id,
            spec_cid=spec_cid,
            weights_cid=spec.init_weights,
        )

    # ── data owners ──────────────────────────────────────────────────────────

    def publish_dataset(
        self, task_id: int, path: str | Path | None = None, data: datasets.Dataset | None = None
    ) -> DatasetPublished:
        """Publishes a public dataset to a task (its bytes go to the store, its CID on-chain behind
        a commitment, at the task's price: the stake comes back at the reveal, the fee joins the
        pool)."""
        task = self.task(task_id)
        self.require_open(task)
        self.require_below_cap(task)
        info = task.info
        if data is None:
            if path is None:
                raise UserError("publish a dataset from a file or from data")
            data = datasets.load_file(path, info.label_column)
            raw = Path(path).read_bytes()
        else:
            raw = data.to_npz_bytes()
        datasets.check_against(data, info.num_features, info.num_classes, str(path or "dataset"))
        cid = cid_of(raw)
        earlier = self.tree.functions.datasetIdOf(task_id, cid_to_bytes32(cid)).call()
        if earlier:
            raise UserError(
                f"this file is already dataset {earlier} of task {task_id}; train with --dataset {earlier}"
            )
        return self.publish_cid(task, cid, len(data), content=raw)

    def publish_cid(
        self, task: TaskView, cid: str, rows: int = 0, content: bytes | None = None
    ) -> DatasetPublished:
        """Commits to a dataset's CID and reveals it, as is: `publish_dataset` checks the file
        first. `content` (the file) is uploaded between the two halves; without it the CID is
        taken as already stored."""
        commit, reveal, dataset_id = self._commit_then_reveal(
            task, {"dataset_cid": cid}, self._uploader(cid, content)
        )
        return DatasetPublished(
            commit=commit, reveal=reveal, dataset_id=dataset_id, cid=cid, rows=rows
        )

    def dataset_record(self, task_id: int, dataset_id: int) -> DatasetRecord:
        """The contract's Dataset record; a zero publisher means no such dataset."""
        fn = self.tree.functions.getDataset(task_id, dataset_id)
        record = decode_record(fn, fn.call())
        return DatasetRecord(record["publisher"], bytes(record["cid"]))

    def dataset_cid(self, task_id: int, dataset_id: int) -> str:
        """The CID of a dataset published to `task_id`; refuses an id the task does not have."""
        record = self.dataset_record(task_id, dataset_id)
        if int(record.publisher, 16) == 0:
            raise UserError(f"dataset {dataset_id} is not published to task {task_id}")
        return bytes32_to_cid(record.cid)

    def dataset(self, task_id: int, dataset_id: int, label_column: str) -> datasets.Dataset:
        cid = self.dataset_cid(task_id, dataset_id)
        return datasets.load_bytes(
            get_bytes(self.store, cid, datasets.MAX_DATASET_BYTES),
            f"dataset {dataset_id} ({cid})",
            label_column,
        )

    def submit(
        self,
        task_id: int,
        parent_id: int,
        cid: str,
        dataset_id: int = 0,
        content: bytes | None = None,
    ) -> Submitted:
        """Puts a node on a task: a trained node's weights under `parent_id`, or with parent 0 an
        architecture's spec (as is: `propose` checks a spec first). `content` (the file `cid`
        names) is uploaded between the commitment and the reveal, so no store shows the CID
        before it is committed to; without it the CID is taken as already stored."""
        task = self.task(task_id, with_info=False)
        self.require_open(task)
        self.require_below_cap(task)
        # Simulate the reveal's checks that do not depend on the commitment before staking.
        if parent_id:
            self.require_parent(task_id, parent_id, dataset_id)
        elif dataset_id:
            raise UserError("an architecture is trained on nothing: it names no dataset")
        commit, reveal, node_id = self._commit_then_reveal(
            task,
            {"parent": parent_id, "cid": cid, "dataset": dataset_id},
            self._uploader(cid, content),
        )
        return Submitted(commit=commit, reveal=reveal, node_id=node_id)

    def _opening(self, task_id: int, record: dict[str, Any]) -> _Opening:
        """How the commitment a record describes opens: a dataset ({"dataset_cid"}) or a node
        ({"parent", "cid", "dataset"}; "weights" in records of older clients). One place for both
        the first reveal and `reveal_saved`, so they can never open a commitment differently."""
        try:
            if "dataset_cid" in record:
                data = cid_to_bytes32(record["dataset_cid"])
                return _Opening(
                    ["bytes32"],
                    [data],
                    lambda salt: self.tree.functions.revealDataset(task_id, data, salt),
                    "DatasetPublished",
                    "datasetId",
                )
            fields = [
                int(record["parent"]),
                cid_to_bytes32(record.get("cid") or record["weights"]),
                int(record["dataset"]),
            ]
        except (KeyError, TypeError, ValueError):
            raise UserError(f"a saved commitment record is unreadable: {record}") from None
        return _Opening(
            ["uint256", "bytes32", "uint256"],
            fields,
            lambda salt: self.tree.functions.revealSubmission(task_id, *fields, salt),
            "NodeSubmitted" if fields[0] else "ArchitectureProposed",
            "nodeId",
        )

    def _commit_then_reveal(
        self, task: TaskView, record: dict[str, Any], upload: Callable[[], None]
    ) -> tuple[Sent, Sent, int]:
        """Commits to keccak256(abi.encode(me, task, *hidden, salt)) at the task's price (what is
        hidden: `_opening(record)`), uploads the file once the commitment is mined, waits for a
        later block, and reveals; the new node's or dataset's id last. The pending commitment is
        saved first (with `record`), so a crash between the two halves leaves what is needed to
        reveal (`reveal_saved`) or reclaim it; the record goes once the reveal is mined."""
        opening = self._opening(task.id, record)
        salt = os.urandom(32)
        commitment = keccak(
            abi_encode(
                ["address", "uint256", *opening.types, "bytes32"],
                [self.chain.address, task.id, *opening.values, salt],
            )
        )
        path = self.chain.settings.home / "commitments" / f"{commitment.hex()}.json"
        saved = {"author": self.chain.address, "task": task.id, **record, "salt": salt.hex()}
        atomic_write_json(path, saved)
        commit = self.chain.send(
            self.tree.functions.commitSubmission(task.id, commitment), value=task.price
        )
        upload()
        self.chain.wait_for_block_after(commit.receipt["blockNumber"])
        revealed = self.chain.send(opening.reveal(salt))
        path.unlink(missing_ok=True)
        return commit, revealed, self._event(revealed, opening.event)[opening.id_key]

    def _uploader(self, cid: str, content: bytes | None) -> Callable[[], None]:
        """Stores and pins `content` under `cid` (nothing when there is no content); a store that
        keeps it under another CID is refused (the commitment is then left for `reclaim`)."""

        def upload() -> None:
            if content is not None:
                if add_bytes(self.store, content) != cid:
                    raise UserError(f"the store keeps the file under another CID than {cid}")
                self.store.pin(cid)

        return upload

    def require_parent(self, task_id: int, parent_id: int, dataset_id: int) -> NodeView:
        """Refuses, before any transaction, a parent or dataset the reveal would be refused for;
        returns the parent."""
        parent = self.node(parent_id)
        if parent.task_id != task_id:
            raise UserError(f"node {parent_id} is not in task {task_id}")
        if parent.status == "rejected":
            raise UserError(
                f"node {parent_id} was rejected ({parent.reason or 'by the oracle'}); pick another parent"
            )
        if dataset_id:
            self.dataset_cid(task_id, dataset_id)
        return parent

    # ── settlement ───────────────────────────────────────────────────────────

    def finalize(self, task_id: int, *, leaving: int | None = None) -> Finalized:
        """Finalizes a due task. `leaving`: the task's scorer gives up on that many pending
        nodes, exactly the count it saw (`finalizeLeaving`), so that a node revealed since is
        never cut off unscored: the contract refuses the count then, and nothing is sent."""
        task = self.task(task_id, with_info=False)
        if not task.finalized and task.reveals_open:
            raise UserError(
                f"task {task_id}: {task.open_commitments} commitment(s) made in time may still be "
                f"revealed for {task.reveals_close_at - task.now} s; finalize after that, or once "
                "they are revealed"
            )
        fns = self.tree.functions
        call = fns.finalize(task_id) if leaving is None else fns.finalizeLeaving(task_id, leaving)
        sent = self.chain.send(call)
        done = self._event(sent, "TaskFinalized")
        credited = self._credits(sent) + self.claim_off_path(task_id)
        return Finalized(done["winnerNodeId"], done["accuracyBps"], done["pool"], credited, sent)

    def claim_off_path(self, task_id: int) -> list[Payout]:
        """Pays every node off a finalized task's winning path what it holds (a new best its
        raise, replayed training its compute weight): one `claim` each, which anyone may send and
        which credits only the node's provider, author and architect. Returns what was credited.
        `finalize` does it at once, so that nothing off the path waits for anybody; a node
        claimed meanwhile by someone else is skipped (its claim is refused as nothing to claim
        when it is simulated, before anything is sent)."""
        task = self.task(task_id, with_info=False)
        out: list[Payout] = []
        for node in unclaimed(task, self.nodes(task_id)):
            try:
                out += self._credits(self.chain.send(self.tree.functions.claim(node.id)))
            except UserError as exc:
                if "NothingToClaim" not in str(exc):
                    raise
        return out

    def reclaim(self, task_id: int) -> list[Reclaimed]:
        """Takes back, in a finalized task, what this account's work that was never scored
        escrows: each node still pending its stake (finalize burned its fee), each commitment
        never revealed its stake (its fee is burned: finalize waited for its reveal; found from
        the records `submit` saves before it commits). Nothing to reclaim is an empty list."""
        task = self.task(task_id, with_info=False)
        if not task.finalized:
            raise UserError(f"task {task_id} is not finalized: its stakes are still in play")
        if task.price == 0:
            return []
        me = self.chain.address
        out = []
        for node in self.nodes(task_id).values():
            if node.author == me and node.status == "pending" and task.stake:
                sent = self.chain.send(self.tree.functions.reclaimStake(node.id))
                out.append(Reclaimed(f"node {node.id}", task.stake, sent))
        for record, commitment, _saved in self._saved_commitments(task_id):
            sent = self.chain.send(self.tree.functions.reclaimCommitment(commitment))
            back = sum(p.amount for p in self._credits(sent) if p.account == me)
            what = f"commitment 0x{commitment.hex()[:8]}…"
            if task.scoring_fee:
                what += " (its fee burned: it was never revealed)"
            out.append(Reclaimed(what, back, sent))
            # Only a record this chain just settled is removed: the home folder is shared by
            # every chain, and a record whose commitment this chain does not hold may be
            # another chain's, still needed to reveal or reclaim there.
            record.unlink(missing_ok=True)
        return out

    def reveal_saved(self, task_id: int) -> list[str]:
        """Finishes what a client stopped between commitment and reveal (a crash, a dead RPC):
        reveals every commitment of this account to an open task that a saved record can open
        and whose file is in the store. Each line says what happened; a commitment that cannot
        be revealed stays, for `reclaim` once the task is finalized."""
        task = self.task(task_id, with_info=False)
        if task.finalized:
            raise UserError(
                f"task {task_id} is finalized; `bountytree reclaim` takes back the stakes"
            )
        if task.now > task.reveals_close_at:
            raise UserError(
                f"task {task_id}'s reveals closed {task.now - task.reveals_close_at} s ago "
                "(the contract's REVEAL_WINDOW after its deadline); `bountytree reclaim` once finalized"
            )
        lines = []
        for record, commitment, saved in self._saved_commitments(task_id):
            name = f"commitment 0x{commitment.hex()[:8]}…"
            cid = saved.get("dataset_cid") or saved.get("cid") or saved.get("weights")
            if not isinstance(cid, str) or not self.store.has(cid):
                lines.append(f"{name}: its file {cid} is not in the store; not revealed")
                continue
            try:
                opening = self._opening(task_id, saved)
                sent = self.chain.send(opening.reveal(bytes.fromhex(saved["salt"])))
            except (KeyError, ValueError):
                lines.append(f"{name}: its record has no readable salt; not revealed")
                continue
            except UserError as exc:  # refused (its parent rejected since, say): keep the record
                lines.append(f"{name}: not revealed ({exc}); `bountytree reclaim` once finalized")
                continue
            record.unlink(missing_ok=True)
            new_id = self._event(sent, opening.event)[opening.id_key]
            lines.append(f"{name}: revealed as {opening.kind} {new_id}  {sent}")
        return lines

    def _saved_commitments(self, task_id: int) -> list[tuple[Path, bytes, dict[str, Any]]]:
        """(record file, commitment, what it saved) for every commitment of this account to
        `task_id` that a record `_commit_then_reveal` saved and that this chain still holds."""
        me, out = self.chain.address, []
        for record in sorted((self.chain.settings.home / "commitments").glob("*.json")):
            try:
                saved = json.loads(record.read_text())
                commitment = bytes.fromhex(record.stem)
            except (OSError, ValueError):
                continue  # not a record this client wrote
            if not isinstance(saved, dict) or (saved.get("author"), saved.get("task")) != (
                me,
                task_id,
            ):
                continue
            fn = self.tree.functions.getCommitment(me, commitment)
            if int(decode_record(fn, fn.call())["author"], 16) != 0:
                out.append((record, commitment, saved))
        return out

    # ── oracle ───────────────────────────────────────────────────────────────

    def is_oracle(self) -> bool:
        role = self.tree.functions.ORACLE_ROLE().call()
        return bool(self.tree.functions.hasRole(role, self.chain.address).call())

    def record_scores(self, task_id: int, scores: list[Score]) -> Sent:
        """Records one batch of scores (the oracle's account only)."""
        return self.chain.send(
            self.tree.functions.recordScores(
                task_id, [(s.node_id, s.accuracy_bps, s.verified_ops, s.dataset_id) for s in scores]
            )
        )

    def reject_nodes(self, task_id: int, rejections: list[tuple[int, Reason]]) -> Sent:
        """Rejects one batch of nodes with their reasons (the oracle's account only)."""
        return self.chain.send(
            self.tree.functions.rejectNodes(
                task_id,
                [node_id for node_id, _ in rejections],
                [int(reason) for _, reason in rejections],
            )
        )

    def mark_validation_unread(self, task_id: int, unread: bool) -> Sent:
        """The oracle says whether the sponsor's validator has kept the task's work waiting
        (BountyTree.markValidationUnread; the oracle's account only, for a public task)."""
        said = "has kept its work waiting" if unread else "serves it again"
        return self.chain.send(
            self.tree.functions.markValidationUnread(task_id, unread),
            action=f"say task {task_id}'s validator {said}",
        )

    def record_test_score(self, task_id: int, accuracy_bps: int) -> Sent:
        """Records the finalized winner's score on the sponsor's test part, once (the oracle's
        account only)."""
        return self.chain.send(self.tree.functions.recordTestScore(task_id, accuracy_bps))

    def test_score(self, task_id: int) -> int | None:
        """The winner's recorded test score (bps), or None while there is none."""
        found = self.logs("TestScoreRecorded", taskId=task_id)
        return int(found[-1]["args"]["accuracyBps"]) if found else None

    def publish_validation(self, task_id: int, file_cid: str, salt: bytes) -> Sent:
        """Opens a finalized task's validation commitment (the sponsor): the contract checks
        SHA-256(salt ‖ cid) against it."""
        return self.chain.send(
            self.tree.functions.publishValidation(task_id, cid_to_bytes32(file_cid), salt)
        )

    def validation_opening(self, task_id: int) -> tuple[str, bytes] | None:
        """(CID of the validation file, salt) once the sponsor has published them, else None."""
        found = self.logs("ValidationPublished", taskId=task_id)
        if not found:
            return None
        args = found[-1]["args"]
        return bytes32_to_cid(args["fileCid"]), bytes(args["salt"])

    def forfeit_bond(self, task_id: int) -> Credited:
        """Anyone, once a finalized task's audit window has closed without the validation file:
        burns its bond (credited to address(0), which nobody can withdraw; paid to no account the
        sponsor might control). Returns the credits."""
        task = self.task(task_id, with_info=False)
        if not task.finalized or task.bond_state != "held":
            raise UserError(f"task {task_id} holds no audit bond (bond {task.bond_state})")
        if task.now <= task.audit_window_end:  # as the contract: open until its last second
            raise UserError(
                f"task {task_id}'s sponsor may publish its validation file for "
                f"{task.audit_window_end - task.now} s more"
            )
        sent = self.chain.send(self.tree.functions.forfeitBond(task_id))
        return Credited(self._credits(sent), sent)

    def datasets_of(self, task_id: int) -> list[tuple[int, int]]:
        """(dataset id, block it was published in) of every dataset published to a task, oldest first."""
        return [
            (e["args"]["datasetId"], e["blockNumber"])
            for e in self.logs("DatasetPublished", taskId=task_id)
        ]

    def withdraw(self) -> Withdrawn:
        amount = self.pending()
        if amount == 0:
            raise UserError(f"nothing to withdraw for {self.chain.address}")
        sent = self.chain.send(self.tree.functions.withdraw())
        return Withdrawn(amount, sent)

    def _credits(self, sent: Sent) -> list[Payout]:
        """Every PayoutCredited a transaction emitted."""
        return [
            _payout(e["args"])
            for e in self.tree.events.PayoutCredited().process_receipt(sent.receipt, errors=DISCARD)
        ]

    def _event(self, sent: Sent, name: str) -> dict[str, Any]:
        """The arguments of the first `name` event a transaction emitted."""
        logs = getattr(self.tree.events, name)().process_receipt(sent.receipt, errors=DISCARD)
        args: dict[str, Any] = logs[0]["args"]
        return args

    def require_open(self, task: TaskView) -> None:
        """Refuses, before any upload or transaction, a task that takes no new nodes (by the
        chain's clock when the task was read; the next block cannot be earlier)."""
        if task.finalized:
            raise UserError(f"task {task.id} is finalized; it takes no new nodes")
        if task.seconds_left <= 0:
            raise UserError(f"task {task.id}'s deadline has passed")
        if task.awaiting_custody:
            raise UserError(f"task {task.id} is private and " + AWAITING.format(task=task.id))

    def require_below_cap(self, task: TaskView) -> None:
        """Refuses, before any upload or transaction, a proposal or commitment past the task's cap
        per account (the contract counts both)."""
        if not task.max_submissions:
            return
        made = self.tree.functions.submissionsBy(task.id, self.chain.address).call()
        if made >= task.max_submissions:
            raise UserError(
                f"task {task.id} takes at most {task.max_submissions} proposals and commitments "
                f"per account; {self.chain.address} has made {made}"
            )


def _box(parts: list[datasets.Dataset]) -> datasets.InputBox:
    """Each feature's published range; a feature beyond what the secure evaluation holds is
    refused here, on the sponsor's machine, before anything is sent."""
    box = datasets.InputBox.of_rows(*(d.X for d in parts))
    wide = box.too_wide(SAFE_LIMIT)
    if wide is not None:
        names = parts[0].feature_names
        which = repr(names[wide]) if names else f"{wide}"
        raise UserError(
            f"feature {which} reaches {max(abs(box.low[wide]), abs(box.high[wide])):g}: the "
            f"secure evaluation holds values up to {SAFE_LIMIT:g}; rescale that column "
            "(e.g. other units) and post again"
        )
    return box


def _node_view(node_id: int, n: dict[str, Any]) -> NodeView:
    if int(n["author"], 16) == 0:
        raise UserError(f"unknown node {node_id}")
    return NodeView(
        node_id,
        n["taskId"],
        n["parentId"],
        n["author"],
        n["depth"],
        bytes32_to_cid(n["cid"]),
        STATUSES[n["status"]],
        n["accuracyBps"],
        n["verifiedOps"],
        n["datasetId"],
        n["raiseBps"],
        n["computeWeight"],
        n["claimed"],
    )


def on_path(node: NodeView, winner: int, nodes: dict[int, NodeView]) -> bool:
    """Whether `node` is `winner` or one of its ancestors (the contract's Payouts.onPath)."""
    n = nodes.get(winner)
    while n is not None and n.depth > node.depth:
        n = nodes.get(n.parent_id)
    return n is not None and n.id == node.id


def unclaimed(task: TaskView, nodes: dict[int, NodeView]) -> list[NodeView]:
    """The nodes off a finalized task's winning path that hold something not claimed yet: a raise,
    or a compute weight."""
    if not task.finalized or not (task.unclaimed_raise_bps or task.unclaimed_weight):
        return []
    return [
        n
        for n in nodes.values()
        if (n.raise_bps or n.compute_weight)
        and not n.claimed
        and not on_path(n, task.winner, nodes)
    ]


def _payout(args: Any) -> Payout:
    """A PayoutCredited event's arguments."""
    return Payout(args["taskId"], args["account"], args["amount"], PAYOUT_KINDS[args["kind"]])


def _split(ds: datasets.Dataset, split: tuple[int, int, int]) -> dict[str, datasets.Dataset]:
    import numpy as np

    order = np.random.default_rng(0).permutation(len(ds))
    a = len(ds) * split[0] // 100
    b = a + len(ds) * split[1] // 100
    return {
        "train": ds.subset(order[:a]),
        "validation": ds.subset(order[a:b]),
        "test": ds.subset(order[b:]),
    }


def open_market(settings: Settings, account: LocalAccount | None = None) -> Market:
    """The Market for a Settings (chain, account, store) — what every command starts with."""
    return Market(Chain(settings, account), open_store(settings.store))


__all__ = [
    "Market",
    "NodeView",
    "Payout",
    "Score",
    "TaskView",
    "on_path",
    "open_market",
    "unclaimed",
]
