"""Scoring fees, caps per account, the auditable mode and the winner's test score: each function's
effects and every error it can raise, and the attacks on them (a fee reclaimed, a cap dodged, a
wrong opening, an early forfeit, a second or unauthorised test score)."""

import hashlib

import pytest
from brownie import chain
from conftest import BOUNTY, DAY, STAKE, cid, events, net, past_reveals, reverts

FEE = 10**15
BOND = 3 * 10**17
FILE_CID = b"\x33" * 32
SALT = b"\x44" * 32
OPENING = hashlib.sha256(SALT + FILE_CID).digest()  # sha256(abi.encodePacked(salt, fileCid))
BOND_KIND = 5
BURNED_KIND = 6
BURNED = "0x0000000000000000000000000000000000000000"  # credited, never withdrawable
WEEK = 7 * DAY


def credits(tx):
    """(account, amount, kind) of each PayoutCredited, in order."""
    return [(e["account"], e["amount"], e["kind"]) for e in events(tx, "PayoutCredited")]


def auditable(market, sponsor, **kwargs):
    return market.create_task(sponsor, validation=OPENING, bond=BOND, **kwargs)


def won(market, tree, task_id, architect, alice, accuracy=9500):
    """An architecture and a trained node on it that reaches the target; finalized."""
    price = _price(tree, task_id)
    arch = market.propose(task_id, architect, value=price)
    node = market.submit(task_id, alice, arch, value=price)
    market.score(task_id, {arch: 5000, node: accuracy})
    return arch, node, tree.finalize(task_id, {"from": alice})


def _price(tree, task_id):
    t = tree.getTask(task_id).dict()
    return t["submissionStake"] + t["scoringFee"]


# ─────────────────────────────── createTask ───────────────────────────────


def test_create_task_stores_the_new_terms(tree, market, sponsor):
    task_id = auditable(market, sponsor, fee=FEE, cap=3)
    t = tree.getTask(task_id).dict()
    assert (t["scoringFee"], t["maxSubmissions"], t["auditBond"], t["bondState"]) == (
        FEE,
        3,
        BOND,
        1,
    )
    assert (t["bounty"], t["submissions"], t["validationPublished"], t["testScored"]) == (
        BOUNTY,
        0,
        False,
        False,
    )
    assert tree.balance() == BOUNTY + BOND  # the bond is held apart from the pool
    tx = tree.createTask(
        cid(1),
        OPENING,
        9000,
        chain.time() + DAY,
        5000,
        3000,
        2000,
        STAKE,
        FEE,
        2,
        BOND,
        False,
        {"from": sponsor, "value": BOUNTY + BOND},
    )
    e = tx.events["TaskCreated"]
    assert (e["bounty"], e["scoringFee"], e["maxSubmissions"], e["auditBond"]) == (
        BOUNTY,
        FEE,
        2,
        BOND,
    )
    plain = tree.getTask(market.create_task(sponsor)).dict()
    assert (plain["auditBond"], plain["bondState"], plain["scoringFee"]) == (0, 0, 0)


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"bond": BOND, "bounty": 0}, "NoBounty"),  # the whole value would be bond
        ({"fee": 2**64}, "AmountTooLarge"),
        ({"stake": 2**64}, "AmountTooLarge"),
        ({"deadline": 2**32}, "DeadlineTooFar"),
    ],
)
def test_create_task_rejects_the_new_terms(market, sponsor, kwargs, error):
    with reverts(error):
        market.create_task(sponsor, **kwargs)


# ─────────────────────────────── scoring fee ──────────────────────────────


def test_every_submission_pays_stake_plus_fee_into_the_pool(
    tree, market, sponsor, architect, alice
):
    task_id = market.create_task(sponsor, fee=FEE)
    price = STAKE + FEE
    with reverts("WrongStake"):  # the stake alone
        market.commit(task_id, architect, 0, cid(9), value=STAKE)
    with reverts("WrongStake"):
        market.commit(task_id, alice, 1, cid(3), value=STAKE)
    arch = market.propose(task_id, architect, value=price)
    node = market.submit(task_id, alice, arch, value=price)
    market.commit(task_id, alice, node, cid(4), value=price)  # never revealed
    t = tree.getTask(task_id).dict()
    assert t["submissions"] == 2  # nodes: the commitment's fee stays with it until revealed
    assert tree.balance() == BOUNTY + 3 * price
    market.score(task_id, {arch: 5000, node: 9500})
    past_reveals(tree, task_id)
    tx = tree.finalize(task_id, {"from": alice})
    assert tx.events["TaskFinalized"]["pool"] == BOUNTY + 2 * FEE  # the scored nodes' fees


def test_a_fee_pays_for_a_score_and_for_nothing_else(
    tree, market, sponsor, architect, alice, bob, oracle
):
    """A commitment never revealed gets its stake back and its fee burned: finalize waited for
    its reveal, so it was left, not cut off. A node still pending at finalize gets its stake back;
    its fee bought no score and is burned, reaching neither the path nor the sponsor (and a
    submitter whose junk the oracle had not rejected yet cannot dodge the fee). A task with
    neither stake nor fee has nothing to reclaim."""
    task_id = market.create_task(sponsor, fee=FEE)
    arch = market.propose(task_id, architect, value=STAKE + FEE)
    pending = market.submit(task_id, bob, arch, value=STAKE + FEE)
    c, _, _ = market.commit(task_id, alice, arch, cid(3), value=STAKE + FEE)
    market.score(task_id, {arch: 9500})
    past_reveals(tree, task_id)
    fin = tree.finalizeLeaving(task_id, 1, {"from": oracle})  # bob's node pending, alice unrevealed
    assert fin.events["TaskFinalized"]["pool"] == BOUNTY + FEE  # the architecture's fee only
    assert (BURNED, FEE, BURNED_KIND) in credits(fin)  # bob's node's fee
    assert credits(tree.reclaimCommitment(c, {"from": alice})) == [
        (alice, STAKE, 4),
        (BURNED, FEE, BURNED_KIND),
    ]
    assert credits(tree.reclaimStake(pending, {"from": bob})) == [(bob, STAKE, 4)]

    free = market.create_task(sponsor, fee=FEE, stake=0)  # the fee alone: burned
    a2 = market.propose(free, architect, value=FEE)
    c2, _, _ = market.commit(free, alice, a2, cid(5), value=FEE)
    market.score(free, {a2: 9500})
    past_reveals(tree, free)
    tree.finalize(free, {"from": alice})
    assert credits(tree.reclaimCommitment(c2, {"from": alice})) == [(BURNED, FEE, BURNED_KIND)]

    nothing = market.create_task(sponsor, stake=0)
    a3 = market.propose(nothing, architect, value=0)
    c3, _, _ = market.commit(nothing, alice, a3, cid(6), value=0)
    market.score(nothing, {a3: 9500})
    past_reveals(tree, nothing)
    tree.finalize(nothing, {"from": alice})
    with reverts("NothingToReclaim"):
        tree.reclaimCommitment(c3, {"from": alice})


# ──────────────────────────────── the cap ─────────────────────────────────


def test_the_cap_counts_proposals_and_commitments_per_account(
    tree, market, sponsor, architect, alice, bob
):
    task_id = market.create_task(sponsor, cap=2)
    arch = market.propose(task_id, architect)
    market.commit(task_id, architect, arch, cid(3))  # the architect's second submission
    with reverts("SubmissionCapReached"):
        market.propose(task_id, architect)
    with reverts("SubmissionCapReached"):
        market.commit(task_id, architect, arch, cid(4))
    assert tree.submissionsBy(task_id, architect) == 2
    market.submit(task_id, alice, arch)  # other accounts keep their own count
    market.submit(task_id, alice, arch)
    with reverts("SubmissionCapReached"):
        market.submit(task_id, alice, arch)
    market.propose(task_id, bob)
    # nodes: the architect's unrevealed commitment is capped but not (yet) a node
    assert tree.getTask(task_id).dict()["submissions"] == 4
    other = market.create_task(sponsor, cap=2)  # and the count is per task
    market.propose(other, architect)
    uncapped = market.create_task(sponsor)
    for _ in range(3):
        market.propose(uncapped, architect)
    assert tree.submissionsBy(uncapped, architect) == 0  # not counted where there is no cap


# ──────────────────────────── publishValidation ───────────────────────────


def test_publishing_the_opening_returns_the_bond(tree, market, sponsor, architect, alice):
    task_id = auditable(market, sponsor)
    with reverts("TaskNotFinalized"):  # the file stays private while nodes are scored
        tree.publishValidation(task_id, FILE_CID, SALT, {"from": sponsor})
    _, _, fin = won(market, tree, task_id, architect, alice)
    assert all(kind != BOND_KIND for _, _, kind in credits(fin))  # pool only
    end = tree.getTask(task_id).dict()["auditWindowEnd"]
    assert end == fin.timestamp + WEEK
    with reverts("NotSponsor"):
        tree.publishValidation(task_id, FILE_CID, SALT, {"from": alice})
    with reverts("WrongOpening"):
        tree.publishValidation(task_id, cid(9), SALT, {"from": sponsor})
    with reverts("WrongOpening"):
        tree.publishValidation(task_id, FILE_CID, cid(9), {"from": sponsor})
    with reverts("WrongOpening"):  # the order is salt ‖ file CID
        tree.publishValidation(task_id, SALT, FILE_CID, {"from": sponsor})
    tx = tree.publishValidation(task_id, FILE_CID, SALT, {"from": sponsor})
    e = tx.events["ValidationPublished"]
    assert (e["taskId"], e["fileCid"], e["salt"]) == (
        task_id,
        "0x" + FILE_CID.hex(),
        "0x" + SALT.hex(),
    )
    assert credits(tx) == [(sponsor, BOND, BOND_KIND)]
    t = tree.getTask(task_id).dict()
    assert (t["validationPublished"], t["bondState"]) == (True, 2)
    with reverts("ValidationAlreadyPublished"):
        tree.publishValidation(task_id, FILE_CID, SALT, {"from": sponsor})
    with reverts("NoBondHeld"):
        tree.forfeitBond(task_id, {"from": alice})
    with reverts("UnknownTask"):
        tree.publishValidation(99, FILE_CID, SALT, {"from": sponsor})


def test_a_task_without_a_bond_may_publish_too(tree, market, sponsor, architect, alice):
    task_id = market.create_task(sponsor, validation=OPENING)
    won(market, tree, task_id, architect, alice)
    tx = tree.publishValidation(task_id, FILE_CID, SALT, {"from": sponsor})
    assert "ValidationPublished" in tx.events and credits(tx) == []
    with reverts("NoBondHeld"):
        tree.forfeitBond(task_id, {"from": alice})


def test_a_late_publication_does_not_save_the_bond(tree, market, sponsor, architect, alice):
    task_id = auditable(market, sponsor)
    won(market, tree, task_id, architect, alice)
    chain.sleep(WEEK + 10)
    chain.mine()
    tx = tree.publishValidation(task_id, FILE_CID, SALT, {"from": sponsor})
    assert credits(tx) == []  # the file is public now, but the bond is forfeit
    assert tree.getTask(task_id).dict()["bondState"] == 1
    assert sum(a for _, a, _ in credits(tree.forfeitBond(task_id, {"from": alice}))) == BOND


# ─────────────────────────────── forfeitBond ──────────────────────────────


def test_a_forfeited_bond_is_burned(tree, market, sponsor, architect, alice, bob, outsider):
    """Not paid to the path: the sponsor may control any account on it."""
    task_id = auditable(market, sponsor)
    with reverts("TaskNotFinalized"):
        tree.forfeitBond(task_id, {"from": outsider})
    arch = market.propose(task_id, architect)
    a = market.submit(task_id, alice, arch)
    b = market.submit(task_id, bob, a)
    market.score(task_id, {arch: 5000, a: 8000, b: 9500})
    tree.finalize(task_id, {"from": outsider})
    end = tree.getTask(task_id).dict()["auditWindowEnd"]
    chain.sleep(end - chain.time() - 30)
    chain.mine()
    with reverts("AuditWindowOpen"):  # the sponsor may still publish
        tree.forfeitBond(task_id, {"from": outsider})
    chain.sleep(60)
    chain.mine()
    before = tree.pendingWithdrawals(BURNED)
    tx = tree.forfeitBond(task_id, {"from": outsider})
    assert credits(tx) == [(BURNED, BOND, BURNED_KIND)]
    assert tree.pendingWithdrawals(BURNED) == before + BOND
    assert tx.events["BondForfeited"]["amount"] == BOND
    assert tree.getTask(task_id).dict()["bondState"] == 3
    with reverts("NoBondHeld"):  # once
        tree.forfeitBond(task_id, {"from": outsider})
    with reverts("WrongOpening"):  # and a wrong opening is refused even then
        tree.publishValidation(task_id, cid(9), SALT, {"from": sponsor})


def test_a_sponsor_that_wins_its_own_task_gets_nothing_back_by_withholding_the_file(
    tree, market, sponsor, sybil, outsider
):
    """The sponsor's second account proposes and wins; the sponsor never publishes the file.
    Before, the forfeited bond went to the winner's author, the sponsor's own account: the two
    accounts together got the whole bond back. Now withholding costs them exactly the bond."""
    task_id = auditable(market, sponsor)
    pair = (sponsor, sybil)
    credited_before = sum(tree.pendingWithdrawals(a) for a in pair)
    arch = market.propose(task_id, sybil)
    paid_in = BOUNTY + BOND + STAKE
    market.score(task_id, {arch: 9500})
    tree.finalize(task_id, {"from": outsider})
    chain.sleep(WEEK + 10)
    chain.mine()
    tree.forfeitBond(task_id, {"from": outsider})
    credited = sum(tree.pendingWithdrawals(a) for a in pair) - credited_before
    # the bond, and the levy on the second account's expertise share (the price of its points)
    assert paid_in - credited == BOND + 2 * 10**17 - net(2 * 10**17)


def test_a_sponsor_that_scores_only_its_own_account_loses_its_bond(
    tree, market, sponsor, sybil, alice, oracle
):
    """The sponsor's validator admits sessions for its second account's node only: that node
    wins, alice's node is left pending, and the oracle, whose sessions for it kept failing for an
    hour, said so and finalizes. The bond is burned at once (publishing the file cannot bring it
    back), alice's fee is burned (not the path's, not the sponsor's) and her stake comes back."""
    task_id = auditable(market, sponsor, fee=FEE)
    price = STAKE + FEE
    arch = market.propose(task_id, sybil, value=price)
    node = market.propose(task_id, alice, value=price)
    market.score(task_id, {arch: 9500})
    tree.markValidationUnread(task_id, True, {"from": oracle})
    fin = tree.finalizeLeaving(task_id, 1, {"from": oracle})
    assert (BURNED, BOND, BURNED_KIND) in credits(fin)
    assert (BURNED, FEE, BURNED_KIND) in credits(fin)
    assert fin.events["BondForfeited"]["amount"] == BOND
    assert tree.getTask(task_id).dict()["bondState"] == 3
    tx = tree.publishValidation(task_id, FILE_CID, SALT, {"from": sponsor})
    assert credits(tx) == []  # published, but the bond is gone
    assert credits(tree.reclaimStake(node, {"from": alice})) == [(alice, STAKE, 4)]


def test_the_sponsor_gets_back_at_most_its_bounty(tree, market, sponsor, architect, alice, oracle):
    """Strangers' junk is rejected (stakes forfeited, fees paid) and a lone architecture wins a
    task whose whole pool is the data share, which an architecture alone does not earn: the
    path is paid nothing, and the pool goes back to the sponsor only up to its bounty; the
    strangers' money beyond it is burned. Before, the sponsor got all of it."""
    task_id = market.create_task(sponsor, fee=FEE, shares=(10000, 0, 0))
    price = STAKE + FEE
    arch = market.propose(task_id, architect, value=price)
    junk = [market.propose(task_id, alice, value=price) for _ in range(3)]
    tree.rejectNodes(task_id, junk, [6, 6, 6], {"from": oracle})
    market.score(task_id, {arch: 9500})
    fin = tree.finalize(task_id, {"from": oracle})
    pool = BOUNTY + 3 * STAKE + 4 * FEE
    assert fin.events["TaskFinalized"]["pool"] == pool
    assert credits(fin) == [(sponsor, BOUNTY, 3), (BURNED, pool - BOUNTY, BURNED_KIND)]


def test_no_winner_with_nothing_pending_returns_the_bond_and_burns_what_strangers_paid(
    tree, market, sponsor, architect, outsider, oracle
):
    """Everything submitted was rejected: the validation file decided nothing, so the bond comes
    back; the rejected node's stake and fee are burned, never the sponsor's."""
    task_id = auditable(market, sponsor, fee=FEE)
    arch = market.propose(task_id, architect, value=STAKE + FEE)
    tree.rejectNodes(task_id, [arch], [14], {"from": oracle})  # logit-range
    chain.sleep(DAY + 10)
    chain.mine()
    tx = tree.finalize(task_id, {"from": outsider})
    assert credits(tx) == [
        (sponsor, BOUNTY, 3),
        (BURNED, STAKE + FEE, BURNED_KIND),
        (sponsor, BOND, BOND_KIND),
    ]
    assert tree.getTask(task_id).dict()["bondState"] == 2
    with reverts("NoBondHeld"):
        tree.forfeitBond(task_id, {"from": outsider})
    with reverts("NoWinner"):
        tree.recordTestScore(task_id, 9000, {"from": oracle})


def test_a_sponsor_that_never_runs_its_validator_gains_nothing(
    tree, market, sponsor, architect, alice, bob, outsider, oracle
):
    """Strangers submit (each paying stake + fee) and the sponsor's validator never scores; the
    oracle, its sessions failing, says so on-chain. After the grace, the sponsor gets exactly its
    bounty back and its bond is burned; each node's author reclaims its stake (its fee is
    burned), and so does a commitment left unrevealed a day before the close (its fee burned
    too: no close cut it off). Before, the sponsor kept every fee and its bond."""
    task_id = auditable(market, sponsor, fee=FEE)
    price = STAKE + FEE
    arch = market.propose(task_id, architect, value=price)
    node = market.submit(task_id, alice, arch, value=price)
    c, _, _ = market.commit(task_id, bob, arch, cid(8), value=price)
    for stranger in (sponsor, alice, outsider):  # only the task's scorer says it
        with reverts("NotScorer"):
            tree.markValidationUnread(task_id, True, {"from": stranger})
    # the oracle may take its word back while nodes wait (it judges which wait on the
    # validator: oracle/service.py); a custody only once nothing waits (test_private_custody)
    tree.markValidationUnread(task_id, False, {"from": oracle})
    assert not tree.getTask(task_id).dict()["validationUnread"]
    tree.markValidationUnread(task_id, True, {"from": oracle})
    chain.sleep(2 * DAY + 10)  # past the deadline and the grace
    chain.mine()
    fin = tree.finalize(task_id, {"from": outsider})
    assert credits(fin) == [
        (sponsor, BOUNTY, 3),
        (BURNED, 2 * FEE, BURNED_KIND),  # the two pending nodes' fees: no score, no sponsor
        (BURNED, BOND, BURNED_KIND),
    ]
    assert fin.events["BondForfeited"]["amount"] == BOND
    assert tree.getTask(task_id).dict()["bondState"] == 3
    assert tree.pendingWithdrawals(sponsor) == BOUNTY  # its gain: 0, and it lost the bond
    assert credits(tree.reclaimStake(arch, {"from": architect})) == [(architect, STAKE, 4)]
    assert credits(tree.reclaimStake(node, {"from": alice})) == [(alice, STAKE, 4)]
    assert credits(tree.reclaimCommitment(c, {"from": bob})) == [
        (bob, STAKE, 4),
        (BURNED, FEE, BURNED_KIND),
    ]
    assert tree.balance() == sum(
        tree.pendingWithdrawals(a) for a in (sponsor, architect, alice, bob, BURNED)
    )


def test_forfeit_of_an_unknown_task(tree, outsider):
    with reverts("UnknownTask"):
        tree.forfeitBond(7, {"from": outsider})


# ───────────────────────────── recordTestScore ────────────────────────────


def test_the_winners_test_score_is_recorded_once_and_pays_nothing(
    tree, market, sponsor, architect, alice, outsider, oracle
):
    task_id = market.create_task(sponsor)
    arch = market.propose(task_id, architect)
    node = market.submit(task_id, alice, arch)
    market.score(task_id, {arch: 5000, node: 9500})
    with reverts("TaskNotFinalized"):
        tree.recordTestScore(task_id, 9100, {"from": oracle})
    tree.finalize(task_id, {"from": alice})
    with reverts("AccessControlUnauthorizedAccount"):
        tree.recordTestScore(task_id, 9100, {"from": outsider})
    with reverts("AccuracyOutOfRange"):
        tree.recordTestScore(task_id, 10001, {"from": oracle})
    before = [tree.pendingWithdrawals(a) for a in (sponsor, architect, alice)]
    tx = tree.recordTestScore(task_id, 9100, {"from": oracle})
    e = tx.events["TestScoreRecorded"]
    assert (e["taskId"], e["nodeId"], e["accuracyBps"]) == (task_id, node, 9100)
    assert credits(tx) == [] and before == [
        tree.pendingWithdrawals(a) for a in (sponsor, architect, alice)
    ]
    t = tree.getTask(task_id).dict()
    assert (t["testScored"], t["testAccuracyBps"]) == (True, 9100)
    with reverts("TestScoreAlreadyRecorded"):
        tree.recordTestScore(task_id, 9900, {"from": oracle})
    with reverts("UnknownTask"):
        tree.recordTestScore(99, 9000, {"from": oracle})


def test_escrow_of_a_task_with_every_term(tree, market, sponsor, architect, alice, bob, outsider):
    """Paid in: bounty + bond + (stake + fee) per submission; credited, once everything settles:
    exactly that, and the contract holds nothing."""
    task_id = auditable(market, sponsor, fee=FEE, cap=2)
    price = STAKE + FEE
    arch = market.propose(task_id, architect, value=price)
    a = market.submit(task_id, alice, arch, value=price)
    worse = market.submit(task_id, bob, a, value=price)  # scores below its parent: stake forfeited
    c, _, _ = market.commit(task_id, bob, a, cid(7), value=price)  # never revealed
    market.score(task_id, {arch: 5000, a: 9500, worse: 9000})
    paid_in = BOUNTY + BOND + 4 * price
    assert tree.balance() == paid_in
    past_reveals(tree, task_id)
    fin = tree.finalize(task_id, {"from": outsider})
    assert fin.events["TaskFinalized"]["pool"] == BOUNTY + 3 * FEE + STAKE  # worse's stake
    # never revealed: finalize waited for it, so its fee is burned
    assert credits(tree.reclaimCommitment(c, {"from": bob})) == [(bob, STAKE, 4), (BURNED, FEE, 6)]
    tree.publishValidation(task_id, FILE_CID, SALT, {"from": sponsor})
    total = tree.pendingWithdrawals(BURNED)  # what the path was not paid beyond the bounty
    for account in (sponsor, architect, alice, bob):
        owed = tree.pendingWithdrawals(account)
        if owed:
            total += owed
            tree.withdraw({"from": account})
    assert total == paid_in and tree.balance() == tree.pendingWithdrawals(BURNED)


def test_nodes_left_pending_while_the_oracle_was_away_do_not_cost_the_sponsor_its_bond(
    tree, market, sponsor, architect, alice, outsider
):
    """The oracle was down from the deadline to past the grace day: nobody said the sponsor's
    validator failed anything. Any node left pending used to burn the bond at finalize, an
    infrastructure failure blamed on the sponsor (and a stranger's node whose files never came
    did the same). The bond is held for the audit now, and publishing the file returns it."""
    task_id = auditable(market, sponsor, fee=FEE)
    price = STAKE + FEE
    arch = market.propose(task_id, architect, value=price)
    market.submit(task_id, alice, arch, value=price)
    chain.sleep(2 * DAY + 10)
    chain.mine()
    fin = tree.finalize(task_id, {"from": outsider})
    assert "BondForfeited" not in fin.events
    assert credits(fin) == [(sponsor, BOUNTY, 3), (BURNED, 2 * FEE, BURNED_KIND)]
    assert tree.getTask(task_id).dict()["bondState"] == 1  # held
    tx = tree.publishValidation(task_id, FILE_CID, SALT, {"from": sponsor})
    assert credits(tx) == [(sponsor, BOND, 5)]
