"""Stateful property test: random sequences of every call, the DESIGN.md invariants after each step.

Rules pick among what exists with an index drawn at random (modulo the list's length), so every
sequence is valid-ish; calls the contract must refuse are expected to revert, and the model says
which. The invariants are checked after every single step.

Why not brownie's `state_machine`: brownie 1.22.2 ships it compiled with mypyc, whose classes
cannot be subclassed from Python ("_BrownieStateMachine object expected"). Hypothesis'
RuleBasedStateMachine under brownie's plugin (which pins hypothesis 6.27) ran about two steps
per example here. So a seeded driver runs the same machine: SEQUENCES sequences of STEPS steps,
each from the chain snapshot taken after deployment; a failure names its seed, and
`BOUNTYTREE_STATEFUL_SEED=<seed>` replays exactly that sequence.
"""

import inspect
import os
import random

import brownie
from brownie import accounts, chain

from conftest import Market, cid

SEQUENCES = int(os.environ.get("BOUNTYTREE_STATEFUL_SEQUENCES", "12"))
STEPS = int(os.environ.get("BOUNTYTREE_STATEFUL_STEPS", "40"))
ACTORS = range(2, 9)
TARGET = 8000


DRAW = {
    "st_actor": lambda r: r.randrange(len(ACTORS)),
    "st_pick": lambda r: r.randrange(2**16),
    "st_acc": lambda r: r.choice([0, 10000, r.randrange(10001)]),
    "st_ops": lambda r: r.choice([0, r.randrange(10**6)]),
    "st_amount": lambda r: r.choice([1, 3, r.randrange(1, 10**18)]),
    "st_stake": lambda r: r.choice([0, r.randrange(10**16)]),
    "st_seconds": lambda r: r.choice([1, 3600, r.randrange(2 * 24 * 3600)]),
    "st_flag": lambda r: r.random() < 0.5,
}


class MarketMachine:
    def __init__(self, tree, oracle):
        self.tree = tree
        self.oracle = oracle
        self.market = Market(tree, oracle)
        self.finalized_total = 0

    def setup(self):
        self.tasks = {}  # id -> {"stake", "bounty"}
        self.nodes = {}  # id -> {"task", "parent", "author", "status": pending|scored|rejected|reclaimed}
        self.commitments = {}  # commitment -> {"task", "author", "args"}
        self.datasets = {}  # id -> task
        self.paid_out = {}  # task id -> wei credited by finalize
        self.finalize_gas = []  # (gas, depth)

    # ───────────────────────────── helpers ─────────────────────────────
    def _actor(self, i):
        return accounts[ACTORS[i]]

    def _pick(self, items, i):
        items = list(items)
        return items[i % len(items)] if items else None

    def _open_tasks(self):
        return [t for t in self.tasks if not self.tree.getTask(t).dict()["finalized"]]

    # ────────────────────────────── rules ──────────────────────────────
    def rule_create_task(self, st_actor, st_amount, st_stake):
        tid = self.market.create_task(self._actor(st_actor), bounty=st_amount, target=TARGET, stake=st_stake,
                                      deadline_in=24 * 3600)
        self.tasks[tid] = {"stake": st_stake, "bounty": st_amount}

    def rule_propose(self, st_actor, st_pick):
        tid = self._pick(self.tasks, st_pick)
        if tid is None:
            return
        t = self.tree.getTask(tid).dict()
        author = self._actor(st_actor)
        if t["finalized"] or chain.time() > t["deadline"]:
            with brownie.reverts():
                self.market.propose(tid, author, value=t["submissionStake"])
            return
        nid = self.market.propose(tid, author, value=t["submissionStake"])
        self.nodes[nid] = {"task": tid, "parent": 0, "author": author, "status": "pending"}

    def rule_publish(self, st_actor, st_pick):
        tid = self._pick(self._open_tasks(), st_pick)
        if tid is None or chain.time() > self.tree.getTask(tid).dict()["deadline"]:
            return
        did = self.market.publish(tid, self._actor(st_actor))
        self.datasets[did] = tid

    def rule_commit(self, st_actor, st_pick, st_ops, st_flag):
        nid = self._pick([n for n, v in self.nodes.items() if v["status"] != "rejected"], st_pick)
        if nid is None:
            return
        tid = self.nodes[nid]["task"]
        t = self.tree.getTask(tid).dict()
        if t["finalized"] or chain.time() > t["deadline"]:
            return
        author = self._actor(st_actor)
        dataset = self._pick([d for d, task in self.datasets.items() if task == tid], st_pick) if st_flag else 0
        weights = cid(int.from_bytes(os.urandom(8), "big") + 1)
        c, salt, _ = self.market.commit(tid, author, nid, weights, st_ops, dataset or 0,
                                        value=t["submissionStake"])
        self.commitments[c] = {"task": tid, "author": author,
                               "args": (tid, nid, weights, st_ops, dataset or 0, salt)}

    def rule_reveal(self, st_pick):
        c = self._pick(self.commitments, st_pick)
        if c is None:
            return
        info = self.commitments[c]
        tid, parent = info["args"][0], info["args"][1]
        t = self.tree.getTask(tid).dict()
        parent_rejected = self.nodes[parent]["status"] == "rejected"
        too_deep = self.tree.getNode(parent).dict()["depth"] >= self.tree.MAX_DEPTH()
        if t["finalized"] or chain.time() > t["deadline"] or parent_rejected or too_deep:
            with brownie.reverts():
                self.tree.revealSubmission(*info["args"], {"from": info["author"]})
            return
        nid = self.tree.revealSubmission(*info["args"], {"from": info["author"]}).return_value
        del self.commitments[c]
        self.nodes[nid] = {"task": tid, "parent": parent, "author": info["author"], "status": "pending"}

    def rule_score(self, st_pick, st_acc, st_ops):
        """Scores a batch of pending nodes of one task whose parents are scored (or none)."""
        tid = self._pick(self._open_tasks(), st_pick)
        if tid is None:
            return
        batch = []
        for nid, v in sorted(self.nodes.items()):
            if v["task"] != tid or v["status"] != "pending":
                continue
            parent = v["parent"]
            if parent == 0 or self.nodes[parent]["status"] == "scored" or parent in batch:
                batch.append(nid)
        if not batch:
            return
        batch = batch[: 1 + st_pick % 12]
        accs = [(st_acc + 997 * i) % 10001 for i in range(len(batch))]
        ops = [min(st_ops, self.tree.getNode(n).dict()["ops"]) for n in batch]
        self.tree.recordScores(tid, batch, accs, ops, {"from": self.oracle})
        for n in batch:
            self.nodes[n]["status"] = "scored"

    def rule_reject(self, st_pick):
        nid = self._pick([n for n, v in self.nodes.items() if v["status"] == "pending"
                          and not self.tree.getTask(v["task"]).dict()["finalized"]], st_pick)
        if nid is None:
            return
        self.tree.rejectNodes(self.nodes[nid]["task"], [nid], [1 + st_pick % 8], {"from": self.oracle})
        self.nodes[nid]["status"] = "rejected"

    def rule_sleep(self, st_seconds):
        chain.sleep(st_seconds)
        chain.mine()

    def rule_finalize(self, st_pick, st_actor):
        tid = self._pick(self._open_tasks(), st_pick)
        if tid is None:
            return
        t = self.tree.getTask(tid).dict()
        due = (t["bestNodeId"] != 0 and t["bestAccuracyBps"] >= t["targetAccuracyBps"]) or \
            chain.time() > t["deadline"]
        if not due:
            # the next block may be a second later; only assert a revert when clearly not due
            if chain.time() + 5 < t["deadline"]:
                with brownie.reverts():
                    self.tree.finalize(tid, {"from": self._actor(st_actor)})
            return
        tx = self.tree.finalize(tid, {"from": self._actor(st_actor)})
        self.paid_out[tid] = sum(e["amount"] for e in tx.events["PayoutCredited"]) \
            if "PayoutCredited" in tx.events else 0
        winner = tx.events["TaskFinalized"]["winnerNodeId"]
        depth = self.tree.getNode(winner).dict()["depth"] if winner else 0
        self.finalize_gas.append((tx.gas_used, depth))
        self.finalized_total += 1

    def rule_reclaim(self, st_pick):
        nid = self._pick([n for n, v in self.nodes.items() if v["status"] == "pending"
                          and self.tree.getTask(v["task"]).dict()["finalized"]
                          and self.tasks[v["task"]]["stake"] > 0], st_pick)
        if nid is not None:
            self.tree.reclaimStake(nid, {"from": self.nodes[nid]["author"]})
            self.nodes[nid]["status"] = "reclaimed"
        c = self._pick([c for c, v in self.commitments.items()
                        if self.tree.getTask(v["task"]).dict()["finalized"] and self.tasks[v["task"]]["stake"] > 0],
                       st_pick)
        if c is not None:
            self.tree.reclaimCommitment(c, {"from": self.commitments[c]["author"]})
            del self.commitments[c]

    def rule_withdraw(self, st_actor):
        account = self._actor(st_actor)
        if self.tree.pendingWithdrawals(account) == 0:
            with brownie.reverts():
                self.tree.withdraw({"from": account})
        else:
            self.tree.withdraw({"from": account})

    # ──────────────────────────── invariants ───────────────────────────
    def invariant_eth_is_accounted_for(self):
        open_pools = 0
        for tid in self.tasks:
            t = self.tree.getTask(tid).dict()
            if not t["finalized"]:
                open_pools += t["bounty"] + t["forfeited"]
        escrow = sum(self.tasks[v["task"]]["stake"] for v in self.nodes.values() if v["status"] == "pending")
        escrow += sum(self.tasks[v["task"]]["stake"] for v in self.commitments.values())
        credited = sum(self.tree.pendingWithdrawals(accounts[i]) for i in ACTORS)
        assert self.tree.balance() == open_pools + escrow + credited

    def invariant_no_task_pays_more_than_its_pool(self):
        for tid, paid in self.paid_out.items():
            t = self.tree.getTask(tid).dict()
            assert paid == t["bounty"] + t["forfeited"]

    def invariant_parents_are_in_the_same_task(self):
        for nid, v in self.nodes.items():
            n = self.tree.getNode(nid).dict()
            assert n["taskId"] == v["task"]
            if n["parentId"]:
                parent = self.tree.getNode(n["parentId"]).dict()
                assert parent["taskId"] == n["taskId"] and parent["depth"] + 1 == n["depth"]

    def invariant_node_status_matches_the_model(self):
        codes = {"pending": 0, "scored": 1, "rejected": 2, "reclaimed": 3}
        for nid, v in self.nodes.items():
            assert self.tree.getNode(nid).dict()["status"] == codes[v["status"]]

    def invariant_finalize_cost_is_bounded_by_depth(self):
        for gas, depth in self.finalize_gas:
            assert gas <= 90_000 + 60_000 * depth


    # ────────────────────────────── driver ───────────────────────────────
    def run(self, rng: random.Random, steps: int, log: list):
        rules = [getattr(self, n) for n in dir(self) if n.startswith("rule_")]
        invariants = [getattr(self, n) for n in dir(self) if n.startswith("invariant_")]
        self.setup()
        for _ in range(steps):
            rule = rng.choice(rules)
            args = {p: DRAW[p](rng) for p in inspect.signature(rule).parameters}
            log.append(f"{rule.__name__}({args})")
            rule(**args)
            for check in invariants:
                check()


def test_invariants_hold_under_random_calls(tree, oracle):
    machine = MarketMachine(tree, oracle)
    seeds = [int(os.environ["BOUNTYTREE_STATEFUL_SEED"])] if "BOUNTYTREE_STATEFUL_SEED" in os.environ \
        else range(SEQUENCES)
    chain.snapshot()
    calls = 0
    for seed in seeds:
        chain.revert()
        log = []
        try:
            machine.run(random.Random(seed), STEPS, log)
        except Exception as exc:
            raise AssertionError(f"seed {seed} failed after:\n  " + "\n  ".join(log)) from exc
        calls += len(log)
    # the sequences must have exercised the whole lifecycle, not just stood still
    assert calls == len(seeds) * STEPS
    assert machine.finalized_total > 0 or len(seeds) == 1
