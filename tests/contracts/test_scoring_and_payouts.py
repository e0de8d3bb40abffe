"""recordScores, rejectNodes, finalize and reclaims; payouts against hand-computed figures."""

from brownie import chain

from conftest import BOUNTY, DAY, STAKE, reverts

E = 10**18


def pending(tree, *accounts):
    return [tree.pendingWithdrawals(a) for a in accounts]


def test_scoring_returns_stakes_and_forfeits_worse_nodes(tree, reputation, market, sponsor, architect,
                                                         alice, bob, oracle):
    task_id = market.create_task(sponsor)
    arch = market.propose(task_id, architect)
    good = market.submit(task_id, alice, arch, ops=1000)
    worse = market.submit(task_id, bob, arch, ops=1000)
    tx = market.score(task_id, {arch: 5000, good: 6000, worse: 4000}, {good: 900, worse: 1000})
    assert [e["nodeId"] for e in tx.events["NodeScored"]] == [arch, good, worse]
    assert tx.events["StakeForfeited"][0]["nodeId"] == worse
    assert pending(tree, architect, alice, bob) == [STAKE, STAKE, 0]
    t = tree.getTask(task_id).dict()
    assert (t["bestNodeId"], t["bestAccuracyBps"], t["forfeited"]) == (good, 6000, STAKE)
    n = tree.getNode(good).dict()
    assert (n["status"], n["accuracyBps"], n["verifiedOps"]) == (1, 6000, 900)
    assert reputation.scoreOf(bob) == -10 and reputation.scoreOf(alice) == 0


def test_best_node_ties_go_to_lowest_id(tree, market, sponsor, architect, alice):
    task_id = market.create_task(sponsor)
    a1 = market.propose(task_id, architect)
    a2 = market.propose(task_id, architect)
    market.score(task_id, {a2: 7000})
    market.score(task_id, {a1: 7000})
    assert tree.getTask(task_id).dict()["bestNodeId"] == a1


def test_reject_nodes(tree, reputation, market, sponsor, architect, alice, oracle):
    task_id = market.create_task(sponsor)
    arch = market.propose(task_id, architect)
    node = market.submit(task_id, alice, arch)
    tx = tree.rejectNodes(task_id, [arch, node], [1, 3], {"from": oracle})
    assert [(e["nodeId"], e["reason"]) for e in tx.events["NodeRejected"]] == [(arch, 1), (node, 3)]
    assert tree.getTask(task_id).dict()["forfeited"] == 2 * STAKE
    assert tree.getNode(node).dict()["status"] == 2
    assert reputation.scoreOf(architect) == -20 and reputation.scoreOf(alice) == -20
    with reverts("NodeNotPending"):  # scored or rejected at most once
        market.score(task_id, {arch: 5000})
    with reverts("NodeNotPending"):
        tree.rejectNodes(task_id, [node], [1], {"from": oracle})


def test_scoring_rejects_bad_calls(tree, market, sponsor, architect, alice, oracle, outsider):
    task_id = market.create_task(sponsor)
    other = market.create_task(sponsor)
    arch = market.propose(task_id, architect)
    other_arch = market.propose(other, architect)
    child = market.submit(task_id, alice, arch, ops=500)
    with reverts("AccessControlUnauthorizedAccount"):
        tree.recordScores(task_id, [arch], [5000], [0], {"from": outsider})
    with reverts("AccessControlUnauthorizedAccount"):
        tree.rejectNodes(task_id, [arch], [1], {"from": outsider})
    with reverts("BatchSize"):
        tree.recordScores(task_id, [], [], [], {"from": oracle})
    with reverts("BatchSize"):
        tree.rejectNodes(task_id, [arch] * 65, [1] * 65, {"from": oracle})
    with reverts("LengthMismatch"):
        tree.recordScores(task_id, [arch], [5000, 1], [0], {"from": oracle})
    with reverts("LengthMismatch"):
        tree.rejectNodes(task_id, [arch], [], {"from": oracle})
    with reverts("NodeNotInTask"):
        tree.recordScores(task_id, [other_arch], [5000], [0], {"from": oracle})
    with reverts("NodeNotInTask"):
        tree.recordScores(task_id, [999], [5000], [0], {"from": oracle})
    with reverts("UnknownTask"):
        tree.recordScores(42, [arch], [5000], [0], {"from": oracle})
    with reverts("AccuracyOutOfRange"):
        tree.recordScores(task_id, [arch], [10001], [0], {"from": oracle})
    with reverts("OpsAboveClaim"):
        tree.recordScores(task_id, [arch], [5000], [1], {"from": oracle})
    with reverts("ParentNotScored"):
        tree.recordScores(task_id, [child], [5000], [0], {"from": oracle})
    with reverts("InvalidReason"):
        tree.rejectNodes(task_id, [arch], [0], {"from": oracle})
    market.score(task_id, {arch: 5000})
    with reverts("OpsAboveClaim"):
        tree.recordScores(task_id, [child], [5000], [501], {"from": oracle})


def test_payout_along_the_winning_path(tree, reputation, market, sponsor, architect, alice, bob,
                                       publisher):
    """arch 50.00% → alice (private data, gain 2000, ops 1000) → bob on publisher's dataset
    (gain 2200, ops 3000) reaching 92.00%; a side node of alice's scores below its parent."""
    task_id = market.create_task(sponsor, target=9000, shares=(5000, 3000, 2000))
    dataset = market.publish(task_id, publisher)
    arch = market.propose(task_id, architect)
    n_alice = market.submit(task_id, alice, arch, ops=1000)
    n_bob = market.submit(task_id, bob, n_alice, ops=5000, dataset_id=dataset)
    n_side = market.submit(task_id, alice, arch, ops=1000)
    market.score(task_id, {arch: 5000, n_alice: 7000, n_bob: 9200, n_side: 4000},
                 {n_alice: 1000, n_bob: 3000, n_side: 1000})
    before = pending(tree, sponsor, architect, alice, bob, publisher)
    assert before == [0, STAKE, STAKE, STAKE, 0]

    tx = tree.finalize(task_id, {"from": bob})
    assert tx.events["TaskFinalized"]["winnerNodeId"] == n_bob
    # pool = 1 ETH bounty + 0.01 ETH forfeited by the side node = 1.01 ETH
    #   data 50% = 0.505 ETH by gain 2000 : 2200 → alice 240476190476190476, publisher 264523809523809523
    #   compute 30% = 0.303 ETH by ops 1000 : 3000 → alice 0.07575 ETH, bob 0.22725 ETH
    #   expertise 20% = 0.202 ETH → architect;  rounding remainder 1 wei → sponsor
    after = pending(tree, sponsor, architect, alice, bob, publisher)
    gained = [a - b for a, b in zip(after, before)]
    assert gained == [
        1,
        202000000000000000,
        240476190476190476 + 75750000000000000,
        227250000000000000,
        264523809523809523,
    ]
    assert sum(gained) == BOUNTY + STAKE
    kinds = [(e["account"], e["kind"]) for e in tx.events["PayoutCredited"]]
    # winner first: bob's node (data to the dataset's publisher, compute to bob), then alice's
    assert kinds == [(publisher, 0), (bob, 1), (alice, 0), (alice, 1), (architect, 2), (sponsor, 3)]
    assert reputation.scoreOf(alice) == 10 + 10 - 10  # data + compute - worse side node
    assert reputation.scoreOf(bob) == 10
    assert reputation.scoreOf(publisher) == 10
    assert reputation.scoreOf(architect) == 10
    t = tree.getTask(task_id).dict()
    assert t["finalized"] and t["winnerNodeId"] == n_bob
    with reverts("TaskIsFinalized"):
        tree.finalize(task_id, {"from": bob})
    with reverts("TaskIsFinalized"):
        market.score(task_id, {n_side: 1})


def test_zero_gain_node_is_paid_compute_only(tree, market, sponsor, architect, alice, bob):
    task_id = market.create_task(sponsor, shares=(6000, 4000, 0), stake=0)
    arch = market.propose(task_id, architect, value=0)
    n_alice = market.submit(task_id, alice, arch, ops=1000, value=0)
    n_bob = market.submit(task_id, bob, n_alice, ops=1000, value=0)
    market.score(task_id, {arch: 6000, n_alice: 6000, n_bob: 9500}, {n_alice: 1000, n_bob: 1000})
    tree.finalize(task_id, {"from": sponsor})
    # data 0.6 ETH all to bob (alice gained nothing); compute 0.4 ETH split evenly; no expertise
    assert pending(tree, sponsor, architect, alice, bob) == [0, 0, 2 * 10**17, 8 * 10**17]


def test_architecture_alone_wins_after_deadline(tree, market, sponsor, architect):
    """No accuracy gained by training: data and compute shares go back to the sponsor."""
    task_id = market.create_task(sponsor, target=9900, shares=(5000, 3000, 2000))
    arch = market.propose(task_id, architect)
    market.score(task_id, {arch: 3000})
    with reverts("NotFinalizable"):
        tree.finalize(task_id, {"from": sponsor})
    chain.sleep(DAY + 1)
    chain.mine()
    tree.finalize(task_id, {"from": sponsor})
    assert pending(tree, sponsor, architect) == [8 * 10**17, STAKE + 2 * 10**17]


def test_no_node_scored_refunds_the_sponsor_and_stakes_are_reclaimable(tree, market, sponsor, architect,
                                                                       alice, bob):
    task_id = market.create_task(sponsor)
    arch = market.propose(task_id, architect)
    node = market.submit(task_id, alice, arch)
    commitment, _, _ = market.commit(task_id, bob, arch, b"\x09" * 32)
    with reverts("TaskNotFinalized"):
        tree.reclaimStake(arch, {"from": architect})
    with reverts("TaskNotFinalized"):
        tree.reclaimCommitment(commitment, {"from": bob})
    chain.sleep(DAY + 1)
    chain.mine()
    tx = tree.finalize(task_id, {"from": alice})
    assert tx.events["TaskFinalized"]["winnerNodeId"] == 0
    assert pending(tree, sponsor) == [BOUNTY]
    with reverts("NotAuthor"):
        tree.reclaimStake(arch, {"from": alice})
    tree.reclaimStake(arch, {"from": architect})
    tree.reclaimStake(node, {"from": alice})
    with reverts("NodeNotPending"):
        tree.reclaimStake(node, {"from": alice})
    with reverts("NotAuthor"):
        tree.reclaimCommitment(commitment, {"from": alice})
    tree.reclaimCommitment(commitment, {"from": bob})
    with reverts("NotAuthor"):
        tree.reclaimCommitment(commitment, {"from": bob})
    assert pending(tree, architect, alice, bob) == [STAKE, STAKE, STAKE]
    assert tree.balance() == BOUNTY + 3 * STAKE


def test_finalize_rejects(tree, market, sponsor):
    with reverts("UnknownTask"):
        tree.finalize(5, {"from": sponsor})
    task_id = market.create_task(sponsor)
    with reverts("NotFinalizable"):
        tree.finalize(task_id, {"from": sponsor})


def test_reclaim_with_zero_stake(tree, market, sponsor, architect):
    task_id = market.create_task(sponsor, stake=0)
    arch = market.propose(task_id, architect, value=0)
    chain.sleep(DAY + 1)
    chain.mine()
    tree.finalize(task_id, {"from": sponsor})
    with reverts("NothingToReclaim"):
        tree.reclaimStake(arch, {"from": architect})
