"""Stateful property test: random sequences of every call, the escrow invariants of docs/design.md after each step.

Rules pick among what exists with an index drawn at random (modulo the list's length), so every
sequence is valid-ish; calls the contract must refuse are expected to revert, and the model says
which (by the error's name wherever the model can tell it for sure). The invariants are checked
after every single step.

Several tasks run side by side, with random terms (stake, scoring fee, cap per account, audit
bond), among honest accounts (ACTORS) and attackers (ATTACKERS) who open free tasks of their own,
stake in one task a commitment made for another and try to reveal it there, try to reveal other
accounts' commitments, stake commitments made in a victim's name, hide the dataset they trained
on, settle nodes twice, try scores the oracle may not record, pay the stake without the fee,
submit past the cap (another account still may), reclaim a fee twice, publish a wrong
opening or someone else's task's, forfeit a bond early or one never posted, and record test
scores without the role or twice. Finalize is tried at any step by anyone, the machine's oracle
included: the model expects NotFinalizable before the task is due, WorkPending for everyone
but the oracle while nodes await a score, until FINALIZE_GRACE after the deadline, and
RevealsOpen for everyone while a commitment is open, until REVEAL_WINDOW after the deadline
(which the score that first reaches the target brings forward). Payouts are
followed task by task from the PayoutCredited events of every transaction: no task ever pays out
more than was paid into it (its bounty, its bond, and the stake and fee of every submission),
what it has not paid is exactly its open pool (bounty + forfeited stakes + the fees of nodes
settled), the stakes and fees it still holds for unsettled nodes and unrevealed commitments and
the bond it still holds, and a finished task pays out exactly what was paid in (address(0)
credited with what is burned). Each finalize raises reputation exactly as the path's payouts
say; what the path was not paid goes back to the sponsor up to its bounty and the rest, with
the fees of nodes left pending, is burned; a bond is burned when nodes were left unscored or
the file was not published in time. Every sequence ends by
winding down: finalize everything (the oracle early for some tasks, anyone after the grace),
reclaim every stake and fee left, record the winners' test scores, publish or forfeit every bond
(some published too late), withdraw every credit, and the contract must then hold exactly what
was burned.

Why not brownie's `state_machine`: brownie 1.22.2 ships it compiled with mypyc, whose classes
cannot be subclassed from Python ("_BrownieStateMachine object expected"). Hypothesis'
RuleBasedStateMachine under brownie's plugin (which pins hypothesis 6.27) ran about two steps
per example here. So a seeded driver runs the same machine: SEQUENCES sequences of STEPS steps,
each from the chain snapshot taken after deployment; a failure names its seed, and
`BOUNTYTREE_STATEFUL_SEED=<seed>` replays exactly that sequence.
"""

import hashlib
import inspect
import os
import random
from collections import Counter

import brownie
from brownie import ZERO_ADDRESS, accounts, chain, history, web3
from conftest import Market, cid, events

AUDIT_WINDOW = 7 * 24 * 3600
SEQUENCES = int(os.environ.get("BOUNTYTREE_STATEFUL_SEQUENCES", "12"))
STEPS = int(os.environ.get("BOUNTYTREE_STATEFUL_STEPS", "50"))
ACTORS = range(2, 9)
ATTACKERS = range(9, 12)
PLAYERS = list(ACTORS) + list(ATTACKERS)
TARGET = 9500
WEIGHT_PER_BPS = 10**12  # the contract's: compute weight a raise of one bps gives its path
DAY = 24 * 3600
# brownie's clock and the next block's timestamp may differ by a second or two: the model only
# asserts a time-dependent outcome when it is this far from the boundary
MARGIN = 5


def credited_in(tx):
    """(account, amount, kind) of every PayoutCredited of a transaction, in order."""
    return [(e["account"], e["amount"], e["kind"]) for e in events(tx, "PayoutCredited")]


def expect_revert(error_name=None):
    """A revert, with the custom error `error_name` when given."""
    return (
        brownie.reverts(revert_pattern=rf"{error_name}(:.*)?") if error_name else brownie.reverts()
    )


# how often each rule is drawn, relative to the others (1 unless named): the honest lifecycle often
# enough to grow trees and settle tasks, every attack regularly
WEIGHTS = {
    "rule_propose": 4,
    "rule_publish": 3,
    "rule_commit": 5,
    "rule_reveal": 5,
    "rule_score": 5,
    "rule_create_task": 3,
    "rule_sleep": 3,
    "rule_finalize": 4,
    "rule_reclaim": 2,
    "rule_attacker_reclaims_the_fee": 2,
    "rule_attacker_reveals_across_tasks": 2,
    "rule_attacker_hides_dataset": 2,
    "rule_publish_validation": 2,
    "rule_forfeit_bond": 2,
    "rule_test_score": 2,
}

DRAW = {
    "st_actor": lambda r: r.randrange(len(ACTORS)),
    "st_attacker": lambda r: r.randrange(len(ATTACKERS)),
    "st_player": lambda r: r.randrange(len(PLAYERS)),
    "st_caller": lambda r: (
        len(PLAYERS) if r.random() < 1 / 3 else r.randrange(len(PLAYERS))
    ),  # or the oracle
    "st_pick": lambda r: r.randrange(2**16),
    "st_acc": lambda r: r.choice([0, 10000] + [r.randrange(10001)] * 3),
    "st_ops": lambda r: r.choice([0, r.randrange(1, 10**6)]),
    "st_amount": lambda r: r.choice(
        [1, 3, r.randrange(1, 10**16), r.randrange(1, 10**18)]
    ),  # 1e15: reputation
    "st_stake": lambda r: r.choice([0, r.randrange(10**16)]),
    # (scoring fee, cap per account, audit bond) of a new task
    "st_terms": lambda r: (
        r.choice([0, 0, r.randrange(1, 10**15)]),
        r.choice([0, 0, 1, 2, 3]),
        r.choice([0, r.randrange(1, 10**18)]),
    ),
    "st_seconds": lambda r: r.choice([1, 600, 3600, r.randrange(DAY), r.randrange(3 * DAY)]),
    "st_duration": lambda r: r.choice(
        [600, 3600, 6 * 3600, DAY, 3 * DAY]
    ),  # a task's deadline from now
    "st_flag": lambda r: r.random() < 0.5,
    "st_reveal": lambda r: r.random() < 0.5,
}


class MarketMachine:
    def __init__(self, tree, oracle):
        self.tree = tree
        self.oracle = oracle
        self.market = Market(tree, oracle)
        self.grace = tree.FINALIZE_GRACE()
        self.max_depth = tree.MAX_DEPTH()
        self.window = tree.REVEAL_WINDOW()
        self.point_price = tree.REPUTATION_POINT_PRICE()
        self.levy_bps = tree.REPUTATION_LEVY_BPS()
        self.outcomes = Counter()  # what the sequences exercised, over all of them

    def setup(self):
        # id -> {"stake", "fee", "cap", "bounty", "bond", "deadline", "sponsor", "finalized", "paid_in",
        #        "credited", "submissions", "by": submissions per account, "bond_state":
        #        none|held|returned|forfeited, "audit_end", "opening": (file CID, salt), "published",
        #        "winner", "path_paid": {account: data + compute + expertise} in order first paid,
        #        "test_scored"}: paid_in is the bounty, the bond and every stake and fee paid into the
        # task, credited every PayoutCredited of the task
        self.tasks = {}
        # id -> {"task", "parent", "author", "dataset", "status": pending|scored|rejected|reclaimed,
        #        "trained_on": the dataset an attacker hid, if any}
        self.nodes = {}
        # commitment -> {"task": staked in, "author": staker, "revealer", "args": reveal arguments};
        # an attacker's stands for a node of another task, or in another account's name
        self.commitments = {}
        self.datasets = {}  # task -> its dataset ids (ids count from 1 in each task)
        self.publishers = {}  # (task, dataset id) -> its publisher
        self.reclaimed = {}  # commitment -> its author, once reclaimed
        self.paid_out = {}  # task id -> wei of the pool credited by finalize (bonds apart)
        self.dirty = set()  # finalized tasks a step changed (bond, publication, test score)
        self.finalize_gas = []  # (gas, depth, slots it wrote to keep reserves for claims)
        # every account the contract may credit; address(0) holds what is burned
        self.holders = [accounts[i] for i in [1, *PLAYERS]] + [ZERO_ADDRESS]
        self.model_credits = {}  # account -> wei credited and not withdrawn, from the events
        self.chain_tasks, self.chain_credits, self._seen = {}, {}, len(history)
        # something to work on from the first step
        tid = self._new_task(self._actor(0), 10**18, 10**16, 3 * DAY, (10**14, 0, 10**17))
        self._publish_dataset(tid, self._actor(1))
        self._new_task(self._attacker(0), 1, 0, DAY)
        self._snapshot(
            full=True
        )  # the contract's view after the last step: chain_tasks, chain_nodes, …

    # ───────────────────────────── helpers ─────────────────────────────
    def _actor(self, i):
        return accounts[ACTORS[i]]

    def _attacker(self, i):
        return accounts[ATTACKERS[i]]

    def _pick(self, items, i):
        items = list(items)
        return items[i % len(items)] if items else None

    def _task(self, tid):
        return self.tree.getTask(tid).dict()

    def _is_open(self, tid):
        """Certainly takes new nodes (and commitments) in the next block."""
        return (
            not self.tasks[tid]["finalized"] and chain.time() + MARGIN < self.tasks[tid]["deadline"]
        )

    def _is_closed(self, tid):
        """Certainly takes none."""
        return self.tasks[tid]["finalized"] or chain.time() > self.tasks[tid]["deadline"]

    def _revealable(self, tid):
        """Certainly takes a reveal in the next block: not finalized, and REVEAL_WINDOW after the
        deadline not reached."""
        t = self.tasks[tid]
        return not t["finalized"] and chain.time() + MARGIN < t["deadline"] + self.window

    def _unrevealable(self, tid):
        t = self.tasks[tid]
        return t["finalized"] or chain.time() > t["deadline"] + self.window

    def _open_commitments(self, tid):
        """Commitments staked in `tid`, neither revealed nor reclaimed."""
        return sum(1 for v in self.commitments.values() if v["task"] == tid)

    def _open_tasks(self):
        return [t for t, v in self.tasks.items() if not v["finalized"]]

    @staticmethod
    def _reached(t):
        return t["bestNodeId"] != 0 and t["bestAccuracyBps"] >= t["targetAccuracyBps"]

    def _pending(self, tid):
        return sum(1 for v in self.nodes.values() if v["task"] == tid and v["status"] == "pending")

    def _new_task(self, sponsor, bounty, stake, duration, terms=(0, 0, 0)):
        """A task with (scoring fee, cap, audit bond) `terms`; every task commits to a real opening
        of its validation file (a random file CID and salt), so any may be published."""
        fee, cap, bond = terms
        deadline = chain.time() + duration
        opening = (os.urandom(32), os.urandom(32))
        tx = self.tree.createTask(
            cid(1),
            hashlib.sha256(opening[1] + opening[0]).digest(),  # sha256(salt ‖ file CID)
            TARGET,
            deadline,
            5000,
            3000,
            2000,
            stake,
            fee,
            cap,
            bond,
            False,
            {"from": sponsor, "value": bounty + bond},
        )
        self.tasks[tx.return_value] = {
            "stake": stake,
            "fee": fee,
            "cap": cap,
            "bounty": bounty,
            "bond": bond,
            "deadline": deadline,
            "sponsor": str(sponsor),
            "finalized": False,
            "paid_in": bounty + bond,
            "credited": 0,
            "submissions": 0,
            "by": Counter(),
            "bond_state": "held" if bond else "none",
            "unread": False,  # the oracle said the sponsor's validator keeps work waiting
            "audit_end": None,
            "opening": opening,
            "published": False,
            "winner": 0,
            "path_paid": {},
            "test_scored": False,
            "raised": 0,  # the sum of its nodes' raises
            "weight": 0,  # the sum of its nodes' compute weights
            "reserve": 0,  # wei kept at finalize for the raises off the winning path
            "unclaimed": 0,  # those raises not claimed yet
            "compute_reserve": 0,  # wei kept at finalize for the compute weights off the path
            "unclaimed_weight": 0,  # those weights not claimed yet
        }
        return tx.return_value

    def _price(self, tid):
        return self.tasks[tid]["stake"] + self.tasks[tid]["fee"]

    def _capped_out(self, tid, account):
        """`account` made as many proposals and commitments as the task allows."""
        t = self.tasks[tid]
        return t["cap"] != 0 and t["by"][str(account)] >= t["cap"]

    def _paid_submission(self, tid, account, node=True):
        """A proposal (`node`) or a commitment paid stake + fee; a node counts among the task's
        submissions at once, a commitment when it is revealed."""
        t = self.tasks[tid]
        t["paid_in"] += self._price(tid)
        t["submissions"] += node
        if t["cap"]:
            t["by"][str(account)] += 1

    def _stake(self, tid, commitment, staker, revealer, args, copy=False):
        """Stakes `commitment` in task `tid` from `staker`, paying stake and fee; `revealer` would
        reveal it with `args` (`copy`: a hash copied from another account, which no arguments of the
        staker's open). Commitments are the staker's own: the model keys them by (staker, hash) as
        the contract does. None when the staker has reached the task's cap (refused)."""
        if self._capped_out(tid, staker):
            with expect_revert("SubmissionCapReached"):
                self.tree.commitSubmission(
                    tid, commitment, {"from": staker, "value": self._price(tid)}
                )
            self.outcomes["submission over the cap refused"] += 1
            return None
        self.tree.commitSubmission(tid, commitment, {"from": staker, "value": self._price(tid)})
        self._paid_submission(tid, staker, node=False)
        key = (staker, commitment)
        self.commitments[key] = {
            "task": tid,
            "author": staker,
            "revealer": revealer,
            "args": args,
            "copy": copy,
        }
        return key

    # ────────────────────────────── rules ──────────────────────────────
    def rule_create_task(self, st_actor, st_amount, st_stake, st_duration, st_terms):
        self._new_task(self._actor(st_actor), st_amount, st_stake, st_duration, st_terms)

    def rule_attacker_opens_free_task(self, st_attacker, st_amount, st_duration):
        """A task of the attacker's own, no stake asked: somewhere to stake commitments for free."""
        self._new_task(self._attacker(st_attacker), 1 + st_amount % 1000, 0, st_duration)

    def rule_propose(self, st_player, st_pick):
        """Into an open task mostly; into any task, closed ones included, one time in five."""
        tid = self._pick(self._open_tasks() if st_pick % 5 else self.tasks, st_pick // 5)
        if tid is None:
            return
        author = accounts[PLAYERS[st_player]]
        price = self._price(tid)
        if self._is_closed(tid):
            with expect_revert(
                "TaskIsFinalized" if self.tasks[tid]["finalized"] else "DeadlinePassed"
            ):
                self.market.propose(tid, author, value=price)
            self.outcomes["proposal refused: task closed"] += 1
        elif self._is_open(tid) and self._capped_out(tid, author):
            with expect_revert("SubmissionCapReached"):
                self.market.propose(tid, author, value=price)
            self.outcomes["submission over the cap refused"] += 1
        elif self._is_open(tid):
            if self.tasks[tid]["fee"]:  # stake + fee, exactly: the stake alone is refused
                with expect_revert("WrongStake"):
                    self.market.propose(tid, author, value=self.tasks[tid]["stake"])
            nid = self.market.propose(tid, author, value=price)
            self._paid_submission(tid, author)
            self.nodes[nid] = {
                "task": tid,
                "parent": 0,
                "author": author,
                "dataset": 0,
                "status": "pending",
            }
            self.outcomes["proposed"] += 1

    def rule_publish(self, st_player, st_pick):
        tid = self._pick(self._open_tasks(), st_pick)
        if tid is None or not self._is_open(tid):
            return
        self._publish_dataset(tid, accounts[PLAYERS[st_player]])

    def _publish_dataset(self, tid, publisher):
        """Commit and reveal at the task's price: counted against the cap, the stake credited back
        at the reveal (followed from its event), the fee in the pool's count."""
        if self._capped_out(tid, publisher):
            with expect_revert("SubmissionCapReached"):
                self.market.publish(tid, publisher, value=self._price(tid))
            self.outcomes["submission over the cap refused"] += 1
            return
        did = self.market.publish(tid, publisher, value=self._price(tid))
        self._paid_submission(tid, publisher)
        assert did == len(self.datasets.get(tid, [])) + 1
        self.datasets.setdefault(tid, []).append(did)
        self.publishers[(tid, did)] = publisher

    def rule_commit(self, st_actor, st_pick, st_flag, st_reveal):
        """Commits under a node of an open task (st_flag: on one of its datasets, if any), and
        (st_reveal) reveals in the next block; one time in three an attacker tries to stake a copy."""
        nid = self._pick(
            [
                n
                for n, v in self.nodes.items()
                if v["status"] != "rejected" and self._is_open(v["task"])
            ],
            st_pick,
        )
        if nid is None:
            return
        tid = self.nodes[nid]["task"]
        author = self._actor(st_actor)
        dataset = self._pick(self.datasets.get(tid, []), st_pick) if st_flag else 0
        weights = cid(int.from_bytes(os.urandom(8), "big") + 1)
        salt = os.urandom(32)
        args = (tid, nid, weights, dataset or 0, salt)
        c = self.market.commitment(author, *args)
        key = self._stake(tid, c, author, author, args)
        if key is None:
            return
        self.outcomes["committed"] += 1
        if (
            st_pick % 3 == 0
        ):  # an attacker copies it from the chain, in any open task: blocks nothing
            tasks = [t for t in self.tasks if self._is_open(t)]
            target = self._pick(tasks, st_pick // 3)
            self._copy(c, target, self._attacker(st_pick % len(ATTACKERS)), args)
        if st_reveal:
            self._reveal(key)

    def _copy(self, c, tid, attacker, args):
        """An attacker stakes someone's commitment hash as its own: accepted (each account has its
        own commitments), revealable by nobody, its stake reclaimable by the attacker only."""
        if (attacker, c) in self.commitments:
            with expect_revert("CommitmentExists"):
                self.tree.commitSubmission(tid, c, {"from": attacker, "value": self._price(tid)})
            return
        key = self._stake(tid, c, attacker, attacker, args, copy=True)
        if key is None:
            return
        with expect_revert("UnknownCommitment"):  # the hash names its author, not the attacker
            self.tree.revealSubmission(*args, {"from": attacker})
        self.outcomes["copied commitment reveals nothing"] += 1
        return key

    def rule_reveal(self, st_pick):
        """Reveals an honest commitment of an open task mostly; one time in four any, an attacker's
        included."""
        honest = [
            c
            for c, v in self.commitments.items()
            if v["author"] == v["revealer"]
            and not v["copy"]
            and v["task"] == v["args"][0]
            and self._revealable(v["task"])
        ]
        c = self._pick(honest if st_pick % 4 and honest else self.commitments, st_pick // 4)
        if c is not None:
            self._reveal(c)

    def _reveal(self, c):
        info = self.commitments[c]
        tid, parent = info["args"][0], info["args"][1]
        revealer = info["revealer"]
        if revealer != info["author"] or info["copy"]:
            with expect_revert(
                "UnknownCommitment"
            ):  # staked by another account than the hash names
                self.tree.revealSubmission(*info["args"], {"from": revealer})
            self.outcomes["reveal in another's name refused"] += 1
            return
        if tid != info["task"]:
            with expect_revert("CommitmentNotInTask"):  # staked in another task than it names
                self.tree.revealSubmission(*info["args"], {"from": revealer})
            self.outcomes["reveal across tasks refused"] += 1
            return
        parent_rejected = self.nodes[parent]["status"] == "rejected"
        too_deep = self.chain_nodes[parent]["depth"] >= self.max_depth
        if self._unrevealable(tid) or parent_rejected or too_deep:
            with expect_revert():
                self.tree.revealSubmission(*info["args"], {"from": revealer})
            return
        if not self._revealable(tid):
            return
        if self._is_closed(tid):
            self.outcomes["revealed after the deadline, in the reveal window"] += 1
        nid = self.tree.revealSubmission(*info["args"], {"from": revealer}).return_value
        del self.commitments[c]
        self.tasks[tid]["submissions"] += 1  # its fee joins the pool's count
        self.nodes[nid] = {
            "task": tid,
            "parent": parent,
            "author": revealer,
            "dataset": info["args"][3],
            "status": "pending",
        }
        self.outcomes["revealed"] += 1
        return nid

    def rule_attacker_hides_dataset(self, st_attacker, st_pick):
        """Trains on a published dataset, declares private data (to take its data share); the
        oracle's replay finds the dataset when it scores the node and re-attributes it."""
        attacker = self._attacker(st_attacker)
        nid = self._pick(
            [
                n
                for n, v in self.nodes.items()
                if v["status"] != "rejected"
                and self._is_open(v["task"])
                and self.datasets.get(v["task"])
            ],
            st_pick,
        )
        if nid is None:
            return
        tid = self.nodes[nid]["task"]
        args = (tid, nid, cid(int.from_bytes(os.urandom(8), "big") + 1), 0, os.urandom(32))
        key = self._stake(tid, self.market.commitment(attacker, *args), attacker, attacker, args)
        if key is None:
            return
        node = self._reveal(key)
        if node is not None:
            self.nodes[node]["trained_on"] = self._pick(self.datasets[tid], st_pick)

    def rule_attacker_reveals_across_tasks(self, st_attacker, st_pick, st_flag):
        """Stakes in an open task (preferably the attacker's own free one) a commitment naming a node
        of another task, then tries to reveal it into that other task."""
        attacker = self._attacker(st_attacker)
        nid = self._pick(self.nodes, st_pick)
        if nid is None:
            return
        victim = self.nodes[nid]["task"]
        own = [t for t in self.tasks if t != victim and self._is_open(t)]
        free = [t for t in own if self.tasks[t]["stake"] == 0]
        staked_in = self._pick(free if st_flag and free else own, st_pick // 7)
        if staked_in is None:
            return
        args = (victim, nid, cid(int.from_bytes(os.urandom(8), "big") + 1), 0, os.urandom(32))
        if (
            self._stake(
                staked_in, self.market.commitment(attacker, *args), attacker, attacker, args
            )
            is None
        ):
            return
        with expect_revert("CommitmentNotInTask"):
            self.tree.revealSubmission(*args, {"from": attacker})
        with expect_revert("UnknownCommitment"):  # nor into the task it was staked in
            self.tree.revealSubmission(staked_in, *args[1:], {"from": attacker})
        self.outcomes["reveal across tasks refused"] += 1
        if self.tasks[staked_in]["stake"] == 0:
            self.outcomes["free commitment for a staked task refused"] += (
                self.tasks[victim]["stake"] > 0
            )

    def rule_attacker_reveals_for_another(self, st_attacker, st_pick):
        """Reveals another account's commitment with its arguments, from the attacker's address."""
        attacker = self._attacker(st_attacker)
        # (not arguments that open a commitment of the attacker's own: a copy of one of its hashes)
        c = self._pick(
            [
                c
                for c, v in self.commitments.items()
                if attacker not in (v["author"], v["revealer"])
                and (attacker, self.market.commitment(attacker, *v["args"])) not in self.commitments
            ],
            st_pick,
        )
        if c is None:
            return
        with expect_revert("UnknownCommitment"):  # the hash names its author
            self.tree.revealSubmission(*self.commitments[c]["args"], {"from": attacker})
        self.outcomes["reveal of another's commitment refused"] += 1

    def rule_attacker_stakes_in_victims_name(self, st_attacker, st_actor, st_pick, st_flag):
        """Copies a commitment already staked (st_flag: accepted as the attacker's own, revealable by
        nobody, blocking nothing) or stakes a fresh one made in an honest account's name, which that
        account then cannot reveal."""
        attacker = self._attacker(st_attacker)
        if st_flag:
            key = self._pick(
                [k for k, v in self.commitments.items() if self._is_open(v["task"])], st_pick
            )
            if key is not None:
                info = self.commitments[key]
                self._copy(key[1], info["task"], attacker, info["args"])
            return
        nid = self._pick([n for n, v in self.nodes.items() if v["status"] != "rejected"], st_pick)
        if nid is None or not self._is_open(self.nodes[nid]["task"]):
            return
        victim = self._actor(st_actor)
        args = (
            self.nodes[nid]["task"],
            nid,
            cid(int.from_bytes(os.urandom(8), "big") + 1),
            0,
            os.urandom(32),
        )
        self._stake(args[0], self.market.commitment(victim, *args), attacker, victim, args)

    def _scorable(self, tid):
        """Pending nodes of the task whose parents are scored or come earlier in the batch."""
        batch = []
        for nid, v in sorted(self.nodes.items()):
            if v["task"] != tid or v["status"] != "pending":
                continue
            parent = v["parent"]
            if parent == 0 or self.nodes[parent]["status"] == "scored" or parent in batch:
                batch.append(nid)
        return batch

    def rule_score(self, st_pick, st_acc, st_ops, st_flag):
        """Scores a batch of pending nodes of one task whose parents are scored (or none); compute only
        on published data; st_flag re-attributes privately trained nodes to a dataset of the task."""
        tid = self._pick([t for t in self._open_tasks() if self._scorable(t)], st_pick)
        if tid is None:
            return
        batch = self._scorable(tid)[: 1 + st_pick % 12]
        task_datasets = self.datasets.get(tid, [])
        records = []
        for i, nid in enumerate(batch):
            v = self.nodes[nid]
            dataset = v["dataset"]
            if v.get("trained_on"):  # the replay found the dataset a node was declared without
                dataset = v["trained_on"]
            elif dataset == 0 and v["parent"] != 0 and st_flag and task_datasets:
                dataset = self._pick(task_datasets, st_pick + i)
            ops = (st_ops * (i + 1)) % 10**7 if dataset else 0
            records.append((nid, (st_acc + 997 * i) % 10001, ops, dataset))
        before = self._task(tid)
        reached_before = self._reached(before)
        best = before["bestAccuracyBps"]  # a trained node above it sets a new best: its raise
        for nid, acc, ops, _ in records:
            self.nodes[nid]["ops"] = ops
            if self.nodes[nid]["parent"] and acc > best:
                self.nodes[nid]["raise"] = acc - best
                self.tasks[tid]["raised"] += acc - best
                self.outcomes["new best with a raise"] += 1
                # the replayed training on its path gets its raise's compute weight, by ops
                trainers = [n for n in self._path(nid)[:-1] if self.nodes[n]["ops"]]
                ops = sum(self.nodes[n]["ops"] for n in trainers)
                for n in trainers:
                    w = (acc - best) * WEIGHT_PER_BPS * self.nodes[n]["ops"] // ops
                    self.nodes[n]["weight"] = self.nodes[n].get("weight", 0) + w
                    self.tasks[tid]["weight"] += w
                if trainers:
                    self.outcomes["compute weight given"] += 1
            best = max(best, acc)
        tx = self.tree.recordScores(tid, records, {"from": self.oracle})
        # the batch that first reaches the target brings the deadline forward to REVEAL_WINDOW
        # from now (where it was later)
        t = self._task(tid)
        if (
            self._reached(t)
            and not reached_before
            and self.tasks[tid]["deadline"] > tx.timestamp + self.window
        ):
            self.tasks[tid]["deadline"] = tx.timestamp + self.window
            assert tx.events["DeadlineBroughtForward"]["deadline"] == self.tasks[tid]["deadline"]
            self.outcomes["deadline brought forward by the target"] += 1
        else:
            assert "DeadlineBroughtForward" not in tx.events
        assert t["deadline"] == self.tasks[tid]["deadline"]
        attributed = (
            {e["nodeId"] for e in tx.events["NodeAttributed"]}
            if "NodeAttributed" in tx.events
            else set()
        )
        for nid, _, _, dataset in records:
            assert (nid in attributed) == (dataset != self.nodes[nid]["dataset"])
            self.nodes[nid]["status"] = "scored"
            self.nodes[nid]["dataset"] = dataset
        self.outcomes["scored"] += len(records)
        self.outcomes["re-attributed"] += len(attributed)

    def rule_attacker_bad_score(self, st_pick, st_ops):
        """Scores the oracle must not record, for two scorable nodes of a task: compute on private
        data, a dataset of another task, a published-data node moved to private data or to another
        dataset, an architecture given a dataset."""
        tid = self._pick([t for t in self._open_tasks() if self._scorable(t)], st_pick)
        if tid is None:
            return
        mine = self.datasets.get(tid, [])
        foreign = len(mine) + 1 + st_pick % 3  # ids are per task: one this task does not have
        for nid in self._scorable(tid)[:2]:
            v = self.nodes[nid]
            bad = [
                (1 + st_ops, 0, "ComputeOnPrivateData")
                if v["dataset"] == 0
                else (st_ops, 0, "BadAttribution")
            ]
            bad += [(0, foreign, "BadAttribution")] if foreign else []
            bad += [
                (0, d, "BadAttribution")
                for d in mine[:2]
                if v["parent"] == 0 or v["dataset"] not in (0, d)
            ]
            for ops, dataset, error in bad:
                with expect_revert(error):
                    self.tree.recordScores(tid, [(nid, 5000, ops, dataset)], {"from": self.oracle})
                self.outcomes[f"bad score refused ({error})"] += 1

    def rule_attacker_settles_twice(self, st_pick, st_attacker):
        """Scores or rejects a settled node again, reclaims a stake a second time: refused."""
        nid = self._pick([n for n, v in self.nodes.items() if v["status"] != "pending"], st_pick)
        if nid is not None:
            v = self.nodes[nid]
            error = "TaskIsFinalized" if self.tasks[v["task"]]["finalized"] else "NodeNotPending"
            with expect_revert(error):
                self.tree.recordScores(
                    v["task"], [(nid, 5000, 0, v["dataset"])], {"from": self.oracle}
                )
            with expect_revert(error):
                self.tree.rejectNodes(v["task"], [nid], [1], {"from": self.oracle})
            if v["status"] == "reclaimed":
                with expect_revert("NodeNotPending"):
                    self.tree.reclaimStake(nid, {"from": v["author"]})
            self.outcomes["settled twice refused"] += 1
        key = self._pick(self.reclaimed, st_pick)
        if key is not None:
            with expect_revert("NotAuthor"):  # a reclaimed commitment has no author any more
                self.tree.reclaimCommitment(key[1], {"from": key[0]})
            self.outcomes["commitment reclaimed twice refused"] += 1

    def rule_reject(self, st_pick):
        nid = self._pick(
            [
                n
                for n, v in self.nodes.items()
                if v["status"] == "pending" and not self.tasks[v["task"]]["finalized"]
            ],
            st_pick,
        )
        if nid is None:
            return
        reason = 1 + st_pick % 13
        tx = self.tree.rejectNodes(self.nodes[nid]["task"], [nid], [reason], {"from": self.oracle})
        self.nodes[nid]["status"] = "rejected"
        stake = self.tasks[self.nodes[nid]["task"]]["stake"]
        if reason == 7:  # parent-rejected: never judged, its stake comes back
            expected = [(str(self.nodes[nid]["author"]), stake, 4)] if stake else []
            assert credited_in(tx) == expected
            assert not events(tx, "ReputationChanged")
            self.outcomes["parent-rejected: stake returned"] += 1
        else:
            assert credited_in(tx) == []

    def rule_sleep(self, st_seconds):
        chain.sleep(st_seconds)
        chain.mine()

    def rule_finalize(self, st_pick, st_caller):
        """Finalize at any step, by anyone: refused before the task is due; while nodes await the
        oracle, to everyone but the oracle until FINALIZE_GRACE after the deadline; and to everyone
        while a commitment is open, until REVEAL_WINDOW after the deadline."""
        due = [
            t
            for t in self._open_tasks()
            if self._reached(self.chain_tasks[t]) or chain.time() > self.tasks[t]["deadline"]
        ]
        tid = self._pick(due if st_pick % 4 and due else self._open_tasks(), st_pick // 4)
        if tid is None:
            return
        caller = self.oracle if st_caller == len(PLAYERS) else accounts[PLAYERS[st_caller]]
        t = self._task(tid)
        now = chain.time()
        if not self._reached(t) and now <= t["deadline"]:
            # the next block may be a second later; only assert a revert when clearly not due
            if now + MARGIN < t["deadline"]:
                with expect_revert("NotFinalizable"):
                    self._send_finalize(tid, caller)
                self.outcomes["finalize refused: not due"] += 1
            return
        open_to_all = t["deadline"] + self.grace
        pending = self._pending(tid)
        assert t["pendingNodes"] == pending
        if pending and caller != self.oracle and now <= open_to_all:
            if now + MARGIN < open_to_all:
                with expect_revert("WorkPending"):
                    self.tree.finalize(tid, {"from": caller})
                self.outcomes["finalize refused: work pending"] += 1
            return
        opened = self._open_commitments(tid)
        assert t["openCommitments"] == opened
        reveals_close = t["deadline"] + self.window
        if opened and now <= reveals_close:
            if now + MARGIN < reveals_close:
                with expect_revert("RevealsOpen"):
                    self._send_finalize(tid, caller)
                self.outcomes["finalize refused: commitments may still be revealed"] += 1
            return
        if opened:
            self.outcomes["finalized after the reveal window, commitments left"] += 1
        if pending and (st_pick // 7) % 3:  # the oracle's sessions for them failed for an hour
            self._say_unread(tid, st_pick)
        self._finalize(tid, caller)
        if pending:
            self.outcomes[
                "finalized with work pending "
                + ("by the oracle" if now <= open_to_all else "after the grace")
            ] += 1

    def _say_unread(self, tid, st_pick):
        """The oracle says the sponsor's validator keeps the task's work waiting; nobody else
        can say it (the oracle may take it back while nodes wait: it judges which wait on the
        validator, oracle/service.py)."""
        if st_pick % 2:
            with expect_revert("NotScorer"):
                self.tree.markValidationUnread(tid, True, {"from": accounts[PLAYERS[-1]]})
            self.tree.markValidationUnread(tid, False, {"from": self.oracle})
            assert not self.tree.getTask(tid).dict()["validationUnread"]
            self.outcomes["validation word refused to a stranger, taken back by the oracle"] += 1
        self.tree.markValidationUnread(tid, True, {"from": self.oracle})
        self.tasks[tid]["unread"] = True

    def _send_finalize(self, tid, caller):
        """The oracle finalizes leaving exactly the pending nodes it sees (finalizeLeaving);
        anyone else calls finalize."""
        if caller == self.oracle:
            return self.tree.finalizeLeaving(tid, self._pending(tid), {"from": caller})
        return self.tree.finalize(tid, {"from": caller})

    def _finalize(self, tid, caller):
        pending = self._pending(tid)
        tx = self._send_finalize(tid, caller)
        task = self.tasks[tid]
        task["finalized"] = True
        credits = credited_in(tx)
        winner = tx.events["TaskFinalized"]["winnerNodeId"]
        task["winner"] = winner
        pool = tx.events["TaskFinalized"]["pool"]
        # the path first, each credit net of its levy (the sponsor's excepted); then the levies,
        # burned; then the sponsor up to its bounty; the rest of the pool and the fees of nodes
        # left pending burned; then the bond
        path = [c for c in credits if c[2] in (0, 1, 2)]
        assert credits[: len(path)] == path and (winner or not path)
        levies = self._levies(path, str(task["sponsor"]))
        rest = credits[len(path) :]
        low, high = sum(lo for lo, _ in levies.values()), sum(hi for _, hi in levies.values())
        levy = 0
        if high and rest and rest[0][0] == ZERO_ADDRESS and low <= rest[0][1] <= high:
            levy = rest.pop(0)[1]
        assert low <= levy <= high
        paid = sum(amount for _, amount, _ in path) + levy
        # the raises off the winning path keep their part of the data and expertise shares
        on_path, nid = set(), winner
        while nid:
            on_path.add(nid)
            nid = self.nodes[nid]["parent"]
        data, compute, expertise = (pool * bps // 10_000 for bps in (5000, 3000, 2000))
        if task["raised"]:
            task["unclaimed"] = task["raised"] - sum(self.nodes[n].get("raise", 0) for n in on_path)
            task["reserve"] = (data + expertise) * task["unclaimed"] // task["raised"]
            if task["unclaimed"]:
                self.outcomes["finalized with raises off the path"] += 1
        if task["weight"]:
            task["unclaimed_weight"] = task["weight"] - sum(
                self.nodes[n].get("weight", 0) for n in on_path
            )
            task["compute_reserve"] = (
                compute * task["unclaimed_weight"] // (task["raised"] * WEIGHT_PER_BPS)
            )
            if task["unclaimed_weight"]:
                self.outcomes["finalized with compute weight off the path"] += 1
        paid += task["reserve"] + task["compute_reserve"]
        refund = min(pool - paid, task["bounty"])
        burned = pool - paid - refund + task["fee"] * pending
        expected = [(str(task["sponsor"]), refund, 3)] if refund else []
        expected += [(ZERO_ADDRESS, burned, 6)] if burned else []
        if burned:
            self.outcomes["burned at finalize: beyond the bounty, or pending fees"] += 1
        if task["bond_state"] == "held" and pending and task["unread"]:  # waited for the validator
            expected.append((ZERO_ADDRESS, task["bond"], 6))
            task["bond_state"] = "forfeited"
            self.outcomes["bond burned: work left unscored"] += 1
        elif task["bond_state"] == "held" and not winner and not pending:  # nothing to audit
            expected.append((str(task["sponsor"]), task["bond"], 5))
            task["bond_state"] = "returned"
            self.outcomes["bond returned: no winner"] += 1
        elif task["bond_state"] == "held":
            task["audit_end"] = tx.timestamp + AUDIT_WINDOW
            if pending:
                self.outcomes["bond held: work left without the validator's word"] += 1
        assert rest == expected
        self.paid_out[tid] = pool
        if levy:
            self.outcomes["reputation levy burned"] += 1
        paid = Counter()
        for account, amount, _kind in path:
            paid[account] += amount  # (a Counter keeps the order first paid)
        task["path_paid"] = dict(paid)
        # a point per REPUTATION_POINT_PRICE of an account's levies, once per task; the sponsor,
        # who pays no levy, never
        changes = {e["account"]: e["delta"] for e in events(tx, "ReputationChanged")}
        assert len(changes) == len(events(tx, "ReputationChanged"))
        for account, (lo, hi) in levies.items():
            assert lo // self.point_price <= changes.get(account, 0) <= hi // self.point_price
        assert set(changes) <= set(levies) and all(d > 0 for d in changes.values())
        self.outcomes["reputation earned on a path"] += len(changes)
        depth = self.chain_nodes[winner]["depth"] if winner else 0
        slots = bool(task["unclaimed"] or task["unclaimed_weight"]) + bool(task["compute_reserve"])
        self.finalize_gas.append((tx.gas_used, depth, slots))
        self.outcomes["finalized"] += 1

    def _levies(self, path, sponsor):
        """account -> (least, most) it can have paid in levies, from its net path credits: a credit
        of gross g is credited g - g * levy_bps // 10000, and one net amount can come from two
        grosses."""
        out = {}
        for account, net, _kind in path:
            if account == sponsor:
                continue
            first = net * self.levy_bps // (10_000 - self.levy_bps)
            valid = [
                levy
                for levy in range(max(0, first - 2), first + 3)
                if (net + levy) * self.levy_bps // 10_000 == levy
            ]
            assert valid, (account, net)
            lo, hi = out.get(account, (0, 0))
            out[account] = (lo + min(valid), hi + max(valid))
        return out

    def _claimable(self):
        """Nodes off their finalized task's winning path holding a raise or a compute weight, not
        claimed yet."""
        return [
            nid
            for nid, v in self.nodes.items()
            if (v.get("raise") or v.get("weight"))
            and not v.get("claimed")
            and self.tasks[v["task"]]["finalized"]
            and nid not in self._path(self.tasks[v["task"]]["winner"])
        ]

    def _path(self, nid):
        path = [nid]
        while self.nodes[path[-1]]["parent"]:
            path.append(self.nodes[path[-1]]["parent"])
        return path

    def rule_claim(self, st_pick, st_player):
        """Anyone claims what a node off a winning path holds, once: its raise's part of what is
        left of the raise reserve, its compute weight's part of what is left of the compute reserve
        (the last claim all of each), data to its provider, compute to its author, expertise to
        its architect, each net of its levy. A node holding nothing, on the path, or claimed is
        refused."""
        caller = accounts[PLAYERS[st_player]]
        claimable = self._claimable()
        nid = self._pick(claimable, st_pick) if st_pick % 3 else None
        if nid is None:
            nid = self._pick(self.nodes, st_pick)
            if nid is None or nid in claimable:
                return
            with expect_revert("NothingToClaim"):
                self.tree.claim(nid, {"from": caller})
            self.outcomes["claim refused"] += 1
            return
        self._claim(nid, caller)

    def _claim(self, nid, caller):
        v = self.nodes[nid]
        t = self.tasks[v["task"]]
        raise_part = compute_part = 0
        if v.get("raise"):
            raise_part = t["reserve"] * v["raise"] // t["unclaimed"]
            t["reserve"] -= raise_part
            t["unclaimed"] -= v["raise"]
        weight = v.get("weight", 0)
        if weight:
            compute_part = t["compute_reserve"] * weight // t["unclaimed_weight"]
            t["compute_reserve"] -= compute_part
            t["unclaimed_weight"] -= weight
        tx = self.tree.claim(nid, {"from": caller})
        assert tx.events["Claimed"]["amount"] == raise_part + compute_part
        v["claimed"] = True
        self.dirty.add(v["task"])
        data = raise_part * 5000 // 7000
        provider = (
            str(self.publishers[(v["task"], v["dataset"])]) if v["dataset"] else str(v["author"])
        )
        architect = str(self.nodes[self._path(nid)[-1]]["author"])
        gross = [
            (provider, data, 0),
            (str(v["author"]), compute_part, 1),
            (architect, raise_part - data, 2),
        ]
        expected, levy = [], 0
        for account, g, kind in gross:
            cut = 0 if account == t["sponsor"] else g * self.levy_bps // 10_000
            if g:
                expected.append((account, g - cut, kind))
                levy += cut
        credits = credited_in(tx)
        assert credits[: len(expected)] == expected
        assert credits[len(expected) :] == ([(ZERO_ADDRESS, levy, 6)] if levy else [])
        self.outcomes["claimed off the path"] += 1
        if compute_part:
            self.outcomes["compute weight claimed off the path"] += 1

    def _reclaimable_nodes(self):
        return [
            n
            for n, v in self.nodes.items()
            if v["status"] == "pending"
            and self.tasks[v["task"]]["finalized"]
            and self.tasks[v["task"]]["stake"] > 0
        ]

    def _reclaimable_commitments(self):
        return [
            c
            for c, v in self.commitments.items()
            if self.tasks[v["task"]]["finalized"] and self._price(v["task"]) > 0
        ]

    def _reclaim_node(self, nid, thief=None):
        author = self.nodes[nid]["author"]
        if thief is not None and thief != author:
            with expect_revert("NotAuthor"):
                self.tree.reclaimStake(nid, {"from": thief})
        tx = self.tree.reclaimStake(nid, {"from": author})
        # never scored: the stake comes back (the fee was burned at finalize)
        assert credited_in(tx) == [(str(author), self.tasks[self.nodes[nid]["task"]]["stake"], 4)]
        self.nodes[nid]["status"] = "reclaimed"
        self.outcomes["stake reclaimed"] += 1

    def _reclaim_commitment(self, key, thief=None):
        author, c = key
        if thief is not None and thief != author and (thief, c) not in self.commitments:
            with expect_revert("NotAuthor"):
                self.tree.reclaimCommitment(c, {"from": thief})
        tx = self.tree.reclaimCommitment(c, {"from": author})
        task = self.tasks[self.commitments[key]["task"]]
        # finalize waited for its reveal: the stake comes back, the fee is burned
        expected = [(str(author), task["stake"], 4)] if task["stake"] else []
        expected += [(ZERO_ADDRESS, task["fee"], 6)] if task["fee"] else []
        assert credited_in(tx) == expected
        del self.commitments[key]
        self.reclaimed[key] = author
        self.outcomes["commitment reclaimed" + (": its fee burned" if task["fee"] else "")] += 1
        if task["fee"] and not task["stake"]:  # the fee alone, burned: once
            with expect_revert("NotAuthor"):
                self.tree.reclaimCommitment(c, {"from": author})
            self.outcomes["fee burned once for a commitment never revealed"] += 1

    def rule_reclaim(self, st_pick, st_attacker, st_flag):
        """Reclaims a stake left in a finalized task (st_flag: an attacker tries first, refused)."""
        thief = self._attacker(st_attacker) if st_flag else None
        nid = self._pick(self._reclaimable_nodes(), st_pick)
        if nid is not None:
            self._reclaim_node(nid, thief)
        c = self._pick(self._reclaimable_commitments(), st_pick)
        if c is not None:
            self._reclaim_commitment(c, thief)

    def rule_attacker_reclaims_the_fee(self, st_pick, st_attacker):
        """Submits into a task whose stake is 0 but whose fee is not, then, once it is finalized
        with the commitment unrevealed, reclaims: the fee is burned (finalize waited for the
        reveal), once; a second reclaim is refused."""
        attacker = self._attacker(st_attacker)
        tid = self._pick(
            [
                t
                for t, v in self.tasks.items()
                if v["fee"]
                and not v["stake"]
                and self._is_open(t)
                and not self._capped_out(t, attacker)
            ],
            st_pick,
        )
        parent = self._pick(
            [n for n, v in self.nodes.items() if v["task"] == tid and v["status"] != "rejected"],
            st_pick,
        )
        if parent is not None:
            args = (tid, parent, cid(int.from_bytes(os.urandom(8), "big") + 1), 0, os.urandom(32))
            self._stake(tid, self.market.commitment(attacker, *args), attacker, attacker, args)
        mine = [
            k
            for k, v in self.commitments.items()
            if k[0] == attacker
            and self.tasks[v["task"]]["finalized"]
            and self.tasks[v["task"]]["fee"]
            and not self.tasks[v["task"]]["stake"]
        ]
        key = self._pick(mine, st_pick)
        if key is not None:
            self._reclaim_commitment(key)

    def rule_attacker_exceeds_cap(self, st_attacker, st_pick):
        """Proposes into a capped open task until the cap, and once more: refused; another account
        still may."""
        tid = self._pick(
            [t for t, v in self.tasks.items() if v["cap"] and self._is_open(t)], st_pick
        )
        if tid is None:
            return
        attacker = self._attacker(st_attacker)
        while not self._capped_out(tid, attacker):
            self._propose(tid, attacker)
        with expect_revert("SubmissionCapReached"):
            self.market.propose(tid, attacker, value=self._price(tid))
        assert self.tree.submissionsBy(tid, attacker) == self.tasks[tid]["cap"]
        self.outcomes["submission over the cap refused"] += 1
        other = self._attacker((st_attacker + 1) % len(ATTACKERS))
        if not self._capped_out(tid, other):
            self._propose(tid, other)
            self.outcomes["cap is per account"] += 1

    def _propose(self, tid, author):
        nid = self.market.propose(tid, author, value=self._price(tid))
        self._paid_submission(tid, author)
        self.nodes[nid] = {
            "task": tid,
            "parent": 0,
            "author": author,
            "dataset": 0,
            "status": "pending",
        }
        return nid

    def rule_publish_validation(self, st_pick, st_player, st_flag):
        """Publishes a finalized task's validation file: refused to anyone but the sponsor, for a
        wrong opening, before finalize and a second time; the sponsor's opening returns a held bond
        within the audit window and nothing after it (the bond stays forfeit)."""
        finalized = [t for t, v in self.tasks.items() if v["finalized"]]
        tid = self._pick(finalized if st_pick % 4 and finalized else self.tasks, st_pick // 4)
        t = self.tasks[tid]
        file_cid, salt = t["opening"]
        sponsor = accounts.at(t["sponsor"])
        caller = accounts[PLAYERS[st_player]]
        if str(caller) != t["sponsor"] and t["finalized"]:
            with expect_revert("NotSponsor"):
                self.tree.publishValidation(tid, file_cid, salt, {"from": caller})
            self.outcomes["publication by another refused"] += 1
        if not t["finalized"]:
            with expect_revert("TaskNotFinalized"):
                self.tree.publishValidation(tid, file_cid, salt, {"from": sponsor})
            return
        if t["published"]:
            with expect_revert("ValidationAlreadyPublished"):
                self.tree.publishValidation(tid, file_cid, salt, {"from": sponsor})
            return
        with expect_revert("WrongOpening"):  # another file, or another salt
            wrong = (os.urandom(32), salt) if st_flag else (file_cid, os.urandom(32))
            self.tree.publishValidation(tid, *wrong, {"from": sponsor})
        self.outcomes["wrong opening refused"] += 1
        if t["bond_state"] == "held" and abs(chain.time() - t["audit_end"]) <= MARGIN:
            return  # too close to the window's end to say which side the next block falls on
        self._publish(tid)

    def _publish(self, tid):
        t = self.tasks[tid]
        held = t["bond_state"] == "held"
        tx = self.tree.publishValidation(tid, *t["opening"], {"from": t["sponsor"]})
        assert (
            tx.events["ValidationPublished"]["fileCid"],
            tx.events["ValidationPublished"]["salt"],
        ) == tuple("0x" + x.hex() for x in t["opening"])
        t["published"] = True
        self.dirty.add(tid)
        if held and tx.timestamp <= t["audit_end"]:
            assert credited_in(tx) == [(t["sponsor"], t["bond"], 5)]
            t["bond_state"] = "returned"
            self.outcomes["bond returned: published"] += 1
        else:
            assert credited_in(tx) == []
            self.outcomes[
                "published late: bond stays forfeit" if held else "published, no bond"
            ] += 1

    def rule_forfeit_bond(self, st_pick, st_player):
        """Anyone forfeits a held bond once the audit window has closed: refused before (and for a
        task holding none); burned."""
        tid = self._pick([t for t, v in self.tasks.items() if v["finalized"]], st_pick)
        if tid is None:
            return
        t = self.tasks[tid]
        caller = accounts[PLAYERS[st_player]]
        if t["bond_state"] != "held":
            with expect_revert("NoBondHeld"):
                self.tree.forfeitBond(tid, {"from": caller})
            self.outcomes["forfeit refused: no bond"] += 1
        elif chain.time() + MARGIN < t["audit_end"]:
            with expect_revert("AuditWindowOpen"):
                self.tree.forfeitBond(tid, {"from": caller})
            self.outcomes["forfeit refused: early"] += 1
        elif chain.time() > t["audit_end"]:
            self._forfeit(tid, caller)

    def _forfeit(self, tid, caller):
        t = self.tasks[tid]
        tx = self.tree.forfeitBond(tid, {"from": caller})
        t["bond_state"] = "forfeited"
        self.dirty.add(tid)
        assert credited_in(tx) == [(ZERO_ADDRESS, t["bond"], 6)]
        assert tx.events["BondForfeited"]["amount"] == t["bond"]
        self.outcomes["bond forfeited"] += 1

    def rule_test_score(self, st_pick, st_acc, st_caller):
        """The winner's test score: the oracle's only, once, after finalize and with a winner; it
        credits nothing."""
        finalized = [t for t, v in self.tasks.items() if v["finalized"]]
        tid = self._pick(finalized if st_pick % 4 and finalized else self.tasks, st_pick // 4)
        self._test_score(tid, st_acc, st_caller)

    def _test_score(self, tid, st_acc, st_caller):
        t = self.tasks[tid]
        if st_caller != len(PLAYERS):
            with expect_revert("AccessControlUnauthorizedAccount"):
                self.tree.recordTestScore(tid, st_acc, {"from": accounts[PLAYERS[st_caller]]})
            self.outcomes["test score by another refused"] += 1
            return
        error = (
            "TaskNotFinalized"
            if not t["finalized"]
            else "NoWinner"
            if not t["winner"]
            else "TestScoreAlreadyRecorded"
            if t["test_scored"]
            else None
        )
        if error:
            with expect_revert(error):
                self.tree.recordTestScore(tid, st_acc, {"from": self.oracle})
            self.outcomes[f"test score refused ({error})"] += 1
            return
        tx = self.tree.recordTestScore(tid, st_acc, {"from": self.oracle})
        assert credited_in(tx) == []
        assert tx.events["TestScoreRecorded"]["nodeId"] == t["winner"]
        t["test_scored"] = True
        self.dirty.add(tid)
        self.outcomes["test score recorded"] += 1

    def rule_withdraw(self, st_player):
        account = accounts[PLAYERS[st_player]]
        if self.chain_credits[account] == 0:
            with expect_revert("NothingToWithdraw"):
                self.tree.withdraw({"from": account})
        else:
            self.tree.withdraw({"from": account})

    def wind_down(self, rng):
        """Ends a sequence, yielding after each call for the invariants. Task by task, once its
        deadline has passed, a task with nodes still pending is refused to anyone but the oracle,
        which finalizes every other one; after every grace period anyone finalizes the rest; every
        stake left is reclaimed and every credit withdrawn. Then each task has paid out exactly
        what was paid in, and the contract holds nothing."""

        def sleep_until(timestamp):
            if chain.time() <= timestamp:
                chain.sleep(timestamp - chain.time() + 1)
                chain.mine()

        by_oracle = True
        for tid in sorted(self._open_tasks(), key=lambda t: self.tasks[t]["deadline"]):
            sleep_until(self.tasks[tid]["deadline"] + self.window)  # every reveal window closed
            if (
                self._pending(tid)
                and chain.time() + MARGIN < self.tasks[tid]["deadline"] + self.grace
            ):
                with expect_revert("WorkPending"):
                    self.tree.finalize(
                        tid, {"from": accounts[PLAYERS[rng.randrange(len(PLAYERS))]]}
                    )
                self.outcomes["finalize refused: work pending"] += 1
                if by_oracle:  # every other one; the others wait for the grace to end
                    self._say_unread(tid, tid)  # the oracle gave up on them: it says why first
                    self._finalize(tid, self.oracle)
                    self.outcomes["finalized with work pending by the oracle"] += 1
                by_oracle = not by_oracle
                yield f"finalize({tid}) with {self._pending(tid)} pending"
        sleep_until(max(t["deadline"] for t in self.tasks.values()) + self.grace)
        for tid in self._open_tasks():
            if self._pending(tid):
                self.outcomes["finalized with work pending after the grace"] += 1
            self._finalize(tid, accounts[PLAYERS[rng.randrange(len(PLAYERS))]])
            yield f"finalize({tid})"
        for nid in self._claimable():  # every raise off a winning path is paid
            self._claim(nid, accounts[PLAYERS[rng.randrange(len(PLAYERS))]])
            yield f"claim({nid})"
        for nid in self._reclaimable_nodes():
            self._reclaim_node(nid)
            yield f"reclaimStake({nid})"
        for c in self._reclaimable_commitments():
            self._reclaim_commitment(c)
            yield f"reclaimCommitment({c[1].hex()[:10]}…)"
        for key in list(self.commitments):  # only commitments of free tasks are left
            with expect_revert("NothingToReclaim"):
                self.tree.reclaimCommitment(key[1], {"from": key[0]})
            self.outcomes["reclaim of nothing refused"] += 1
        for tid, t in self.tasks.items():  # the winner's test score, once; none without a winner
            if not t["test_scored"]:
                self._test_score(tid, rng.randrange(10001), len(PLAYERS))
                yield f"recordTestScore({tid})"
            self._test_score(tid, rng.randrange(10001), len(PLAYERS))
        # bonds: every other held one published (returned if still in its window), the rest
        # forfeited once their windows close
        held = [tid for tid in self.tasks if self.tasks[tid]["bond_state"] == "held"]
        for tid in held[1::2]:
            if (
                not self.tasks[tid]["published"]
                and abs(chain.time() - self.tasks[tid]["audit_end"]) > MARGIN
            ):
                self._publish(tid)
                yield f"publishValidation({tid})"
        held = [tid for tid in held if self.tasks[tid]["bond_state"] == "held"]
        if held:
            sleep_until(max(self.tasks[tid]["audit_end"] for tid in held))
        for tid in held[::2]:  # too late: published, but the bond is not returned
            if not self.tasks[tid]["published"]:
                self._publish(tid)
                yield f"publishValidation({tid}) late"
        for tid in held:
            self._forfeit(tid, accounts[PLAYERS[rng.randrange(len(PLAYERS))]])
            yield f"forfeitBond({tid})"
        for i in PLAYERS:
            if self.chain_credits[accounts[i]]:
                self.tree.withdraw({"from": accounts[i]})
                yield f"withdraw(accounts[{i}])"
        self._snapshot(full=True)
        assert all(t["credited"] == t["paid_in"] for t in self.tasks.values())
        burned = self.chain_credits[ZERO_ADDRESS]
        assert self.chain_balance == burned
        assert not any(v for a, v in self.chain_credits.items() if a != ZERO_ADDRESS)
        self.outcomes["wound down"] += 1

    # ──────────────────────────── invariants ───────────────────────────
    def _snapshot(self, full=False):
        """The contract's state the invariants read, in one JSON-RPC batch. Ganache spends about
        2 ms on each eth_call, so a step reads again only what it may have changed: the tasks not
        finalized before it, the credits of the accounts its transactions came from or credited, the
        nodes; `full` reads every task and every account. The events of every transaction are
        followed too: PayoutCredited adds to its task's `credited` and to its account's credit,
        Withdrawn empties the account's credit."""
        touched = set()
        for tx in (history[i] for i in range(self._seen, len(history))):
            touched.add(str(tx.sender))
            if tx.status != 1:
                continue
            for e in events(tx, "PayoutCredited"):
                self.tasks[e["taskId"]]["credited"] += e["amount"]
                self.model_credits[e["account"]] = (
                    self.model_credits.get(e["account"], 0) + e["amount"]
                )
                touched.add(e["account"])
            for e in events(tx, "Withdrawn"):
                assert e["amount"] == self.model_credits.get(e["account"], 0)
                self.model_credits[e["account"]] = 0
        self._seen = len(history)
        holders = [a for a in self.holders if full or str(a) in touched]
        tasks = [
            t
            for t in self.tasks
            if full
            or t not in self.chain_tasks
            or not self.chain_tasks[t]["finalized"]
            or t in self.dirty
        ]
        self.dirty.clear()
        node_ids = [*sorted(self.nodes), len(self.nodes) + 1]  # and the next id: no node there yet
        chunks = [node_ids[i : i + 500] for i in range(0, len(node_ids), 500)]
        calls = [(self.tree.getTask, (tid,)) for tid in tasks]
        calls += [(self.tree.pendingWithdrawals, (a,)) for a in holders]
        calls += [(self.tree.getNodes, (chunk,)) for chunk in chunks] + (
            [(self.tree.counts, ())] if full else []
        )
        batch = [
            ("eth_call", [{"to": m._address, "data": m.encode_input(*args)}, "latest"])
            for m, args in calls
        ]
        responses = web3.provider.make_batch_request(
            [*batch, ("eth_getBalance", [self.tree.address, "latest"])]
        )
        results = [
            m.decode_output(r["result"]) for (m, _), r in zip(calls, responses, strict=False)
        ]
        self.chain_balance = int(responses[-1]["result"], 16)
        self.chain_tasks.update((tid, results.pop(0).dict()) for tid in tasks)
        self.chain_credits.update((a, results.pop(0)) for a in holders)
        self.chain_nodes = {}
        for chunk in chunks:
            self.chain_nodes.update(zip(chunk, (n.dict() for n in results.pop(0)), strict=False))
        if full:
            assert tuple(results.pop(0)) == (len(self.tasks), len(self.nodes))

    def _escrowed(self, tid):
        """Stakes and fees still held for the task outside its pool: its unsettled nodes' (their
        fees only until finalize burns them) and its unrevealed commitments'."""
        t = self.tasks[tid]
        nodes = sum(1 for v in self.nodes.values() if v["task"] == tid and v["status"] == "pending")
        commitments = sum(1 for v in self.commitments.values() if v["task"] == tid)
        per_node = t["stake"] if t["finalized"] else self._price(tid)
        return per_node * nodes + self._price(tid) * commitments

    @staticmethod
    def _pool(t):
        """A task's pool as the contract reads it: bounty, forfeited stakes, the fees of settled
        nodes."""
        return (
            t["bounty"] + t["forfeited"] + t["scoringFee"] * (t["submissions"] - t["pendingNodes"])
        )

    def _bond_held(self, tid):
        return self.tasks[tid]["bond"] if self.tasks[tid]["bond_state"] == "held" else 0

    def invariant_eth_is_accounted_for(self):
        open_pools = sum(self._pool(t) for t in self.chain_tasks.values() if not t["finalized"])
        escrow = sum(self._escrowed(tid) for tid in self.tasks)
        bonds = sum(self._bond_held(tid) for tid in self.tasks)
        reserves = sum(t["reserve"] + t["compute_reserve"] for t in self.tasks.values())
        assert self.chain_balance == open_pools + escrow + bonds + reserves + sum(
            self.chain_credits.values()
        )

    def invariant_raises_match_the_model(self):
        """Each task's raises, and what it keeps for those off its winning path, as the model
        has them."""
        for tid, model in self.tasks.items():
            t = self.chain_tasks[tid]
            assert (t["raisedBps"], t["raiseReserve"], t["unclaimedRaiseBps"]) == (
                model["raised"],
                model["reserve"],
                model["unclaimed"],
            )
            assert (t["computeWeight"], t["computeReserve"], t["unclaimedWeight"]) == (
                model["weight"],
                model["compute_reserve"],
                model["unclaimed_weight"],
            )

    def invariant_credits_match_the_events(self):
        for account, credit in self.chain_credits.items():
            assert credit == self.model_credits.get(str(account), 0)

    def invariant_each_task_pays_out_at_most_what_was_paid_in(self):
        """Per task, from the events: credited ≤ bounty + bond + stakes and fees paid in; what is not
        credited yet is the open pool, the stakes still escrowed and the bond still held; once
        finalized, its raises claimed, reclaimed and its bond settled, credited == paid in."""
        for tid, model in self.tasks.items():
            t = self.chain_tasks[tid]
            assert model["finalized"] == t["finalized"]
            assert model["credited"] <= model["paid_in"]
            pool = 0 if t["finalized"] else self._pool(t)
            escrowed, bond = self._escrowed(tid), self._bond_held(tid)
            kept = model["reserve"] + model["compute_reserve"]
            assert model["credited"] + pool + escrowed + bond + kept == model["paid_in"]
            if t["finalized"] and escrowed == 0 and bond == 0 and kept == 0:
                assert model["credited"] == model["paid_in"]

    def invariant_task_terms_match_the_model(self):
        """Fees counted once per paid submission; the bond, publication and test score as the model
        has them."""
        states = {"none": 0, "held": 1, "returned": 2, "forfeited": 3}
        for tid, model in self.tasks.items():
            t = self.chain_tasks[tid]
            assert (t["scoringFee"], t["maxSubmissions"], t["auditBond"]) == (
                model["fee"],
                model["cap"],
                model["bond"],
            )
            assert (t["submissions"], t["bondState"]) == (
                model["submissions"],
                states[model["bond_state"]],
            )
            assert (t["validationPublished"], t["testScored"]) == (
                model["published"],
                model["test_scored"],
            )
            if model["audit_end"] is not None:
                assert t["auditWindowEnd"] == model["audit_end"]

    def invariant_no_task_pays_more_than_its_pool(self):
        for tid, paid in self.paid_out.items():
            t = self.chain_tasks[tid]
            assert paid == self._pool(t)

    def invariant_pending_nodes_match_the_model(self):
        for tid, t in self.chain_tasks.items():
            if not t["finalized"]:
                assert t["pendingNodes"] == self._pending(tid)

    def invariant_nodes_match_the_model(self):
        """Same task as the parent, one level deeper; status, author and dataset as the model has them
        (no reveal the model expected to fail ever made a node)."""
        codes = {"pending": 0, "scored": 1, "rejected": 2, "reclaimed": 3}
        assert self.chain_nodes[len(self.nodes) + 1]["author"] == ZERO_ADDRESS
        for nid, v in self.nodes.items():
            n = self.chain_nodes[nid]
            assert (n["taskId"], n["parentId"], n["author"]) == (
                v["task"],
                v["parent"],
                v["author"],
            )
            assert (n["status"], n["datasetId"]) == (codes[v["status"]], v["dataset"])
            assert (n["raiseBps"], n["computeWeight"], n["claimed"]) == (
                v.get("raise", 0),
                v.get("weight", 0),
                v.get("claimed", False),
            )
            if v["dataset"]:
                assert v["dataset"] in self.datasets[v["task"]]
            if n["parentId"]:
                parent = self.chain_nodes[n["parentId"]]
                assert parent["taskId"] == n["taskId"] and parent["depth"] + 1 == n["depth"]
            else:
                assert n["depth"] == 1 and n["datasetId"] == 0
            if n["verifiedOps"]:
                assert n["datasetId"] != 0

    def invariant_finalize_cost_is_bounded_by_depth(self):
        for gas, depth, slots in self.finalize_gas:
            # no winner: refund, burn, bond: 93k; each slot kept for claims 22k more; a winner
            # adds the call to the linked Payouts library and its answer's copy
            assert gas <= 130_000 + 60_000 * depth + 25_000 * slots

    # ────────────────────────────── driver ───────────────────────────────
    def run(self, rng: random.Random, steps: int, log: list):
        rules = [getattr(self, n) for n in dir(self) if n.startswith("rule_")]
        weights = [WEIGHTS.get(rule.__name__, 1) for rule in rules]
        invariants = [getattr(self, n) for n in dir(self) if n.startswith("invariant_")]
        self.setup()
        for _ in range(steps):
            rule = rng.choices(rules, weights)[0]
            args = {p: DRAW[p](rng) for p in inspect.signature(rule).parameters}
            log.append(f"{rule.__name__}({args})")
            rule(**args)
            self._snapshot()
            for check in invariants:
                check()
        log.append("wind down:")
        for call in self.wind_down(rng):
            log.append(f"  {call}")
            self._snapshot()
            for check in invariants:
                check()


def test_invariants_hold_under_random_calls(tree, oracle):
    machine = MarketMachine(tree, oracle)
    seeds = (
        [int(os.environ["BOUNTYTREE_STATEFUL_SEED"])]
        if "BOUNTYTREE_STATEFUL_SEED" in os.environ
        else range(SEQUENCES)
    )
    chain.snapshot()
    for seed in seeds:
        chain.revert()
        log = []
        try:
            machine.run(random.Random(seed), STEPS, log)
        except Exception as exc:
            raise AssertionError(f"seed {seed} failed after:\n  " + "\n  ".join(log)) from exc
    print(f"\n{len(seeds)} sequences of {STEPS} steps:", dict(sorted(machine.outcomes.items())))
    # the sequences must have exercised the whole lifecycle, attacks included, not just stood still
    assert machine.outcomes["wound down"] == len(seeds)
    if len(seeds) * STEPS >= 600:
        assert not {
            "revealed",
            "scored",
            "re-attributed",
            "finalized",
            "finalized with work pending by the oracle",
            "finalized with work pending after the grace",
            "finalize refused: not due",
            "finalize refused: work pending",
            "stake reclaimed",
            "commitment reclaimed",
            "reveal across tasks refused",
            "free commitment for a staked task refused",
            "reveal in another's name refused",
            "reveal of another's commitment refused",
            "copied commitment reveals nothing",
            "bad score refused (ComputeOnPrivateData)",
            "settled twice refused",
            "bad score refused (BadAttribution)",
            "reputation earned on a path",
            "submission over the cap refused",
            "cap is per account",
            "fee burned once for a commitment never revealed",
            "deadline brought forward by the target",
            "finalize refused: commitments may still be revealed",
            "bond returned: no winner",
            "bond burned: work left unscored",
            "bond held: work left without the validator's word",
            "validation word refused to a stranger, taken back by the oracle",
            "burned at finalize: beyond the bounty, or pending fees",
            "bond returned: published",
            "bond forfeited",
            "published late: bond stays forfeit",
            "forfeit refused: no bond",
            "wrong opening refused",
            "publication by another refused",
            "test score recorded",
            "test score by another refused",
            "test score refused (NoWinner)",
            "test score refused (TestScoreAlreadyRecorded)",
            "new best with a raise",
            "finalized with raises off the path",
            "claimed off the path",
            "claim refused",
            "compute weight given",
            "finalized with compute weight off the path",
            "compute weight claimed off the path",
        } - {outcome for outcome, count in machine.outcomes.items() if count}
