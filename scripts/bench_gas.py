"""make bench-gas: gas per operation on a fresh Ganache, beside their goals.

Measured on typical calls (not a task's or an account's very first write, which pays for
creating storage once): the second task, an architecture, a commit + reveal, a batch of 12
scores, finalize over paths of depth 1..MAX_DEPTH in trees of different sizes, a withdraw.
Writes bench/gas.md as well as printing the table.
"""

import os
from pathlib import Path

from brownie import BountyTree, Reputation, accounts, chain, web3

GOALS = {
    "createTask": 150_000,
    "proposeArchitecture": 120_000,
    "commit + reveal": 150_000,
    "recordScores per node (batch of 12)": 40_000,
    "finalize per path level": 45_000,
    "withdraw": 40_000,
}
STAKE = 10**15


def _commitment(author, task, parent, weights, dataset, salt):
    return web3.keccak(
        web3.codec.encode(
            ["address", "uint256", "uint256", "bytes32", "uint256", "bytes32"],
            [str(author), task, parent, weights, dataset, salt],
        )
    )


def submit(tree, task, author, parent, dataset):
    weights, salt = os.urandom(32), os.urandom(32)
    c = tree.commitSubmission(
        task,
        _commitment(author, task, parent, weights, dataset, salt),
        {"from": author, "value": STAKE},
    )
    r = tree.revealSubmission(task, parent, weights, dataset, salt, {"from": author})
    return r.return_value, c.gas_used + r.gas_used


def score(tree, task, nodes, accs, ops, oracle):
    """recordScores with one Score record per node, each keeping its declared dataset."""
    return tree.recordScores(
        task,
        [
            (n, a, o, tree.getNode(n).dict()["datasetId"])
            for n, a, o in zip(nodes, accs, ops, strict=False)
        ],
        {"from": oracle},
    )


def new_task(tree, sponsor, target=10000):
    """A task and a dataset published to it (compute is paid only for published data)."""
    tx = tree.createTask(
        os.urandom(32),
        os.urandom(32),
        target,
        chain.time() + 10**6,
        5000,
        3000,
        2000,
        STAKE,
        {"from": sponsor, "value": 10**18},
    )
    dataset = tree.publishDataset(tx.return_value, os.urandom(32), {"from": sponsor}).return_value
    return tx, dataset


def main():
    admin, sponsor, architect = accounts[0], accounts[1], accounts[2]
    trainers = accounts[3:9]
    rep = Reputation.deploy({"from": admin})
    tree = BountyTree.deploy(rep, admin, admin, {"from": admin})
    rep.bindWriter(tree, {"from": admin})
    rows = {}

    new_task(tree, sponsor)  # the first task pays for the counters' slot
    tx, data = new_task(tree, sponsor)
    task = tx.return_value
    rows["createTask"] = tx.gas_used
    tree.proposeArchitecture(task, os.urandom(32), {"from": architect, "value": STAKE})
    tx = tree.proposeArchitecture(task, os.urandom(32), {"from": architect, "value": STAKE})
    arch = tx.return_value
    rows["proposeArchitecture"] = tx.gas_used
    score(tree, task, [arch - 1, arch], [1000, 1000], [0, 0], admin)

    # 12 trained nodes from 6 trainers; each trainer has been paid a stake before (typical)
    warm = [submit(tree, task, t, arch, data)[0] for t in trainers]
    score(tree, task, warm, [1500] * len(warm), [0] * len(warm), admin)
    ids, gas = zip(
        *[submit(tree, task, trainers[i % len(trainers)], arch, data) for i in range(12)],
        strict=False,
    )
    rows["commit + reveal"] = sum(gas) // len(gas)
    tx = score(tree, task, list(ids), [2000 + i for i in range(12)], [10**9] * 12, admin)
    rows["recordScores per node (batch of 12)"] = tx.gas_used // 12
    rows["recordScores batch of 12 (total)"] = tx.gas_used

    # finalize: paths of increasing depth, in a small tree and in a tree with 100 extra nodes
    finalize_rows = []
    for extra in (0, 100):
        for depth in (1, 2, 4, 8, 16, int(tree.MAX_DEPTH())):
            tx, data = new_task(tree, sponsor, target=1000)
            t = tx.return_value
            parent = tree.proposeArchitecture(
                t, os.urandom(32), {"from": architect, "value": STAKE}
            ).return_value
            score(tree, t, [parent], [1000], [0], admin)
            for i in range(extra):  # side nodes off the architecture, scored
                n, _ = submit(tree, t, trainers[i % len(trainers)], parent, data)
                score(tree, t, [n], [900], [10**6], admin)
            for level in range(depth - 1):
                n, _ = submit(tree, t, trainers[level % len(trainers)], parent, data)
                score(tree, t, [n], [1000 + 100 * (level + 1)], [10**9], admin)
                parent = n
            tx = tree.finalize(t, {"from": sponsor})
            finalize_rows.append((extra + depth, depth, tx.gas_used))
    per_level = max((g - 60_000) / d for _, d, g in finalize_rows if d > 1)
    rows["finalize per path level"] = int(per_level)

    tx = tree.withdraw({"from": trainers[0]})
    rows["withdraw"] = tx.gas_used

    lines = ["| operation | gas | goal | within goal |", "|---|---:|---:|---|"]
    for name, gas in rows.items():
        goal = GOALS.get(name)
        lines.append(
            f"| {name} | {gas:,} | {f'{goal:,}' if goal else '—'} | "
            f"{'' if goal is None else ('yes' if gas <= goal else 'NO')} |"
        )
    lines += [
        "",
        "finalize by path depth and tree size (per level = (gas − 60k base) / depth):",
        "",
        "| nodes in tree | path depth | finalize gas | per level |",
        "|---:|---:|---:|---:|",
    ]
    for nodes, depth, gas in finalize_rows:
        lines.append(f"| {nodes} | {depth} | {gas:,} | {int((gas - 60_000) / depth):,} |")
    table = "\n".join(lines)
    print(table)
    Path("bench").mkdir(exist_ok=True)
    Path("bench/gas.md").write_text("# Gas per operation (make bench-gas)\n\n" + table + "\n")
