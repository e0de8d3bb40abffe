"""createTask; commit and reveal of architectures, trained nodes and datasets: effects and every
revert."""

import os

import pytest
from brownie import ZERO_ADDRESS, chain, web3
from conftest import (
    BOUNTY,
    DAY,
    SPEC,
    STAKE,
    VALIDATION,
    automine,
    cid,
    past_reveals,
    reverts,
)
from hexbytes import HexBytes


def test_create_task_stores_every_field(tree, market, sponsor):
    deadline = chain.time() + DAY
    tx = tree.createTask(
        SPEC,
        VALIDATION,
        8500,
        deadline,
        6000,
        2500,
        1500,
        STAKE,
        0,
        0,
        0,
        False,
        {"from": sponsor, "value": BOUNTY},
    )
    task_id = tx.return_value
    assert task_id == 1
    t = tree.getTask(task_id).dict()
    assert t["sponsor"] == sponsor
    assert t["bounty"] == BOUNTY
    assert t["specCid"] == "0x" + SPEC.hex()
    assert t["validationCommitment"] == "0x" + VALIDATION.hex()
    assert (t["targetAccuracyBps"], t["deadline"], t["submissionStake"]) == (8500, deadline, STAKE)
    assert (t["dataShareBps"], t["computeShareBps"], t["expertiseShareBps"]) == (6000, 2500, 1500)
    assert (
        not t["finalized"]
        and t["bestNodeId"] == 0
        and t["forfeited"] == 0
        and t["pendingNodes"] == 0
    )
    assert tx.events["TaskCreated"]["taskId"] == 1
    assert tx.events["TaskCreated"]["bounty"] == BOUNTY
    assert tree.balance() == BOUNTY
    assert [int(x) for x in tree.counts()] == [1, 0]
    assert t["datasets"] == 0


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"bounty": 0}, "NoBounty"),
        ({"deadline_in": -10}, "DeadlineNotInFuture"),
        ({"target": 0}, "TargetOutOfRange"),
        ({"target": 10001}, "TargetOutOfRange"),
        ({"shares": (5000, 3000, 1000)}, "SharesMustSumTo10000"),
        ({"shares": (10000, 1, 0)}, "SharesMustSumTo10000"),
        ({"spec": b"\x00" * 32}, "EmptyCid"),
        ({"validation": b"\x00" * 32}, "EmptyCommitment"),
        ({"stake": 2**96}, "AmountTooLarge"),
    ],
)
def test_create_task_rejects(market, sponsor, kwargs, error):
    with reverts(error):
        market.create_task(sponsor, **kwargs)


def test_an_architecture_is_a_node_with_parent_0(tree, market, sponsor, architect):
    task_id = market.create_task(sponsor)
    _c, salt, _ = market.commit(task_id, architect, 0, cid(9))
    assert tree.getTask(task_id).dict()["pendingNodes"] == 0  # a commitment is not a node yet
    tx = tree.revealSubmission(task_id, 0, cid(9), 0, salt, {"from": architect})
    node_id = tx.return_value
    n = tree.getNode(node_id).dict()
    assert (n["author"], n["taskId"], n["parentId"], n["depth"], n["datasetId"], n["status"]) == (
        architect,
        task_id,
        0,
        1,
        0,
        0,
    )
    assert n["cid"] == "0x" + cid(9).hex()
    assert tx.events["ArchitectureProposed"]["nodeId"] == node_id
    assert "NodeSubmitted" not in tx.events
    assert tree.getTask(task_id).dict()["pendingNodes"] == 1
    assert tree.balance() == BOUNTY + STAKE


def test_architecture_reveal_rejects(tree, market, sponsor, architect, publisher):
    task_id = market.create_task(sponsor)
    dataset = market.publish(task_id, publisher)
    with reverts("WrongStake"):
        market.commit(task_id, architect, 0, cid(9), value=STAKE - 1)
    with reverts("UnknownTask"):
        market.commit(99, architect, 0, cid(9))
    _, s, _ = market.commit(task_id, architect, 0, b"\x00" * 32)
    with reverts("EmptyCid"):
        tree.revealSubmission(task_id, 0, b"\x00" * 32, 0, s, {"from": architect})
    _, s, _ = market.commit(task_id, architect, 0, cid(9), dataset_id=dataset)
    with reverts("DatasetOnArchitecture"):
        tree.revealSubmission(task_id, 0, cid(9), dataset, s, {"from": architect})
    _, s, _ = market.commit(task_id, architect, 0, cid(9))
    chain.sleep(DAY + 1)
    chain.mine()
    with reverts("DeadlinePassed"):  # no new commitment after the deadline
        market.commit(task_id, architect, 0, cid(8))
    past_reveals(tree, task_id)
    with reverts("RevealWindowClosed"):
        tree.revealSubmission(task_id, 0, cid(9), 0, s, {"from": architect})
    assert tree.getTask(task_id).dict()["pendingNodes"] == 0


def test_finalized_task_takes_no_new_node(tree, market, sponsor, architect, alice):
    task_id = market.create_task(sponsor)
    arch = market.propose(task_id, architect)
    _c, salt, _ = market.commit(task_id, alice, arch, cid(3))
    _c, arch_salt, _ = market.commit(task_id, alice, 0, cid(9))
    data_salt = os.urandom(32)
    data_commitment = market.dataset_commitment(alice, task_id, cid(10), data_salt)
    tree.commitSubmission(task_id, data_commitment, {"from": alice, "value": STAKE})
    market.score(task_id, {arch: 9500})
    past_reveals(tree, task_id)  # none of the three was revealed in its window
    tree.finalize(task_id, {"from": alice})
    with reverts("TaskIsFinalized"):
        market.commit(task_id, alice, arch, cid(4))
    with reverts("TaskIsFinalized"):
        tree.revealSubmission(task_id, arch, cid(3), 0, salt, {"from": alice})
    with reverts("TaskIsFinalized"):
        tree.revealSubmission(task_id, 0, cid(9), 0, arch_salt, {"from": alice})
    with reverts("TaskIsFinalized"):
        tree.revealDataset(task_id, cid(10), data_salt, {"from": alice})


def test_publish_dataset(tree, market, sponsor, publisher, alice):
    fee = 10**15
    task_id = market.create_task(sponsor, fee=fee)
    other = market.create_task(sponsor)
    before = tree.pendingWithdrawals(publisher)
    salt = b"\x01" * 32
    c = market.dataset_commitment(publisher, task_id, cid(42), salt)
    tree.commitSubmission(task_id, c, {"from": publisher, "value": STAKE + fee})
    tx = tree.revealDataset(task_id, cid(42), salt, {"from": publisher})
    assert tx.return_value == 1
    assert tx.events["DatasetPublished"]["cid"] == "0x" + cid(42).hex()
    d = tree.getDataset(task_id, 1).dict()
    assert (d["publisher"], d["cid"]) == (publisher, "0x" + cid(42).hex())
    assert tree.datasetIdOf(task_id, cid(42)) == 1
    t = tree.getTask(task_id).dict()
    assert (t["datasets"], t["submissions"], t["pendingNodes"]) == (1, 1, 0)
    # the stake comes back at once; the fee stays in the task's pool
    assert tree.pendingWithdrawals(publisher) - before == STAKE
    assert tree.getCommitment(publisher, c).dict()["author"] == ZERO_ADDRESS
    # ids count per task: the same content is dataset 1 of another task too
    assert market.publish(other, publisher, cid(42)) == 1
    assert market.publish(task_id, alice, cid(43), value=STAKE + fee) == 2
    # one dataset per content per task, whoever reveals it
    for who in (publisher, alice):
        s = os.urandom(32)
        c = market.dataset_commitment(who, task_id, cid(42), s)
        tree.commitSubmission(task_id, c, {"from": who, "value": STAKE + fee})
        with reverts("DatasetExists"):
            tree.revealDataset(task_id, cid(42), s, {"from": who})
    s = os.urandom(32)
    tree.commitSubmission(
        task_id,
        market.dataset_commitment(alice, task_id, b"\x00" * 32, s),
        {"from": alice, "value": STAKE + fee},
    )
    with reverts("EmptyCid"):
        tree.revealDataset(task_id, b"\x00" * 32, s, {"from": alice})
    # a node's commitment does not open as a dataset, nor a dataset's as a node
    _, s, _ = market.commit(task_id, alice, 0, cid(44), value=STAKE + fee)
    with reverts("UnknownCommitment"):
        tree.revealDataset(task_id, cid(44), s, {"from": alice})
    with reverts("UnknownCommitment"):
        tree.revealSubmission(task_id, 0, cid(43), 0, salt, {"from": publisher})
    assert tree.getDataset(task_id, 3).dict()["publisher"] == ZERO_ADDRESS


def test_commit_then_reveal(tree, market, sponsor, architect, alice, publisher):
    task_id = market.create_task(sponsor)
    dataset = market.publish(task_id, publisher)
    arch = market.propose(task_id, architect)
    c, salt, tx = market.commit(task_id, alice, arch, cid(3), dataset_id=dataset)
    assert bytes(HexBytes(tx.events["SubmissionCommitted"]["commitment"])) == bytes(c)
    cm = tree.getCommitment(alice, c).dict()
    assert (cm["author"], cm["taskId"], cm["blockNumber"]) == (alice, task_id, tx.block_number)
    assert tree.getTask(task_id).dict()["pendingNodes"] == 1  # a commitment is not a node yet
    rtx = tree.revealSubmission(task_id, arch, cid(3), dataset, salt, {"from": alice})
    node_id = rtx.return_value
    n = tree.getNode(node_id).dict()
    assert (n["author"], n["taskId"], n["parentId"], n["depth"], n["datasetId"], n["status"]) == (
        alice,
        task_id,
        arch,
        2,
        dataset,
        0,
    )
    assert n["cid"] == "0x" + cid(3).hex()
    ev = rtx.events["NodeSubmitted"]
    assert (ev["taskId"], ev["nodeId"], ev["parentId"], ev["author"], ev["datasetId"]) == (
        task_id,
        node_id,
        arch,
        alice,
        dataset,
    )
    assert "ops" not in ev
    assert tree.getTask(task_id).dict()["pendingNodes"] == 2
    assert tree.getCommitment(alice, c).dict()["author"] == ZERO_ADDRESS
    # the node's stake stays escrowed in the task; the dataset's was credited back at its reveal
    assert tree.balance() == BOUNTY + 3 * STAKE
    assert tree.pendingWithdrawals(publisher) == STAKE
    with reverts("UnknownCommitment"):  # a commitment reveals once
        tree.revealSubmission(task_id, arch, cid(3), dataset, salt, {"from": alice})


def test_reveal_rejects(tree, market, sponsor, architect, alice, bob, publisher):
    task_id = market.create_task(sponsor)
    other_task = market.create_task(sponsor)
    arch = market.propose(task_id, architect)
    other_arch = market.propose(other_task, architect)
    other_dataset = market.publish(other_task, publisher)

    c, salt, _ = market.commit(task_id, alice, arch, cid(3))
    with reverts("CommitmentExists"):
        tree.commitSubmission(task_id, c, {"from": alice, "value": STAKE})
    with reverts("WrongStake"):
        tree.commitSubmission(task_id, cid(12345), {"from": alice, "value": 0})
    with reverts("EmptyCommitment"):
        tree.commitSubmission(task_id, b"\x00" * 32, {"from": alice, "value": STAKE})
    # nobody else can reveal alice's commitment: the hash binds msg.sender
    with reverts("UnknownCommitment"):
        tree.revealSubmission(task_id, arch, cid(3), 0, salt, {"from": bob})
    # wrong salt / wrong CID
    with reverts("UnknownCommitment"):
        tree.revealSubmission(task_id, arch, cid(4), 0, salt, {"from": alice})
    # a commitment made for alice but staked by bob is bob's: alice has no such commitment, and
    # bob's reveal hashes bob
    salt2 = b"\x07" * 32
    tree.commitSubmission(
        task_id,
        market.commitment(alice, task_id, arch, cid(5), 0, salt2),
        {"from": bob, "value": STAKE},
    )
    with reverts("UnknownCommitment"):
        tree.revealSubmission(task_id, arch, cid(5), 0, salt2, {"from": alice})
    with reverts("UnknownCommitment"):
        tree.revealSubmission(task_id, arch, cid(5), 0, salt2, {"from": bob})
    # a commitment for task_id staked in other_task reveals nowhere
    salt3 = b"\x08" * 32
    tree.commitSubmission(
        other_task,
        market.commitment(alice, task_id, arch, cid(6), 0, salt3),
        {"from": alice, "value": STAKE},
    )
    with reverts("CommitmentNotInTask"):
        tree.revealSubmission(task_id, arch, cid(6), 0, salt3, {"from": alice})
    with reverts("UnknownCommitment"):
        tree.revealSubmission(other_task, arch, cid(6), 0, salt3, {"from": alice})

    for parent, dataset, error in [
        (other_arch, 0, "ParentNotInTask"),
        (999, 0, "ParentNotInTask"),
        (arch, other_dataset, "DatasetNotInTask"),
        (arch, 55, "DatasetNotInTask"),
        (arch, 2**24 + other_dataset, "DatasetNotInTask"),
    ]:
        _, s, _ = market.commit(task_id, alice, parent, cid(8), dataset_id=dataset)
        with reverts(error):
            tree.revealSubmission(task_id, parent, cid(8), dataset, s, {"from": alice})
    _, s, _ = market.commit(task_id, alice, arch, b"\x00" * 32)
    with reverts("EmptyCid"):
        tree.revealSubmission(task_id, arch, b"\x00" * 32, 0, s, {"from": alice})
    assert tree.getTask(task_id).dict()["pendingNodes"] == 1  # only the architecture


def test_reveal_in_the_commit_block_is_refused(tree, market, sponsor, architect, alice):
    task_id = market.create_task(sponsor)
    arch = market.propose(task_id, architect)
    salt = b"\x05" * 32
    c = market.commitment(alice, task_id, arch, cid(3), 0, salt)
    tx_fields = {"from": alice.address, "to": tree.address, "gas": 500_000, "gasPrice": 10**9}
    automine(False)
    try:
        commit_hash = web3.eth.send_transaction(
            {**tx_fields, "value": STAKE, "data": tree.commitSubmission.encode_input(task_id, c)}
        )
        reveal_hash = web3.eth.send_transaction(
            {
                **tx_fields,
                "data": tree.revealSubmission.encode_input(task_id, arch, cid(3), 0, salt),
            }
        )
        web3.provider.make_request("evm_mine", [])
    finally:
        automine(True)
    commit_receipt = web3.eth.wait_for_transaction_receipt(commit_hash)
    reveal_receipt = web3.eth.wait_for_transaction_receipt(reveal_hash)
    assert commit_receipt["blockNumber"] == reveal_receipt["blockNumber"]
    assert commit_receipt["status"] == 1
    assert reveal_receipt["status"] == 0
    # one block later the same reveal goes through
    tx = tree.revealSubmission(task_id, arch, cid(3), 0, salt, {"from": alice})
    assert tx.events["NodeSubmitted"]["parentId"] == arch


def test_reject_rejected_parent(tree, market, sponsor, architect, alice, oracle):
    task_id = market.create_task(sponsor)
    arch = market.propose(task_id, architect)
    tree.rejectNodes(task_id, [arch], [2], {"from": oracle})
    _, s, _ = market.commit(task_id, alice, arch, cid(8))
    with reverts("ParentRejected"):
        tree.revealSubmission(task_id, arch, cid(8), 0, s, {"from": alice})


def test_tree_depth_is_bounded(tree, market, sponsor, architect, alice):
    task_id = market.create_task(sponsor, stake=0)
    parent = market.propose(task_id, architect, value=0)
    for _ in range(tree.MAX_DEPTH() - 1):
        parent = market.submit(task_id, alice, parent, value=0)
    assert tree.getNode(parent).dict()["depth"] == tree.MAX_DEPTH()
    _, s, _ = market.commit(task_id, alice, parent, cid(8), value=0)
    with reverts("TreeTooDeep"):
        tree.revealSubmission(task_id, parent, cid(8), 0, s, {"from": alice})


def test_get_nodes_reads_many_nodes_in_one_call(tree, market, sponsor, architect):
    task_id = market.create_task(sponsor)
    ids = [market.propose(task_id, architect, cid(20 + i)) for i in range(3)]
    many = tree.getNodes([*ids, 999])
    assert [tuple(n) for n in many[:3]] == [tuple(tree.getNode(i)) for i in ids]
    assert many[3][0] == ZERO_ADDRESS  # an unknown id comes back empty
    assert len(tree.getNodes([])) == 0
    with reverts("BatchSize"):
        tree.getNodes(list(range(1, tree.MAX_VIEW() + 2)))
