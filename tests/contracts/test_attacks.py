"""Attacks on the escrow, the payout rule, the finalize cut-off and reputation.

Each test plays the attacker against honest accounts, measures what the attacker gained (wei,
gas given back, or reputation points) and asserts it is nothing.
"""

import os

import pytest
from brownie import ZERO_ADDRESS, accounts, chain, web3
from conftest import (
    BOUNTY,
    DAY,
    STAKE,
    automine,
    cid,
    events,
    mined_at,
    net,
    past_reveals,
    reverts,
)

ETHER = 10**18


class Purse:
    """What `account` holds in and out of the contract (balance + pendingWithdrawals), with the gas
    of every transaction it sent since given back: `gain()` is what it won or lost by playing."""

    def __init__(self, tree, account):
        self.tree, self.account = tree, account
        self.block = web3.eth.block_number
        self.start = self._holdings()

    def _holdings(self):
        return self.account.balance() + self.tree.pendingWithdrawals(self.account)

    def _gas_paid(self):
        paid = 0
        for number in range(self.block + 1, web3.eth.block_number + 1):
            for tx in web3.eth.get_block(number, full_transactions=True)["transactions"]:
                if tx["from"] == self.account.address:
                    receipt = web3.eth.get_transaction_receipt(tx["hash"])
                    paid += receipt["gasUsed"] * receipt["effectiveGasPrice"]
        return paid

    def gain(self):
        return self._holdings() + self._gas_paid() - self.start


def credited(tx, account, task_id=None):
    """Wei `tx` credited to `account` (in `task_id` if given)."""
    return sum(
        e["amount"]
        for e in events(tx, "PayoutCredited")
        if e["account"] == account and (task_id is None or e["taskId"] == task_id)
    )


def owed_to_everyone(tree):
    """Everything credited and not withdrawn, what was burned (credited to address(0)) included,
    and what finalized tasks keep for the raises off their winning paths."""
    tasks, _ = tree.counts()
    reserved = sum(
        t["raiseReserve"] + t["computeReserve"]
        for t in (tree.getTask(i).dict() for i in range(1, tasks + 1))
    )
    return (
        sum(tree.pendingWithdrawals(a) for a in accounts)
        + tree.pendingWithdrawals(ZERO_ADDRESS)
        + reserved
    )


# ───────────────────────────── escrow drain ─────────────────────────────


def test_escrow_drain_through_a_commitment_staked_in_a_free_task(
    tree, market, sponsor, architect, alice, mallory
):
    """The victim task asks 1 ETH per submission. mallory opens her own task with stake 0 and stakes
    there (for free) a commitment computed for the victim task, to reveal it into the victim task:
    the node's 1 ETH 'stake', returned when scored, would be paid out of other people's money
    (mallory +1 ETH, and the last account to withdraw short of it)."""
    victim = market.create_task(sponsor, bounty=ETHER, stake=ETHER, target=9000)
    arch = market.propose(victim, architect, value=ETHER)
    unrelated = market.create_task(
        alice, bounty=3 * ETHER, stake=0
    )  # someone else's money in escrow

    purse = Purse(tree, mallory)
    own = market.create_task(mallory, bounty=1, stake=0)
    salt, weights = os.urandom(32), cid(66)
    commitment = market.commitment(mallory, victim, arch, weights, 0, salt)
    tree.commitSubmission(own, commitment, {"from": mallory, "value": 0})
    assert tree.getCommitment(mallory, commitment).dict()["taskId"] == own
    with reverts(f"CommitmentNotInTask: .*, {own}"):  # the error names the task it was staked in
        tree.revealSubmission(victim, arch, weights, 0, salt, {"from": mallory})
    with reverts("UnknownCommitment"):  # nor does it reveal into the task it was staked in
        tree.revealSubmission(own, arch, weights, 0, salt, {"from": mallory})
    assert tree.getTask(victim).dict()["pendingNodes"] == 1  # only the architecture

    # every task runs its course; mallory's free commitment has nothing to reclaim
    market.score(victim, {arch: 9500})
    tree.finalize(victim, {"from": sponsor})
    chain.sleep(DAY + 1)
    past_reveals(tree, own)  # her commitment held own's finalize for its reveal window
    tree.finalize(own, {"from": mallory})
    tree.finalize(unrelated, {"from": alice})
    with reverts("NothingToReclaim"):
        tree.reclaimCommitment(commitment, {"from": mallory})

    # victim: architect stake 1 ETH back + expertise 0.2 ETH less its levy; sponsor the unpaid
    # 0.8 ETH; mallory her 1 wei; alice her 3 ETH: the balance is exactly what is owed
    assert [tree.pendingWithdrawals(a) for a in (architect, sponsor, mallory, alice)] == [
        ETHER + net(2 * 10**17),
        8 * 10**17,
        1,
        3 * ETHER,
    ]
    assert tree.balance() == owed_to_everyone(tree) == 5 * ETHER + 1
    for account in (mallory, architect, sponsor):
        tree.withdraw({"from": account})
    tx = tree.withdraw({"from": alice})  # the unrelated sponsor, last, is paid in full
    assert tx.events["Withdrawn"]["amount"] == 3 * ETHER
    assert tree.balance() == tree.pendingWithdrawals(ZERO_ADDRESS)  # the levy, burned
    assert purse.gain() == 0


def test_a_commitment_reveals_only_for_the_account_that_staked_it(
    tree, market, sponsor, architect, alice, mallory
):
    """mallory copies alice's commitment out of the mempool and stakes it first. It is mallory's
    own commitment (each account has its own), which no arguments of hers open: alice still
    commits and reveals hers, and mallory only gets her own stake back."""
    task_id = market.create_task(sponsor, target=9000)
    arch = market.propose(task_id, architect)
    purse = Purse(tree, mallory)
    salt, weights = os.urandom(32), cid(67)
    commitment = market.commitment(alice, task_id, arch, weights, 0, salt)
    tree.commitSubmission(task_id, commitment, {"from": mallory, "value": STAKE})  # front-run
    with reverts("UnknownCommitment"):  # alice has staked nothing yet
        tree.revealSubmission(task_id, arch, weights, 0, salt, {"from": alice})
    with reverts("UnknownCommitment"):  # mallory's reveal hashes her own address
        tree.revealSubmission(task_id, arch, weights, 0, salt, {"from": mallory})
    tree.commitSubmission(task_id, commitment, {"from": alice, "value": STAKE})  # not blocked
    node = tree.revealSubmission(task_id, arch, weights, 0, salt, {"from": alice}).return_value
    market.score(task_id, {arch: 5000, node: 9200})
    past_reveals(tree, task_id)  # mallory's copy is never revealed
    tx = tree.finalize(task_id, {"from": alice})
    assert tx.events["TaskFinalized"]["winnerNodeId"] == node
    tree.reclaimCommitment(commitment, {"from": mallory})
    assert purse.gain() == 0
    # alice: her stake + data 0.5 ETH (all the gain); the architect: stake + expertise 0.2 ETH;
    # the sponsor: the compute share nobody could earn on private data, 0.3 ETH
    assert [tree.pendingWithdrawals(a) for a in (alice, architect, sponsor, mallory)] == [
        STAKE + net(5 * 10**17),
        STAKE + net(2 * 10**17),
        3 * 10**17,
        STAKE,
    ]
    assert tree.balance() == owed_to_everyone(tree)


def test_a_copied_commitment_does_not_block_its_author(
    tree, market, sponsor, architect, alice, mallory
):
    """mallory copies alice's commitment out of the mempool and stakes it first in a free task of
    her own: it costs her nothing (her 1 wei bounty comes back), and alice should still commit."""
    victim = market.create_task(sponsor)
    arch = market.propose(victim, architect)
    own = market.create_task(mallory, bounty=1, stake=0)
    salt, weights = os.urandom(32), cid(68)
    commitment = market.commitment(alice, victim, arch, weights, 0, salt)
    tree.commitSubmission(own, commitment, {"from": mallory, "value": 0})
    tree.commitSubmission(
        victim, commitment, {"from": alice, "value": STAKE}
    )  # her own, not blocked
    node = tree.revealSubmission(victim, arch, weights, 0, salt, {"from": alice}).return_value
    assert tree.getNode(node).dict()["author"] == alice


# ────────────────────────── copied out of the mempool ──────────────────────────


def _one_block(*txs):
    """Sends raw transactions ({"from", "data", "value"?, "gasPrice"?}) into one block; their
    receipts, reverted or not."""
    hashes = []
    automine(False)
    try:
        for tx in txs:
            hashes.append(
                web3.eth.send_transaction({"gas": 500_000, "gasPrice": 10**9, "value": 0, **tx})
            )
        web3.provider.make_request("evm_mine", [])
    finally:
        automine(True)
    return [web3.eth.wait_for_transaction_receipt(h) for h in hashes]


def test_a_proposal_or_a_dataset_seen_in_the_mempool_cannot_be_put_first(
    tree, market, sponsor, architect, publisher, mallory
):
    """The second attack round sent a pending proposeArchitecture's spec, and a pending dataset's
    CID, first from another account: the copy took the expertise share (the architect's own
    proposal was then rejected as the copy) and 6 of a 10 ETH data share. Now both are commit then
    reveal, a reveal only in a later block than its commitment: mallory, who reads both CIDs
    from the victims' pending reveals and sends her own commitment and reveal ahead of them at ten
    times the gas price, has her reveals refused in that block; the victims' land first. Her
    dataset is then refused as a repeat of the content, and her architecture only follows the
    original (the oracle rejects the later of two equal designs as the copy). Her gain, once she
    reclaims the commitment that never opened: minus the copy's price and the unopened one's fee."""
    task_id = market.create_task(sponsor, bounty=ETHER, fee=10**15)
    price = STAKE + 10**15
    spec, data = cid(31), cid(32)
    _, spec_salt, _ = market.commit(task_id, architect, 0, spec, value=price)
    data_salt = os.urandom(32)
    tree.commitSubmission(
        task_id,
        market.dataset_commitment(publisher, task_id, data, data_salt),
        {"from": publisher, "value": price},
    )
    purse = Purse(tree, mallory)
    mine_spec, mine_data = os.urandom(32), os.urandom(32)
    fast = {"from": mallory.address, "to": tree.address, "gasPrice": 10**10}
    ahead = [
        {
            **fast,
            "value": price,
            "data": tree.commitSubmission.encode_input(
                task_id, market.commitment(mallory, task_id, 0, spec, 0, mine_spec)
            ),
        },
        {
            **fast,
            "value": price,
            "data": tree.commitSubmission.encode_input(
                task_id, market.dataset_commitment(mallory, task_id, data, mine_data)
            ),
        },
        {**fast, "data": tree.revealSubmission.encode_input(task_id, 0, spec, 0, mine_spec)},
        {**fast, "data": tree.revealDataset.encode_input(task_id, data, mine_data)},
    ]
    victims = [
        {
            "from": architect.address,
            "to": tree.address,
            "data": tree.revealSubmission.encode_input(task_id, 0, spec, 0, spec_salt),
        },
        {
            "from": publisher.address,
            "to": tree.address,
            "data": tree.revealDataset.encode_input(task_id, data, data_salt),
        },
    ]
    receipts = _one_block(*ahead, *victims)
    assert [r["status"] for r in receipts] == [1, 1, 0, 0, 1, 1]
    original = tree.events.ArchitectureProposed().process_receipt(receipts[4])[0]["args"]["nodeId"]
    assert tree.getNode(original).dict()["author"] == architect
    assert tree.datasetIdOf(task_id, data) == 1
    assert tree.getDataset(task_id, 1).dict()["publisher"] == publisher

    later = tree.revealSubmission(task_id, 0, spec, 0, mine_spec, {"from": mallory}).return_value
    assert later > original
    with reverts("DatasetExists"):
        tree.revealDataset(task_id, data, mine_data, {"from": mallory})

    # The oracle rejects the repeated design as the copy (Reason.COPY); the original wins.
    tree.rejectNodes(task_id, [later], [9], {"from": market.oracle})
    market.score(task_id, {original: 9500})
    past_reveals(tree, task_id)  # her dataset commitment can never open
    tx = tree.finalize(task_id, {"from": sponsor})
    tree.reclaimCommitment(
        market.dataset_commitment(mallory, task_id, data, mine_data), {"from": mallory}
    )
    # the copy's stake forfeited and its fee spent, the unopened commitment's fee burned
    assert purse.gain() == -price - 10**15
    expertise = [e["account"] for e in events(tx, "PayoutCredited") if e["kind"] == 2]
    assert expertise == [architect]


# ──────────────────────────── dip and recover ────────────────────────────


@pytest.mark.parametrize(
    "stake, expected_gain", [(0, 0), (STAKE, net(10**17 + 10**15) - net(10**17) - STAKE)]
)
def test_dip_and_recover_earns_nothing_for_the_recovery(
    tree, reputation, market, sponsor, architect, alice, mallory, stake, expected_gain
):
    """arch 50% → alice 70%. Honest mallory trains on alice's node to 75%. Dishonest mallory first
    trains it down to 40% on purpose, then back up to 75%, hoping to be paid for 40% → 75%
    (3500 bps) instead of 70% → 75% (500 bps): the recovery pays nothing, and the dip costs her its
    stake (when the task asks one) and REP_WORSE."""
    honest = market.create_task(sponsor, target=7500, stake=stake)
    dip = market.create_task(sponsor, target=7500, stake=stake)
    payouts, rep_gained = {}, {}
    for task_id in (honest, dip):
        purse, rep_before = Purse(tree, mallory), reputation.scoreOf(mallory)
        arch = market.propose(task_id, architect, value=stake)
        good = market.submit(task_id, alice, arch, value=stake)
        if task_id == honest:
            last = market.submit(task_id, mallory, good, value=stake)
            scores = {arch: 5000, good: 7000, last: 7500}
        else:
            bad = market.submit(task_id, mallory, good, value=stake)
            last = market.submit(task_id, mallory, bad, value=stake)
            scores = {arch: 5000, good: 7000, bad: 4000, last: 7500}
        market.score(task_id, scores)
        tx = tree.finalize(task_id, {"from": sponsor})
        assert tx.events["TaskFinalized"]["winnerNodeId"] == last
        payouts[task_id] = [credited(tx, a) for a in (alice, mallory, architect, sponsor)]
        payouts[task_id].append(purse.gain())
        rep_gained[task_id] = reputation.scoreOf(mallory) - rep_before
    pool = BOUNTY + stake  # the dip's forfeited stake joins the dishonest pool
    # honest: data 0.5 ETH by 2000 : 500 → alice 0.4, mallory 0.1; expertise 0.2; compute 0.3 back
    # (each path credit less its levy)
    assert payouts[honest] == [
        net(4 * 10**17),
        net(10**17),
        net(2 * 10**17),
        3 * 10**17,
        net(10**17),
    ]
    # dip: data by 2000 : 0 : 500 of the (bigger, if staked) pool → the same split, and mallory
    # has paid the dip's stake: 0.101 - 0.01 ETH = 0.091 ETH against 0.1 when staked (levies apart)
    assert payouts[dip][:4] == [
        net(pool // 2 * 4 // 5),
        net(pool // 2 // 5),
        net(pool // 5),
        pool * 3 // 10,
    ]
    gain = payouts[dip][4] - payouts[honest][4]
    assert gain == expected_gain and gain <= 0
    # the levy on her data pay buys a point per microether; the dip costs REP_WORSE
    points = (10**17 // 100 // 10**12, pool // 2 // 5 // 100 // 10**12)
    assert (rep_gained[honest], rep_gained[dip]) == (points[0], points[1] - 10_000)


# ───────────────────────── copies that change form ─────────────────────────


def _paid(txs, *who):
    """Data, compute and expertise `txs` credited to the accounts `who` (stakes apart)."""
    return sum(
        e["amount"]
        for tx in txs
        for e in events(tx, "PayoutCredited")
        if e["account"] in who and e["kind"] in (0, 1, 2)
    )


@pytest.mark.parametrize("copy_bps", [8100, 8000], ids=["a-point-better", "as-good"])
def test_a_copy_in_any_disguise_is_paid_only_its_own_raise(
    tree, market, sponsor, architect, alice, bob, publisher, mallory, sybil, copy_bps
):
    """The architect's design scores 10%; bob trains it on the publisher's dataset to 50% (a raise
    of 4000 bps, 1000 replayed operations), alice trains bob's node on her own data to 80% (a
    raise of 3000). mallory takes alice's public weights and fine-tunes them to `copy_bps`, once
    as an honest child of alice's node, once disguised: hidden units permuted or embedded in a
    wider layer, which the oracle's tensor comparison cannot tell from new work, hung under an
    architecture of her second account (sybil), so that the winning path is wholly hers. The
    second attack round measured that disguise taking the whole data and expertise shares.

    Every share is paid by raises over the task's best when scored (compute among the replayed
    training each raise grew from): disguised, mallory's node adds 100 bps and her two accounts are
    paid that raise's part of the data and expertise shares, nothing more; alice and the publisher
    claim off the path what they would have been paid had mallory's node been an honest child of
    alice's, and bob the compute part of the two raises his training led to. What the disguise
    moves is only the parts of mallory's own raise: its expertise part from alice's architect to
    sybil, its compute part (her path replayed nothing) from bob to the refund; at most
    pool × (expertiseShareBps + computeShareBps) × raise / raisedBps (docs/design.md, "The payout
    rule"). A copy that is no better than what it copied is paid nothing."""
    paid = {}
    payees = (alice, publisher, bob, architect, sponsor)
    for disguised in (False, True):
        task_id = market.create_task(sponsor, target=9900)
        dataset = market.publish(task_id, publisher)
        arch = market.propose(task_id, architect)
        computed = market.submit(task_id, bob, arch, dataset_id=dataset)
        original = market.submit(task_id, alice, computed)
        scores = {arch: 1000, computed: 5000, original: 8000}
        if disguised:
            own_arch = market.propose(task_id, sybil)
            copy = market.submit(task_id, mallory, own_arch)
            scores |= {own_arch: 1000, copy: copy_bps}
        else:
            copy = market.submit(task_id, mallory, original)
            scores |= {copy: copy_bps}
        market.score(task_id, scores, {computed: 1000})
        past_reveals(tree, task_id)
        txs = [tree.finalize(task_id, {"from": sponsor})]
        winner = txs[0].events["TaskFinalized"]["winnerNodeId"]
        assert winner == (copy if copy_bps > 8000 else original)
        if winner == copy and disguised:  # the climb is off the path: anyone claims it
            txs += [tree.claim(n, {"from": sponsor}) for n in (computed, original)]
            with reverts(f"NothingToClaim: {original}"):  # once
                tree.claim(original, {"from": alice})
        for n in (arch, copy):
            with reverts(f"NothingToClaim: {n}"):  # nothing held, or paid on the path
                tree.claim(n, {"from": mallory})
        t = tree.getTask(task_id).dict()
        assert t["computeWeight"] == 7000 * 10**12 + (0 if disguised else 100 * 10**12) * (
            copy_bps > 8000
        )
        assert [t[k] for k in ("raiseReserve", "computeReserve", "unclaimedRaiseBps")] == [0] * 3
        assert t["unclaimedWeight"] == 0
        paid[disguised] = [_paid(txs, a) for a in payees]
        paid[disguised].append(_paid(txs, mallory, sybil))
        refund = [e for e in events(txs[0], "PayoutCredited") if e["kind"] == 3]
        paid[disguised].append(sum(e["amount"] for e in refund))
        assert tree.balance() == owed_to_everyone(tree)

    pool = BOUNTY  # no fee, nothing forfeited
    data, compute, expertise = (pool * bps // 10_000 for bps in (5000, 3000, 2000))
    if copy_bps == 8000:  # no new best: the copy is paid nothing, disguised or not
        raised = 7000
        expected = [net(data * 3000 // raised), net(data * 4000 // raised), net(compute)]
        assert paid[False][:3] == paid[True][:3] == expected
        assert paid[False][3:6] == paid[True][3:6] == [net(expertise), 0, 0]
        return
    raised = 7100
    assert paid[False][:6] == [
        net(data * 3000 // raised),
        net(data * 4000 // raised),
        net(compute),
        net(expertise),
        0,
        net(data * 100 // raised),
    ]
    for honest, disguised in zip(paid[False][:2], paid[True][:2], strict=True):
        assert abs(honest - disguised) <= 2  # the same, by another rounding
    # bob's training is paid by the raises that grew from it, 7000 of 7100 bps; the compute part
    # of mallory's raise, whose path has no replayed training, goes to the refund
    assert paid[True][2] == net(compute * 7000 // raised)
    assert paid[True][4] == 0 and 0 <= paid[True][6] - compute * 100 // raised <= 3
    mallory_paid = paid[True][5]
    assert mallory_paid == net(data * 100 // raised) + net(expertise * 100 // raised)
    assert mallory_paid <= net((data + expertise) * 100 // raised)  # what her own raise is worth
    moved = mallory_paid - paid[False][5]
    assert 0 < moved <= net(expertise * 100 // raised)  # the stated bound
    assert abs(paid[True][3] - (paid[False][3] - moved)) <= 2


def test_compute_piled_under_a_small_raise_earns_only_that_raise(
    tree, market, sponsor, architect, alice, bob, mallory
):
    """alice (80%) and bob (90%, her child) train on private data: no compute anywhere on the
    winning path. mallory publishes a dataset (padded, say) and hangs a chain of six nodes of
    heavy replayed training under the architecture, the last one point above alice's, so that
    her training becomes something a new best grew from, then loses to bob. Compute is paid by
    raises: her chain earns her one point's part of the compute share (100 of the 8000 bps
    raised) and its data part, however many operations it piled up; the rest of the compute
    share, which nobody's replayed training raised, goes back to the sponsor."""
    task_id = market.create_task(sponsor, target=9900)
    dataset = market.publish(task_id, mallory)
    arch = market.propose(task_id, architect)
    hers = market.submit(task_id, alice, arch)
    market.score(task_id, {arch: 1000, hers: 8000})
    chain_ = [arch]
    for _ in range(6):
        chain_.append(market.submit(task_id, mallory, chain_[-1], dataset_id=dataset))
    scores = {n: 1000 for n in chain_[1:-1]} | {chain_[-1]: 8100}
    market.score(task_id, scores, {n: 10**12 for n in chain_[1:]})
    his = market.submit(task_id, bob, hers)
    market.score(task_id, {his: 9000})
    past_reveals(tree, task_id)
    txs = [tree.finalize(task_id, {"from": sponsor})]
    assert txs[0].events["TaskFinalized"]["winnerNodeId"] == his
    txs += [tree.claim(n, {"from": sponsor}) for n in chain_[1:]]
    data, compute = BOUNTY * 5000 // 10_000, BOUNTY * 3000 // 10_000
    paid = _paid(txs, mallory)
    # (short by the rounding of six weights and claims)
    assert 0 <= net(data * 100 // 8000) + net(compute * 100 // 8000) - paid <= 1000
    assert paid <= net((data + compute) * 100 // 8000) + 6
    refund = sum(e["amount"] for e in events(txs[0], "PayoutCredited") if e["kind"] == 3)
    assert refund >= compute * 7900 // 8000
    assert tree.balance() == owed_to_everyone(tree)


# ──────────────────────────── finalize cut-off ────────────────────────────


def test_the_scorers_finalize_never_cuts_off_a_node_revealed_after_it_decided(
    tree, market, sponsor, architect, alice, bob, mallory, oracle
):
    """The oracle decides to finalize leaving the one node it gave up on (alice's: its files
    never came); in the blocks before its transaction is mined, bob commits in time and reveals.
    Finalize used to be mined anyway and cut bob's node off unscored, its fee burned. Now the
    oracle's call names the count it saw and is refused; bob's node is scored and paid back its
    stake, and his fee reaches the pool: he loses nothing to the race."""
    task_id, _, given_up = _contested_task(
        tree, market, sponsor, architect, alice, mallory, 8000, chain.time() + DAY
    )
    seen = tree.getTask(task_id).dict()["pendingNodes"]
    assert seen == 1
    arch = tree.getNode(given_up).dict()["parentId"]
    late = market.submit(task_id, bob, arch)  # committed before the deadline, revealed at once
    with reverts(f"PendingChanged: {task_id}, 2, 1"):
        tree.finalizeLeaving(task_id, seen, {"from": oracle})
    market.score(task_id, {late: 7000})
    assert tree.pendingWithdrawals(bob) == STAKE  # scored above its parent: the stake is back
    fin = tree.finalizeLeaving(task_id, 1, {"from": oracle})
    assert fin.events["TaskFinalized"]["winnerNodeId"] != late  # it did not beat the best
    assert tree.getNode(late).dict()["status"] == 1  # scored, not cut off
    assert tree.getNode(given_up).dict()["status"] == 0  # the one it gave up on, as it decided


def _contested_task(tree, market, sponsor, architect, alice, rival, target, deadline):
    """`rival`'s node scored at 80%, alice's better node (90% once scored) submitted in time and
    still pending: finalizing now would make the rival's node the winner."""
    task_id = market.create_task(sponsor, target=target, deadline=deadline)
    arch = market.propose(task_id, architect)
    hers = market.submit(task_id, rival, arch)
    market.score(task_id, {arch: 5000, hers: 8000})
    theirs = market.submit(task_id, alice, arch)
    assert tree.getTask(task_id).dict()["pendingNodes"] == 1
    return task_id, hers, theirs


@pytest.mark.parametrize("target", [9900, 8000], ids=["target-missed", "target-reached"])
def test_finalize_cut_off_waits_for_pending_work(
    tree, market, sponsor, architect, alice, bob, mallory, oracle, target
):
    """Three contested tasks with one deadline D (brought forward to REVEAL_WINDOW after the
    rival's score where it reached the target). mallory cannot finalize while alice's node is
    pending: not a second after the deadline (nor before it, when the rival's node already reached
    the target), and still not at deadline + FINALIZE_GRACE; the oracle may as soon as the task
    is due; anyone may at deadline + FINALIZE_GRACE + 1."""
    grace = tree.FINALIZE_GRACE()
    assert grace == DAY
    deadline = chain.time() + DAY
    cut_off, by_oracle, after_grace = [
        _contested_task(tree, market, sponsor, architect, alice, rival, target, deadline)
        for rival in (mallory, bob, mallory)
    ]
    due = {t[0]: tree.getTask(t[0]).dict()["deadline"] for t in (cut_off, by_oracle, after_grace)}
    window = tree.REVEAL_WINDOW()
    if target == 8000:
        assert all(d < deadline and d <= chain.time() + window for d in due.values())
    else:
        assert set(due.values()) == {deadline}
    purse = Purse(tree, mallory)

    def work_pending(task_id):
        return f"WorkPending: {task_id}, 1, {due[task_id] + grace}"

    if target == 8000:  # due at once: the rival's node reached the target
        with reverts(work_pending(cut_off[0])):
            tree.finalize(cut_off[0], {"from": mallory})
        oracle_tx = tree.finalizeLeaving(by_oracle[0], 1, {"from": oracle})  # it need not wait
        assert oracle_tx.timestamp <= due[by_oracle[0]]
    tx = mined_at(due[cut_off[0]] + 1, tree.finalize, cut_off[0], sender=mallory)
    assert (tx.status, tx.revert_msg) == (0, work_pending(cut_off[0]))
    if target == 9900:
        oracle_tx = mined_at(
            due[by_oracle[0]] + 2, tree.finalizeLeaving, by_oracle[0], 1, sender=oracle
        )
        assert oracle_tx.status == 1
    # the oracle's early finalize made bob's node the winner (alice's files may never have come);
    # alice takes her stake back
    assert oracle_tx.events["TaskFinalized"]["winnerNodeId"] == by_oracle[1]
    tree.reclaimStake(by_oracle[2], {"from": alice})

    # the contested task is settled by the oracle's score: alice's node wins and is paid its raise
    # over mallory's (1000 of the 4000 bps raised: 0.125 ETH of the 0.5 ETH data share); the failed
    # finalizes gained mallory nothing (her node, off the path, had its stake back when scored)
    market.score(cut_off[0], {cut_off[2]: 9000})
    tx = tree.finalize(cut_off[0], {"from": mallory})
    assert tx.events["TaskFinalized"]["winnerNodeId"] == cut_off[2]
    assert (credited(tx, alice), credited(tx, mallory)) == (net(125 * 10**15), 0)
    assert purse.gain() == 0
    # her node was the best before alice's, and claims its own raise (3000 bps) off the path:
    # 0.375 ETH of data to her, 0.15 ETH of expertise to the architect
    claim = tree.claim(cut_off[1], {"from": alice})
    assert (credited(claim, mallory), credited(claim, architect)) == (
        net(375 * 10**15),
        net(15 * 10**16),
    )

    # a day after the deadline the oracle has had its chance: anyone may end the task
    end = due[after_grace[0]] + grace
    tx = mined_at(end, tree.finalize, after_grace[0], sender=mallory)
    assert (tx.status, tx.revert_msg) == (0, work_pending(after_grace[0]))
    tx = mined_at(end + 1, tree.finalize, after_grace[0], sender=mallory)
    assert tx.status == 1 and tx.events["TaskFinalized"]["winnerNodeId"] == after_grace[1]
    tree.reclaimStake(after_grace[2], {"from": alice})
    assert tree.balance() == owed_to_everyone(tree)


def test_a_commitment_made_in_time_is_never_cut_off_by_a_finalize(
    tree, market, sponsor, alice, mallory, oracle
):
    """The second attack round: once mallory's architecture reached the target, anyone could
    finalize between a stranger's commitment and its reveal, and a better child committed in time
    never became a node. Now a commitment counts as open work: nobody (mallory, the sponsor, the
    oracle) finalizes while it is open and its reveal window lasts, so alice reveals, even after
    the deadline the target brought forward, her child is scored and wins, and mallory is paid
    only what her architecture earns on alice's path. The window is bounded: a commitment never
    revealed (mallory's stall) holds the finalize until REVEAL_WINDOW after the deadline and no
    longer, and costs its fee."""
    fee = 10**15
    price = STAKE + fee
    window = tree.REVEAL_WINDOW()
    task_id = market.create_task(sponsor, fee=fee)
    arch = market.propose(task_id, mallory, value=price)
    _, salt, _ = market.commit(task_id, alice, arch, cid(11), value=price)
    scored = market.score(task_id, {arch: 9500})
    deadline = tree.getTask(task_id).dict()["deadline"]
    assert events(scored, "DeadlineBroughtForward")[0]["deadline"] == deadline
    assert deadline == scored.timestamp + window  # the target brought it forward
    refused = f"RevealsOpen: {task_id}, 1, {deadline + window}"
    for who in (mallory, sponsor, oracle):
        with reverts(refused):
            tree.finalize(task_id, {"from": who})
    chain.sleep(deadline - chain.time() + 60)
    chain.mine()
    with reverts("DeadlinePassed"):  # no new commitment after the deadline...
        market.commit(task_id, mallory, arch, cid(12), value=price)
    # ...but one made in time is revealed in the window after it
    node = tree.revealSubmission(task_id, arch, cid(11), 0, salt, {"from": alice}).return_value
    market.score(task_id, {node: 9900})
    victim = Purse(tree, alice)
    tx = tree.finalize(task_id, {"from": mallory})
    assert tx.events["TaskFinalized"]["winnerNodeId"] == node
    data_share = tx.events["TaskFinalized"]["pool"] * 5000 // 10_000  # all the gain is hers
    assert credited(tx, alice, task_id) == net(data_share) == victim.gain()

    # the stall: mallory's commitment that never opens holds a finalize for the window, no more
    stalled = market.create_task(sponsor, fee=fee)
    a2 = market.propose(stalled, alice, value=price)
    purse = Purse(tree, mallory)
    junk, _, _ = market.commit(stalled, mallory, a2, cid(13), value=price)
    market.score(stalled, {a2: 9500})
    close = tree.getTask(stalled).dict()["deadline"] + window
    tx = mined_at(close, tree.finalize, stalled, sender=alice)
    assert (tx.status, tx.revert_msg) == (0, f"RevealsOpen: {stalled}, 1, {close}")
    tx = mined_at(close + 1, tree.finalize, stalled, sender=alice)
    assert tx.status == 1
    tree.reclaimCommitment(junk, {"from": mallory})
    assert purse.gain() == -fee  # the stall cost her the fee, and won nothing


def test_a_commitment_held_back_as_a_free_option_pays_its_fee(
    tree, market, sponsor, architect, mallory
):
    """mallory commits early to designs anyone could guess, to reveal one only if a real
    architect's reveal shows the same design (the first reveal of a design holds it; found by
    session 10's attacker review). Before, every unrevealed commitment got its stake and fee back
    after finalize, so the option cost her gas only. Now finalize waits for every commitment's
    reveal, so one never revealed was left by choice: its stake comes back, its fee is burned,
    and each guess costs her its fee, the last one before the close as much as the first."""
    fee = 10**15
    price = STAKE + fee
    task_id = market.create_task(sponsor, fee=fee)
    purse = Purse(tree, mallory)
    guesses = [market.commit(task_id, mallory, 0, cid(700 + i), value=price)[0] for i in range(3)]
    arch = market.propose(task_id, architect, value=price)
    market.score(task_id, {arch: 9500})
    guesses.append(market.commit(task_id, mallory, arch, cid(710), value=price)[0])
    past_reveals(tree, task_id)
    tree.finalize(task_id, {"from": sponsor})
    for c in guesses:
        r = tree.reclaimCommitment(c, {"from": mallory})
        assert credited(r, mallory) == STAKE
        assert credited(r, ZERO_ADDRESS) == fee
    assert purse.gain() == -4 * fee  # each guess held back cost its fee


def test_a_bait_parent_costs_its_children_nothing(
    tree, reputation, market, sponsor, alice, mallory, oracle
):
    """mallory posts an architecture she knows the oracle will reject, and alice trains a child
    of it before it is scored. The oracle rejects the bait (mallory forfeits her stake) and the
    child as parent-rejected: alice, never judged on her own work, gets her stake back and keeps
    her reputation. Before, her stake joined the pool."""
    task_id = market.create_task(sponsor)
    bait = market.propose(task_id, mallory)
    victim = Purse(tree, alice)
    rep = reputation.scoreOf(alice)
    child = market.submit(task_id, alice, bait)
    tree.rejectNodes(task_id, [bait], [6], {"from": oracle})  # invalid-spec
    tx = tree.rejectNodes(task_id, [child], [tree.PARENT_REJECTED()], {"from": oracle})
    assert credited(tx, alice, task_id) == STAKE and not events(tx, "StakeForfeited")
    assert victim.gain() == 0 and reputation.scoreOf(alice) == rep
    assert tree.getTask(task_id).dict()["forfeited"] == STAKE  # the bait's only


# ─────────────────────────── reputation farming ───────────────────────────


def _farm(tree, market, sponsor, author, bounty=1000):
    """A task of `bounty` wei whose whole 32-node path (architecture + 31 trained nodes, each 1%
    better, on a dataset `author` published, with verified compute) is `author`'s."""
    task_id = market.create_task(sponsor, bounty=bounty, stake=0, target=4100)
    dataset = market.publish(task_id, author)
    parent = market.propose(task_id, author, value=0)
    path = [parent]
    for _ in range(tree.MAX_DEPTH() - 1):
        parent = market.submit(task_id, author, parent, dataset_id=dataset, value=0)
        path.append(parent)
    market.score(
        task_id, {n: 1000 + 100 * i for i, n in enumerate(path)}, {n: 1000 for n in path[1:]}
    )
    tx = tree.finalize(task_id, {"from": sponsor})
    assert tx.events["TaskFinalized"]["winnerNodeId"] == path[-1]
    assert tree.getNode(path[-1]).dict()["depth"] == tree.MAX_DEPTH()
    return tx


def _farm_credits(bounty):
    """What _farm's finalize credits by the payout rule, winner first, zero credits left out, and
    the refund: each trained node's data (a 100 bps raise of the 3100 raised) and compute (a raise
    at depth k gives each of the k trained nodes on its path 1/k of its weight, all ops being
    equal), then the expertise."""
    data, compute, expertise = (bounty * bps // 10_000 for bps in (5000, 3000, 2000))
    unit = 10**12  # WEIGHT_PER_BPS
    weight = {j: sum(100 * unit // k for k in range(j, 32)) for j in range(1, 32)}
    credits = []
    for j in range(31, 0, -1):
        credits += [data * 100 // 3100, compute * weight[j] // (3100 * unit)]
    credits = [c for c in [*credits, expertise] if c]
    return credits, bounty - sum(credits)


@pytest.mark.parametrize("bounty", [1000, ETHER], ids=["dust", "one-ether"])
def test_self_sponsored_path_earns_its_sponsor_no_reputation(
    tree, reputation, market, mallory, bounty
):
    """mallory pays herself through 63 payouts (31 data, 31 compute, 1 expertise): dust earns
    nothing, and neither does a whole ether of her own money (the old rule, +10 per payout, gave
    her 630 points either way)."""
    purse = Purse(tree, mallory)
    tx = _farm(tree, market, mallory, mallory, bounty)
    # data 50% by raises, compute 30% by the raises' weights, expertise 20%; what rounding leaves
    # back to her as sponsor
    credits, refund = _farm_credits(bounty)
    assert [e["amount"] for e in tx.events["PayoutCredited"]] == [*credits, refund]
    assert {e["account"] for e in tx.events["PayoutCredited"]} == {mallory}
    assert "ReputationChanged" not in tx.events
    assert reputation.scoreOf(mallory) == 0
    assert purse.gain() == 0


def test_sybil_paid_dust_earns_no_reputation(tree, reputation, market, mallory, sybil):
    """mallory sponsors 1000 wei for her second account: of the 979 wei it is paid, 2 are the
    levy, far below the price of a point."""
    tx = _farm(tree, market, mallory, sybil)
    credits, refund = _farm_credits(1000)
    assert (sum(credits), refund) == (979, 21)
    # the levy is taken credit by credit: the credits of 16 wei and less pay none, the 200 of
    # expertise 2
    assert (credited(tx, sybil), credited(tx, mallory), credited(tx, ZERO_ADDRESS)) == (977, 21, 2)
    assert "ReputationChanged" not in tx.events
    assert (reputation.scoreOf(mallory), reputation.scoreOf(sybil)) == (0, 0)


def test_honest_contributors_earn_a_point_per_levy_price_once_per_task(
    tree, reputation, market, sponsor, architect, alice, publisher
):
    """alice authors four nodes of the winning path and is paid four times (0.35 ETH), the
    publisher of the dataset three of them trained on three times (0.375 ETH), the architect
    0.2 ETH: 1% of each credit is burned, and each earns one Reputation change per task, a point
    per microether of its levies."""
    task_id = market.create_task(sponsor, target=9000)
    dataset = market.publish(task_id, publisher)
    arch = market.propose(task_id, architect)
    n1 = market.submit(task_id, alice, arch)  # private data
    n2 = market.submit(task_id, alice, n1, dataset_id=dataset)
    n3 = market.submit(task_id, alice, n2, dataset_id=dataset)
    n4 = market.submit(task_id, alice, n3, dataset_id=dataset)
    market.score(
        task_id,
        {arch: 5000, n1: 6000, n2: 7000, n3: 8000, n4: 9000},
        {n2: 1000, n3: 1000, n4: 2000},
    )
    tx = tree.finalize(task_id, {"from": sponsor})
    # data 0.5 ETH, 1000 bps each → 0.125 ETH per node: alice n1, the publisher n2..n4;
    # compute 0.3 ETH, 0.075 per raise, each among the replayed training on its path by ops: n1's
    # raise has none (its part is refunded), n2's all to n2, n3's half to n2 and n3, n4's to n4,
    # n3, n2 by 2 : 1 : 1 → weights n2 1750, n3 750, n4 500 of 4000 → alice 0.13125 + 0.05625 +
    # 0.0375; expertise 0.2 ETH; each less its 1% levy, the levies (0.00925 ETH) burned, and
    # 0.075 ETH back to the sponsor
    assert [(e["account"], e["amount"]) for e in tx.events["PayoutCredited"]] == [
        (publisher, net(125 * 10**15)),
        (alice, net(375 * 10**14)),
        (publisher, net(125 * 10**15)),
        (alice, net(5625 * 10**13)),
        (publisher, net(125 * 10**15)),
        (alice, net(13125 * 10**13)),
        (alice, net(125 * 10**15)),
        (architect, net(200 * 10**15)),
        (ZERO_ADDRESS, 925 * 10**13),
        (sponsor, 75 * 10**15),
    ]
    assert [(e["account"], e["delta"]) for e in tx.events["ReputationChanged"]] == [
        (publisher, 3750),
        (alice, 3500),
        (architect, 2000),
    ]
    assert [reputation.scoreOf(a) for a in (alice, publisher, architect, sponsor)] == [
        3500,
        3750,
        2000,
        0,
    ]


def test_reputation_farmed_through_ones_own_accounts_costs_its_price(
    tree, reputation, market, mallory, sybil
):
    """The second attack round farmed 60 points with three self-sponsored tasks for gas alone.
    mallory sponsors three 1 ETH tasks whose whole path is her second account's: the path's pay
    comes back to her, but every point the second account earns cost at least
    REPUTATION_POINT_PRICE, burned; the farm's gain (both accounts, gas given back) is minus the
    levies, and the levies cover the points at the price the docs state."""
    price = tree.REPUTATION_POINT_PRICE()
    purses = [Purse(tree, mallory), Purse(tree, sybil)]
    for _ in range(3):
        _farm(tree, market, mallory, sybil, ETHER)
    points = reputation.scoreOf(sybil)
    loss = -sum(p.gain() for p in purses)
    assert points > 0 and reputation.scoreOf(mallory) == 0
    assert loss == tree.pendingWithdrawals(ZERO_ADDRESS) >= points * price


# ───────────────────────── compute on private data ─────────────────────────


def test_compute_is_paid_only_on_published_data(
    tree, market, sponsor, architect, mallory, publisher, oracle
):
    """mallory trains on the publisher's dataset but declares her own private data, to take the
    data share as well. The oracle cannot pay compute on private data; it can re-attribute the node
    to the dataset its replay reproduced (and to nothing else): mallory ends up exactly where
    declaring the dataset honestly puts her."""
    honest = market.create_task(sponsor, target=9000)
    sly = market.create_task(sponsor, target=9000)
    other = market.create_task(sponsor)
    honest_data = market.publish(honest, publisher)
    sly_data = market.publish(sly, publisher)
    market.publish(other, publisher)
    other_data = market.publish(other, publisher)  # id 2: sly has no dataset 2
    other_arch = market.propose(other, architect)
    on_data = market.submit(other, architect, other_arch, dataset_id=other_data)
    market.score(other, {other_arch: 5000})
    gained = {}

    purse = Purse(tree, mallory)
    arch = market.propose(honest, architect)
    node = market.submit(honest, mallory, arch, dataset_id=honest_data)
    market.score(honest, {arch: 5000, node: 9000}, {node: 1000})
    honest_tx = tree.finalize(honest, {"from": sponsor})
    gained[honest] = purse.gain()

    purse = Purse(tree, mallory)
    arch = market.propose(sly, architect)
    node = market.submit(sly, mallory, arch)  # declared private
    for task_id, node_id, ops, dataset_id, error in [
        (sly, node, 1000, 0, f"ComputeOnPrivateData: {node}"),
        (
            sly,
            node,
            1000,
            other_data,
            f"BadAttribution: {node}, {other_data}",
        ),  # another task's data
        (
            sly,
            arch,
            0,
            sly_data,
            f"BadAttribution: {arch}, {sly_data}",
        ),  # architectures train on nothing
        (other, on_data, 1000, 0, f"BadAttribution: {on_data}, 0"),  # declared published data
        (other, on_data, 1000, sly_data, f"BadAttribution: {on_data}, {sly_data}"),
    ]:
        with reverts(error):
            tree.recordScores(task_id, [(node_id, 9000, ops, dataset_id)], {"from": oracle})
    market.score(sly, {arch: 5000})
    tx = tree.recordScores(sly, [(node, 9000, 1000, sly_data)], {"from": oracle})
    assert tx.events["NodeAttributed"]["datasetId"] == sly_data
    assert tree.getNode(node).dict()["datasetId"] == sly_data
    sly_tx = tree.finalize(sly, {"from": sponsor})
    gained[sly] = purse.gain()

    # both: data 0.5 ETH to the publisher, compute 0.3 ETH to mallory, expertise 0.2 ETH
    for tx in (honest_tx, sly_tx):
        assert [(e["account"], e["amount"], e["kind"]) for e in tx.events["PayoutCredited"]] == [
            (publisher, net(5 * 10**17), 0),
            (mallory, net(3 * 10**17), 1),
            (architect, net(2 * 10**17), 2),
            (ZERO_ADDRESS, 10**16, 6),  # the levies
        ]
    assert gained[honest] == net(3 * 10**17)  # her stake came back when her node was scored
    assert gained[sly] - gained[honest] == 0
