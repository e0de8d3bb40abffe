"""recordScores, rejectNodes, finalize and reclaims; payouts against hand-computed figures."""

import brownie
from brownie import ZERO_ADDRESS, chain
from conftest import BOUNTY, DAY, STAKE, net, reverts

E = 10**18


def pending(tree, *accounts):
    return [tree.pendingWithdrawals(a) for a in accounts]


def test_scoring_returns_stakes_and_forfeits_worse_nodes(
    tree, reputation, market, sponsor, architect, alice, bob, publisher
):
    task_id = market.create_task(sponsor)
    dataset = market.publish(task_id, publisher)
    arch = market.propose(task_id, architect)
    good = market.submit(task_id, alice, arch, dataset_id=dataset)
    worse = market.submit(task_id, bob, arch, dataset_id=dataset)
    assert tree.getTask(task_id).dict()["pendingNodes"] == 3
    tx = market.score(task_id, {arch: 5000, good: 6000, worse: 4000}, {good: 900, worse: 1000})
    assert [e["nodeId"] for e in tx.events["NodeScored"]] == [arch, good, worse]
    assert [e["verifiedOps"] for e in tx.events["NodeScored"]] == [0, 900, 1000]
    assert "NodeAttributed" not in tx.events
    assert tx.events["StakeForfeited"][0]["nodeId"] == worse
    assert pending(tree, architect, alice, bob) == [STAKE, STAKE, 0]
    t = tree.getTask(task_id).dict()
    assert (t["bestNodeId"], t["bestAccuracyBps"], t["forfeited"], t["pendingNodes"]) == (
        good,
        6000,
        STAKE,
        0,
    )
    n = tree.getNode(good).dict()
    assert (n["status"], n["accuracyBps"], n["verifiedOps"], n["datasetId"]) == (
        1,
        6000,
        900,
        dataset,
    )
    assert reputation.scoreOf(bob) == -10_000 and reputation.scoreOf(alice) == 0


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
    t = tree.getTask(task_id).dict()
    assert (t["forfeited"], t["pendingNodes"]) == (2 * STAKE, 0)
    assert tree.getNode(node).dict()["status"] == 2
    assert reputation.scoreOf(architect) == -20_000 and reputation.scoreOf(alice) == -20_000
    with reverts("NodeNotPending"):  # scored or rejected at most once
        market.score(task_id, {arch: 5000})
    with reverts("NodeNotPending"):
        tree.rejectNodes(task_id, [node], [1], {"from": oracle})


def test_scoring_rejects_bad_calls(
    tree, market, sponsor, architect, alice, oracle, outsider, publisher
):
    task_id = market.create_task(sponsor)
    other = market.create_task(sponsor)
    dataset = market.publish(task_id, publisher)
    dataset2 = market.publish(task_id, outsider)
    # ids count per task: the other task's third dataset has an id this task never gave
    other_dataset = [market.publish(other, publisher) for _ in range(3)][-1]
    arch = market.propose(task_id, architect)
    other_arch = market.propose(other, architect)
    child = market.submit(task_id, alice, arch)  # trained on alice's private data
    on_data = market.submit(task_id, alice, arch, dataset_id=dataset)

    def record(*scores, sender=oracle, task=task_id):
        return tree.recordScores(task, list(scores), {"from": sender})

    with reverts("NotScorer"):
        record((arch, 5000, 0, 0), sender=outsider)
    with reverts("NotScorer"):
        tree.rejectNodes(task_id, [arch], [1], {"from": outsider})
    with reverts("BatchSize"):
        record()
    with reverts("BatchSize"):
        record(*[(arch, 5000, 0, 0)] * 65)
    with reverts("BatchSize"):
        tree.rejectNodes(task_id, [arch] * 65, [1] * 65, {"from": oracle})
    with reverts("LengthMismatch"):
        tree.rejectNodes(task_id, [arch], [], {"from": oracle})
    with reverts("NodeNotInTask"):
        record((other_arch, 5000, 0, 0))
    with reverts("NodeNotInTask"):
        record((999, 5000, 0, 0))
    with reverts("UnknownTask"):
        record((arch, 5000, 0, 0), task=42)
    with reverts("AccuracyOutOfRange"):
        record((arch, 10001, 0, 0))
    with reverts("ComputeOnPrivateData"):  # an architecture is trained on nothing
        record((arch, 5000, 1, 0))
    with reverts("BadAttribution"):  # and cannot be attributed to a dataset
        record((arch, 5000, 0, dataset))
    with reverts("ParentNotScored"):
        record((child, 5000, 0, 0))
    with reverts("InvalidReason"):
        tree.rejectNodes(task_id, [arch], [0], {"from": oracle})
    with reverts("NodeNotPending"):  # the same node twice in one batch
        record((arch, 5000, 0, 0), (arch, 5000, 0, 0))
    market.score(task_id, {arch: 5000})
    with reverts("ComputeOnPrivateData"):
        record((child, 5000, 501, 0))
    for node, to in [
        (on_data, 0),  # published → private
        (on_data, dataset2),  # published → another of the task
        (on_data, other_dataset),  # published → another task's
        (child, other_dataset),  # private → another task's dataset
        (child, 999),  # private → no dataset
        (child, 2**24 + dataset),  # private → an id that only truncates to this task's dataset
    ]:
        with reverts("BadAttribution"):
            record((node, 5000, 0, to))
    assert tree.getTask(task_id).dict()["pendingNodes"] == 2


def test_payout_along_the_winning_path(
    tree, reputation, market, sponsor, architect, alice, bob, publisher
):
    """arch 50.00% → alice on private data 70.00% (gain 2000, no compute: nobody can replay it)
    → bob on publisher's dataset 80.00% (gain 1000, ops 1000) → alice on publisher's dataset
    92.00% (gain 1200, ops 3000); a side node of alice's scores below its parent."""
    task_id = market.create_task(sponsor, target=9000, shares=(5000, 3000, 2000))
    dataset = market.publish(task_id, publisher)
    arch = market.propose(task_id, architect)
    n_alice = market.submit(task_id, alice, arch)
    n_bob = market.submit(task_id, bob, n_alice, dataset_id=dataset)
    n_alice2 = market.submit(task_id, alice, n_bob, dataset_id=dataset)
    n_side = market.submit(task_id, alice, arch, dataset_id=dataset)
    market.score(
        task_id,
        {arch: 5000, n_alice: 7000, n_bob: 8000, n_alice2: 9200, n_side: 4000},
        {n_bob: 1000, n_alice2: 3000, n_side: 1000},
    )
    before = pending(tree, sponsor, architect, alice, bob, publisher)
    assert before == [0, STAKE, 2 * STAKE, STAKE, STAKE]  # the publisher's at its reveal

    tx = tree.finalize(task_id, {"from": bob})
    assert tx.events["TaskFinalized"]["winnerNodeId"] == n_alice2
    assert tx.events["TaskFinalized"]["pool"] == BOUNTY + STAKE
    # pool = 1 ETH bounty + 0.01 ETH forfeited by the side node = 1.01 ETH
    #   data 50% = 0.505 ETH by gain 2000 : 1000 : 1200 (of 4200)
    #     alice  505e15 * 2000 / 4200 = 240476190476190476 (floor of …476.19)
    #     publisher (bob's node)  505e15 * 1000 / 4200 = 120238095238095238 (…238.09)
    #     publisher (alice's 2nd) 505e15 * 1200 / 4200 = 144285714285714285 (…285.71)
    #   compute 30% = 0.303 ETH by the raises too, each raise's part among the replayed training
    #   on its path by ops: alice's first raise has none (its 2000/4200 is refunded), bob's 1000
    #   is bob's, alice's second 1200 splits 3000 : 1000 between her node and bob's
    #     bob 0.303 * 1300 / 4200 = 93785714285714285, alice 0.303 * 900 / 4200 = 64928571428571428
    #   expertise 20% = 0.202 ETH → architect; the rest → sponsor
    #   each path credit less its 1% levy, the levies burned
    after = pending(tree, sponsor, architect, alice, bob, publisher)
    gained = [a - b for a, b in zip(after, before, strict=False)]
    assert gained == [
        144285714285714288,
        net(202000000000000000),
        net(240476190476190476) + net(64928571428571428),
        net(93785714285714285),
        net(120238095238095238) + net(144285714285714285),
    ]
    assert sum(gained) + tree.pendingWithdrawals(ZERO_ADDRESS) == BOUNTY + STAKE
    kinds = [(e["account"], e["kind"]) for e in tx.events["PayoutCredited"]]
    # winner first: alice's 2nd node (data to the dataset's publisher, compute to alice), bob's,
    # then alice's first (data only), the architect, the sponsor
    assert kinds == [
        (publisher, 0),
        (alice, 1),
        (publisher, 0),
        (bob, 1),
        (alice, 0),
        (architect, 2),
        (ZERO_ADDRESS, 6),
        (sponsor, 3),
    ]
    # a point per microether of an account's levies in the task, however many payouts; the
    # sponsor's refund pays no levy and earns nothing
    assert reputation.scoreOf(alice) == 3054 - 10_000  # levies 0.003054… ETH - worse side node
    assert reputation.scoreOf(bob) == 937
    assert reputation.scoreOf(publisher) == 2645
    assert reputation.scoreOf(architect) == 2020
    assert reputation.scoreOf(sponsor) == 0
    t = tree.getTask(task_id).dict()
    assert t["finalized"] and t["winnerNodeId"] == n_alice2
    with reverts("TaskIsFinalized"):
        tree.finalize(task_id, {"from": bob})
    with reverts("TaskIsFinalized"):
        market.score(task_id, {n_side: 1})


def test_gain_is_over_the_best_accuracy_on_the_path(
    tree, reputation, market, sponsor, architect, alice, bob, publisher
):
    """arch 50%, A 70%, B (child of A) 40%, C (child of B) 75%: gains A 2000, B 0, C 500.
    C only wins back what A had, plus 500; B's dip earns no data share, only its compute."""
    task_id = market.create_task(sponsor, target=7500, shares=(5000, 3000, 2000))
    dataset = market.publish(task_id, publisher)
    arch = market.propose(task_id, architect)
    a = market.submit(task_id, alice, arch)
    b = market.submit(task_id, bob, a, dataset_id=dataset)
    c = market.submit(task_id, alice, b)
    market.score(task_id, {arch: 5000, a: 7000, b: 4000, c: 7500}, {b: 1000})
    before = pending(tree, sponsor, architect, alice, bob, publisher)
    assert before == [0, STAKE, 2 * STAKE, 0, STAKE]  # bob's stake is forfeited: B scored below A
    tx = tree.finalize(task_id, {"from": alice})
    assert tx.events["TaskFinalized"]["winnerNodeId"] == c
    # pool 1.01 ETH: data 0.505 ETH by 2000 : 0 : 500 → A 0.404 ETH, C 0.101 ETH (publisher nothing,
    # B gained nothing); compute 0.303 ETH by the same raises: C's 500 grew from B's replayed
    # training (0.0606 ETH to bob), A's 2000 from none (refunded); expertise 0.202 ETH
    gained = [
        x - y
        for x, y in zip(
            pending(tree, sponsor, architect, alice, bob, publisher), before, strict=False
        )
    ]
    assert gained == [
        2424 * 10**14,
        net(202 * 10**15),
        net(404 * 10**15) + net(101 * 10**15),
        net(606 * 10**14),
        0,
    ]
    assert [(e["account"], e["kind"], e["amount"]) for e in tx.events["PayoutCredited"]] == [
        (alice, 0, net(101 * 10**15)),
        (bob, 1, net(606 * 10**14)),
        (alice, 0, net(404 * 10**15)),
        (architect, 2, net(202 * 10**15)),
        (ZERO_ADDRESS, 6, 7676 * 10**12),  # the levies
        (sponsor, 3, 2424 * 10**14),
    ]
    assert reputation.scoreOf(bob) == -10_000 + 606 and reputation.scoreOf(publisher) == 0


def test_zero_gain_node_is_paid_compute_only(
    tree, market, sponsor, architect, alice, bob, publisher
):
    """alice trains on the published dataset without gaining (compute only, nothing to the
    publisher); bob trains on private data (data only)."""
    task_id = market.create_task(sponsor, shares=(6000, 4000, 0), stake=0)
    dataset = market.publish(task_id, publisher)
    arch = market.propose(task_id, architect, value=0)
    n_alice = market.submit(task_id, alice, arch, dataset_id=dataset, value=0)
    n_bob = market.submit(task_id, bob, n_alice, value=0)
    market.score(task_id, {arch: 6000, n_alice: 6000, n_bob: 9500}, {n_alice: 1000})
    tree.finalize(task_id, {"from": sponsor})
    # data 0.6 ETH all to bob (alice gained nothing); compute 0.4 ETH all to alice; no expertise
    assert pending(tree, sponsor, architect, alice, bob, publisher) == [
        0,
        0,
        net(4 * 10**17),
        net(6 * 10**17),
        0,
    ]


def test_oracle_attributes_private_training_to_a_published_dataset(
    tree, market, sponsor, architect, alice, publisher
):
    """alice declared her own data; the oracle's replay reproduced her weights from the published
    dataset: the node is re-attributed, its data share goes to the publisher, compute to alice."""
    task_id = market.create_task(sponsor, shares=(5000, 3000, 2000), stake=0)
    dataset = market.publish(task_id, publisher)
    arch = market.propose(task_id, architect, value=0)
    node = market.submit(task_id, alice, arch, value=0)
    assert tree.getNode(node).dict()["datasetId"] == 0
    tx = market.score(task_id, {arch: 5000, node: 9000}, {node: 700}, {node: dataset})
    ev = tx.events["NodeAttributed"]
    assert (ev["taskId"], ev["nodeId"], ev["datasetId"]) == (task_id, node, dataset)
    n = tree.getNode(node).dict()
    assert (n["datasetId"], n["verifiedOps"], n["author"]) == (dataset, 700, alice)
    tree.finalize(task_id, {"from": alice})
    assert pending(tree, sponsor, architect, alice, publisher) == [
        0,
        net(2 * 10**17),
        net(3 * 10**17),
        net(5 * 10**17),
    ]


def test_pending_nodes_hold_off_everyone_but_the_oracle(
    tree, market, sponsor, architect, alice, oracle
):
    """Target reached while alice's node awaits its score: only the oracle may end the task before
    every node is settled (or the grace period after the deadline is over)."""
    task_id = market.create_task(sponsor, target=9000)
    arch = market.propose(task_id, architect)
    node = market.submit(task_id, alice, arch)
    market.score(task_id, {arch: 9500})
    t = tree.getTask(task_id).dict()
    assert (t["bestNodeId"], t["pendingNodes"]) == (arch, 1)
    open_to_all = t["deadline"] + tree.FINALIZE_GRACE()
    for account in (sponsor, architect, alice):
        with brownie.reverts(f"WorkPending: {task_id}, 1, {open_to_all}"):
            tree.finalize(task_id, {"from": account})
    market.score(task_id, {node: 9600})  # settled: anyone may finalize now
    assert tree.getTask(task_id).dict()["pendingNodes"] == 0
    tx = tree.finalize(task_id, {"from": sponsor})
    assert tx.events["TaskFinalized"]["winnerNodeId"] == node

    # the oracle itself need not wait for a pending node
    task2 = market.create_task(sponsor, target=9000)
    arch2 = market.propose(task2, architect)
    node2 = market.submit(task2, alice, arch2)
    market.score(task2, {arch2: 9500})
    with reverts("WorkPending"):
        tree.finalize(task2, {"from": alice})
    with reverts("WorkPending"):  # finalize is the same for everyone
        tree.finalize(task2, {"from": oracle})
    with reverts("NotScorer"):  # leaving nodes is the scorer's alone
        tree.finalizeLeaving(task2, 1, {"from": alice})
    with reverts("PendingChanged"):  # and only the nodes it saw
        tree.finalizeLeaving(task2, 0, {"from": oracle})
    tree.finalizeLeaving(task2, 1, {"from": oracle})
    assert tree.getNode(node2).dict()["status"] == 0  # still pending: its stake is reclaimable
    tree.reclaimStake(node2, {"from": alice})
    # task 1: node's stake and the whole data share (0.5 ETH, her 100 bps are the only gain);
    # task 2: node2's stake, reclaimed
    assert pending(tree, alice) == [STAKE + net(5 * 10**17) + STAKE]


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
    assert pending(tree, sponsor, architect) == [8 * 10**17, STAKE + net(2 * 10**17)]


def test_no_node_scored_refunds_the_sponsor_and_stakes_are_reclaimable(
    tree, market, sponsor, architect, alice, bob
):
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
    with reverts("WorkPending"):  # two nodes never scored: the oracle has a day's grace
        tree.finalize(task_id, {"from": alice})
    chain.sleep(DAY)
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
    chain.sleep(2 * DAY + 1)
    chain.mine()
    tree.finalize(task_id, {"from": sponsor})
    with reverts("NothingToReclaim"):
        tree.reclaimStake(arch, {"from": architect})
