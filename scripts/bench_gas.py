"""make bench-gas: gas per operation on a fresh Ganache, beside their goals.

Measured on typical calls (not a task's or an account's very first write, which pays for
creating storage once): the second task, an architecture's commit + reveal, a dataset's commit +
reveal, a trained node's commit + reveal, a batch of 12
scores, finalize over paths of depth 1..MAX_DEPTH in trees of different sizes, a withdraw, a
finalize that keeps a new best off the winning path for its claim and that claim. Then
the optional terms, each beside the plain call it adds to: a task with an audit bond, a commit +
reveal paying a scoring fee, commits + reveals in a task with a cap per account (an account's
first, which creates its counter, and a later one), and the calls after finalize: publishing the
validation file (the bond returned), forfeiting (burning) a bond over a path of 4, a test score.
Last, a
private task's custody (PrivateCustody): register, accept, a commitment to a share, the two
attestations that record a score, and the two hand-overs (the second settles).
Writes bench/gas.md as well as printing the table.
"""

import hashlib
import os
from pathlib import Path

from brownie import BountyTree, Payouts, PrivateCustody, Reputation, accounts, chain, web3

GOALS = {
    "createTask": 150_000,
    "architecture: commit + reveal": 150_000,
    "commit + reveal": 150_000,
    "recordScores per node (batch of 12)": 40_000,
    "finalize per path level": 45_000,
    "withdraw": 40_000,
    "commit + reveal, scoring fee": 150_000,
    "private task: commit + reveal (a trained node on a dataset)": 150_000,
}
STAKE = 10**15


def _commitment(author, task, parent, weights, dataset, salt):
    return web3.keccak(
        web3.codec.encode(
            ["address", "uint256", "uint256", "bytes32", "uint256", "bytes32"],
            [str(author), task, parent, weights, dataset, salt],
        )
    )


def submit(tree, task, author, parent, dataset, fee=0):
    weights, salt = os.urandom(32), os.urandom(32)
    c = tree.commitSubmission(
        task,
        _commitment(author, task, parent, weights, dataset, salt),
        {"from": author, "value": STAKE + fee},
    )
    r = tree.revealSubmission(task, parent, weights, dataset, salt, {"from": author})
    return r.return_value, c.gas_used + r.gas_used


def propose(tree, task, author, fee=0):
    """An architecture: a node with parent 0, committed and revealed like any other."""
    return submit(tree, task, author, 0, 0, fee)


def publish(tree, task, author, fee=0):
    """A dataset, committed and revealed: (its id in the task, gas of both)."""
    data, salt = os.urandom(32), os.urandom(32)
    hidden = web3.keccak(
        web3.codec.encode(
            ["address", "uint256", "bytes32", "bytes32"], [str(author), task, data, salt]
        )
    )
    c = tree.commitSubmission(task, hidden, {"from": author, "value": STAKE + fee})
    r = tree.revealDataset(task, data, salt, {"from": author})
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


def new_task(tree, sponsor, target=10000, fee=0, cap=0, bond=0, commitment=None, private=False):
    """A task and a dataset published to it (compute is paid only for published data); a
    private task's dataset is published by `custody_rows`, once its custody takes work."""
    tx = tree.createTask(
        os.urandom(32),
        commitment or os.urandom(32),
        target,
        chain.time() + 10**6,
        5000,
        3000,
        2000,
        STAKE,
        fee,
        cap,
        bond,
        private,
        {"from": sponsor, "value": 10**18 + bond},
    )
    if private:
        return tx, None
    dataset, _ = publish(tree, tx.return_value, sponsor, fee)
    return tx, dataset


def custody_rows(tree, admin, sponsor, architect, trainers):
    """A private task from registration to the second hand-over, typical calls (the second
    task's, so that storage the first creates is not counted)."""
    custody = PrivateCustody.deploy(tree, {"from": admin})
    tree.grantRole(tree.CUSTODY_ROLE(), custody, {"from": admin})
    parties = accounts[9], accounts[10], accounts[11]
    for party in parties:
        custody.approve(party, True, {"from": admin})
    keys = [os.urandom(32) for _ in parties]  # every party's key: its links prove it
    out = {}
    for _ in range(2):
        tx, _ = new_task(tree, sponsor, target=1000, private=True)
        task = tx.return_value
        reg = custody.register(
            task, *parties, os.urandom(32), 10**16, 86400, {"from": sponsor, "value": 3 * 10**16}
        )
        accepted = [
            custody.accept(task, custody.termsOf(task), keys[i], {"from": p, "value": 10**16})
            for i, p in enumerate(parties)
        ]
        shared = custody.shareValidation(task, os.urandom(32), os.urandom(32), {"from": sponsor})
        data, _ = publish(tree, task, sponsor, 0)
        arch, _ = propose(tree, task, architect)
        node, private_node_gas = submit(tree, task, trainers[0], arch, data)
        commits, attests = [], []
        for n in (arch, node):
            for i in (0, 1):
                commits.append(custody.commitShare(n, os.urandom(32), {"from": parties[i]}))
            for i in (0, 1):
                attests.append(
                    custody.attest(n, 0, 1000 if n == arch else 2000, {"from": parties[i]})
                )
        tree.finalize(task, {"from": sponsor})
        handed = [custody.handOver(task, os.urandom(32), {"from": parties[i]}) for i in (0, 1)]
    out["custody: register"] = reg.gas_used
    out["custody: accept (a custodian)"] = accepted[0].gas_used
    out["custody: shareValidation (the task takes work from then on)"] = shared.gas_used
    out["private task: commit + reveal (a trained node on a dataset)"] = private_node_gas
    out["custody: commitShare"] = commits[-1].gas_used
    out["custody: attest, first"] = attests[-2].gas_used
    out["custody: attest, second (records the score)"] = attests[-1].gas_used
    out["custody: handOver, first"] = handed[0].gas_used
    out["custody: handOver, second (settles)"] = handed[1].gas_used
    return out


def main():
    admin, sponsor, architect = accounts[0], accounts[1], accounts[2]
    trainers = accounts[3:9]
    rep = Reputation.deploy({"from": admin})
    Payouts.deploy({"from": admin})  # linked into BountyTree by brownie
    tree = BountyTree.deploy(rep, admin, admin, {"from": admin})
    rep.bindWriter(tree, {"from": admin})
    rows = {}

    new_task(tree, sponsor)  # the first task pays for the counters' slot
    tx, data = new_task(tree, sponsor)
    task = tx.return_value
    rows["createTask"] = tx.gas_used
    propose(tree, task, architect)
    arch, rows["architecture: commit + reveal"] = propose(tree, task, architect)
    _, rows["dataset: commit + reveal (the stake credited back)"] = publish(tree, task, trainers[0])
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
            parent, _ = propose(tree, t, architect)
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

    # a claim: a new best with replayed compute, left off the winning path by a better sibling
    tx, data = new_task(tree, sponsor)
    t = tx.return_value
    arch, _ = propose(tree, t, architect)
    earlier, _ = submit(tree, t, trainers[1], arch, data)
    later, _ = submit(tree, t, trainers[2], arch, data)
    score(tree, t, [arch, earlier, later], [1000, 5000, 6000], [0, 10**9, 10**9], admin)
    chain.sleep(10**6 + 3600)
    chain.mine()
    tx = tree.finalize(t, {"from": sponsor})
    rows["finalize, a new best off the path kept for its claim"] = tx.gas_used
    tx = tree.claim(earlier, {"from": trainers[0]})
    rows["claim: a new best off the path (raise and compute)"] = tx.gas_used

    # the optional terms
    file_cid, salt = os.urandom(32), os.urandom(32)
    opening = hashlib.sha256(salt + file_cid).digest()
    tx, data = new_task(tree, sponsor, target=1000, bond=10**17, commitment=opening)
    audited = tx.return_value
    rows["createTask with an audit bond"] = tx.gas_used
    tx, data_fee = new_task(tree, sponsor, fee=10**14)
    fee_task = tx.return_value
    arch, _ = propose(tree, fee_task, architect, fee=10**14)
    score(tree, fee_task, [arch], [1000], [0], admin)
    gas = [submit(tree, fee_task, trainers[i], arch, data_fee, fee=10**14)[1] for i in range(6)]
    rows["commit + reveal, scoring fee"] = sum(gas) // len(gas)
    tx, data_cap = new_task(tree, sponsor, cap=2)
    capped = tx.return_value
    arch, _ = propose(tree, capped, architect)
    score(tree, capped, [arch], [1000], [0], admin)
    first = [submit(tree, capped, trainers[i], arch, data_cap)[1] for i in range(6)]
    later = [submit(tree, capped, trainers[i], arch, data_cap)[1] for i in range(6)]
    rows["commit + reveal, capped task: an account's first"] = sum(first) // len(first)
    rows["commit + reveal, capped task: a later one"] = sum(later) // len(later)

    parent, _ = propose(tree, audited, architect)
    score(tree, audited, [parent], [1000], [0], admin)
    for level in range(3):
        n, _ = submit(tree, audited, trainers[level], parent, data)
        score(tree, audited, [n], [1100 + 100 * level], [10**9], admin)
        parent = n
    tree.finalize(audited, {"from": sponsor})
    tx = tree.recordTestScore(audited, 1200, {"from": admin})
    rows["recordTestScore"] = tx.gas_used
    chain.sleep(7 * 24 * 3600 + 60)
    chain.mine()
    tx = tree.forfeitBond(audited, {"from": trainers[0]})
    rows["forfeitBond, path of 4"] = tx.gas_used
    tx = tree.publishValidation(audited, file_cid, salt, {"from": sponsor})  # late: no bond back
    rows["publishValidation (late: no bond back)"] = tx.gas_used
    tx, _ = new_task(tree, sponsor, target=1000, bond=10**17, commitment=opening)
    t = tx.return_value
    arch, _ = propose(tree, t, architect)
    score(tree, t, [arch], [1000], [0], admin)
    tree.finalize(t, {"from": sponsor})
    tx = tree.publishValidation(t, file_cid, salt, {"from": sponsor})
    rows["publishValidation (bond returned)"] = tx.gas_used

    rows.update(custody_rows(tree, admin, sponsor, architect, trainers))

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
