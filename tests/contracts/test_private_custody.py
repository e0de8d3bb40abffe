"""PrivateCustody: who may make a task private, accept custody, commit to shares and hand the
winner over, and what each party is credited. Every attack measures the attacker's gain."""

import pytest
from brownie import PrivateCustody, chain, web3
from conftest import DAY, STAKE, cid, reverts

KEY = b"\x5a" * 32
CUSTODY_STAKE = 3 * 10**16
FEE = 9 * 10**16 + 2  # not a multiple of three: the dealer takes the rounding
WINDOW = 2 * DAY
BOND = 2 * 10**17


@pytest.fixture(scope="module")
def custody(tree, admin, alice, bob, publisher):
    contract = PrivateCustody.deploy(tree, {"from": admin})
    tree.grantRole(tree.CUSTODY_ROLE(), contract, {"from": admin})
    for account in (alice, bob, publisher):
        contract.approve(account, True, {"from": admin})
    return contract


@pytest.fixture(scope="module")
def parties(alice, bob, publisher):
    return alice, bob, publisher  # custodian 0, custodian 1, dealer


def _register(custody, task_id, sponsor, parties, *, fee=FEE, window=WINDOW, stake=CUSTODY_STAKE):
    return custody.register(task_id, *parties, KEY, stake, window, {"from": sponsor, "value": fee})


def _ready(market, custody, sponsor, parties):
    task_id = market.create_task(sponsor, private=True, target=9000)
    _register(custody, task_id, sponsor, parties)
    _accept_all(custody, task_id, parties)
    custody.shareValidation(task_id, cid(1), cid(2), {"from": sponsor})  # the task takes work
    return task_id


def _key(party) -> bytes:
    return bytes([0x60 + party]) * 32


def _accept(custody, task_id, party, key, *, value=CUSTODY_STAKE, terms=None):
    """A party accepts the terms it reads now (or those it read before: `terms`)."""
    terms = custody.termsOf(task_id) if terms is None else terms
    return custody.accept(task_id, terms, key, {"from": party, "value": value})


def _accept_all(custody, task_id, parties):
    for i, party in enumerate(parties):
        _accept(custody, task_id, party, _key(i))


def _won(market, custody, sponsor, parties, architect, trainer):
    """A private task whose winner both custodians committed to, finalized."""
    task_id = _ready(market, custody, sponsor, parties)
    arch = market.propose(task_id, architect)
    node = market.submit(task_id, trainer, arch)
    for index in (0, 1):
        custody.commitShare(node, cid(900 + index), {"from": parties[index]})
    _attest(custody, parties, {arch: 0, node: 9500})
    market.tree.finalize(task_id, {"from": sponsor})
    return task_id, node


def _attest(custody, parties, scores: dict) -> None:
    """Both custodians attest each score, parents first: the only way a private node is scored."""
    for node in sorted(scores):
        for index in (0, 1):
            custody.attest(node, 0, scores[node], {"from": parties[index]})


PUBLIC, AWAITING, CUSTODIED = range(3)  # IBountyTree.Privacy


def _custody(custody, task_id) -> dict:
    return custody.custodyOf(task_id).dict()


def test_a_task_is_private_from_its_creation_and_no_stranger_keeps_it_public(
    market, custody, sponsor, parties, architect, mallory
):
    """The registration race: a task used to turn private only when `register` landed, so a
    stranger who revealed an architecture between the sponsor's two transactions kept it public
    for good (TaskHasWork). Now a task is created private, and takes no commitment until its
    custody is ready and holds the validation rows (so nobody's fee, nor an architect's spec
    uploaded at commit, waits on a registration that may never come: the attacker reviews of
    the first version, which took commitments and refused their reveals); the task turns
    private all the same. What the stranger gains: nothing."""
    fee = 10**15
    task_id = market.create_task(sponsor, private=True, fee=fee)
    assert market.tree.getTask(task_id).dict()["privacy"] == AWAITING
    before = market.tree.balance()
    for data in (cid(77), cid(78)):  # an architecture, or a dataset's commitment: both refused
        with reverts("AwaitingCustody"):
            market.commit(task_id, mallory, 0, data, value=STAKE + fee)
    with reverts("NotSponsor"):
        _register(custody, task_id, mallory, parties)
    with reverts("UnknownTask"):
        _register(custody, 999, sponsor, parties)
    _register(custody, task_id, sponsor, parties)
    with reverts("AlreadyRegistered"):
        _register(custody, task_id, sponsor, parties)
    c = _custody(custody, task_id)
    assert (c["custodian0"], c["custodian1"], c["dealer"]) == parties
    assert c["sponsorKey"] == "0x" + KEY.hex() and c["fee"] == FEE
    # registered and accepted, but no rows shared yet: still nothing taken
    _accept_all(custody, task_id, parties)
    with reverts("AwaitingCustody"):
        market.commit(task_id, mallory, 0, cid(77), value=STAKE + fee)
    assert market.tree.balance() == before  # nothing taken
    custody.shareValidation(task_id, cid(1), cid(2), {"from": sponsor})
    assert market.tree.custodyOf(task_id) == custody.address
    assert market.tree.getTask(task_id).dict()["privacy"] == CUSTODIED
    # from now on it takes work, which its custodians judge
    node = market.submit(task_id, mallory, 0, cid(77), value=STAKE + fee)
    assert market.tree.getNode(node).dict()["status"] == 0  # pending
    # a task created public never turns private, with work or without
    public = market.create_task(sponsor)
    with reverts("NotPrivate"):
        _register(custody, public, sponsor, parties)
    market.propose(public, architect)
    with reverts("NotPrivate"):
        _register(custody, public, sponsor, parties)
    assert market.tree.getTask(public).dict()["privacy"] == PUBLIC


@pytest.mark.parametrize(
    "which", ["same custodians", "dealer is a custodian", "sponsor is a party", "zero"]
)
def test_the_four_parties_are_four_accounts(market, custody, sponsor, parties, which):
    c0, c1, dealer = parties
    named = {
        "same custodians": (c0, c0, dealer),
        "dealer is a custodian": (c0, c1, c1),
        "sponsor is a party": (c0, sponsor, dealer),
        "zero": (c0, c1, "0x" + "00" * 20),
    }[which]
    task_id = market.create_task(sponsor, private=True)
    with reverts("PartiesNotDistinct"):
        _register(custody, task_id, sponsor, named)


def test_terms_out_of_range_are_refused(market, custody, sponsor, parties):
    task_id = market.create_task(sponsor, private=True)
    with reverts("WindowOutOfRange"):
        _register(custody, task_id, sponsor, parties, window=60)
    with reverts("WindowOutOfRange"):
        _register(custody, task_id, sponsor, parties, window=31 * DAY)
    with reverts("ZeroKey"):
        custody.register(task_id, *parties, b"\x00" * 32, 1, WINDOW, {"from": sponsor})


def test_accepting_takes_the_exact_stake_once_from_a_named_party(
    market, custody, sponsor, parties, mallory
):
    task_id = market.create_task(sponsor, private=True)
    _register(custody, task_id, sponsor, parties)
    with reverts("NotAParty"):
        _accept(custody, task_id, mallory, _key(0))
    with reverts("WrongStake"):
        _accept(custody, task_id, parties[0], _key(0), value=CUSTODY_STAKE - 1)
    for party in parties:  # a custodian says what to seal to; every party what links prove
        with reverts("ZeroKey"):
            _accept(custody, task_id, party, b"\x00" * 32)
    _accept(custody, task_id, parties[0], _key(0))
    with reverts("AlreadyAccepted"):
        _accept(custody, task_id, parties[0], _key(0))
    c = _custody(custody, task_id)
    assert c["accepted"] == 1 and c["key0"] == "0x" + _key(0).hex()  # bit 0: custodian 0
    _accept(custody, task_id, parties[2], _key(2))
    assert _custody(custody, task_id)["key2"] == "0x" + _key(2).hex()  # the dealer's link key


def test_a_party_accepting_after_the_deadline_takes_no_part_of_the_fee(
    market, custody, sponsor, parties, outsider
):
    """The dealer waited for the deadline, then accepted: the custody, which could never hold
    anything, counted as served, and the three took the fee (the attacker review of
    private-from-creation). Accepting is refused once the task cannot take work; the fee goes
    back to the sponsor, each stake to its party."""
    task_id = market.create_task(sponsor, private=True, deadline_in=DAY)
    _register(custody, task_id, sponsor, parties)
    for i in (0, 1):
        _accept(custody, task_id, parties[i], _key(i))
    chain.sleep(DAY + 1)
    chain.mine()
    with reverts("TaskClosed"):
        _accept(custody, task_id, parties[2], _key(2))
    market.tree.finalize(task_id, {"from": outsider})
    custody.settle(task_id, {"from": outsider})
    assert custody.pendingWithdrawals(sponsor) == FEE
    assert [custody.pendingWithdrawals(p) for p in parties] == [CUSTODY_STAKE, CUSTODY_STAKE, 0]


def test_only_a_custodian_of_the_nodes_task_commits_once_and_only_when_custody_is_ready(
    market, custody, sponsor, parties, architect, alice, mallory
):
    task_id = market.create_task(sponsor, private=True)
    _register(custody, task_id, sponsor, parties)
    with reverts("AwaitingCustody"):  # no node before custody is ready and holds the rows
        market.propose(task_id, architect)
    _accept_all(custody, task_id, parties)
    custody.shareValidation(task_id, cid(1), cid(2), {"from": sponsor})
    arch = market.propose(task_id, architect)
    for stranger in (mallory, parties[2], sponsor):
        with reverts("NotCustodian"):
            custody.commitShare(arch, cid(1), {"from": stranger})
    with reverts("EmptyCommitment"):
        custody.commitShare(arch, b"\x00" * 32, {"from": parties[0]})
    custody.commitShare(arch, cid(1), {"from": parties[0]})
    with reverts("AlreadyCommitted"):
        custody.commitShare(arch, cid(2), {"from": parties[0]})
    assert custody.commitmentOf(arch, 0) == "0x" + cid(1).hex()
    public = market.create_task(sponsor)
    other = market.propose(public, architect)
    with reverts("NotRegistered"):
        custody.commitShare(other, cid(3), {"from": parties[0]})


def test_both_hand_overs_pay_the_three_and_return_their_stakes(
    market, custody, sponsor, parties, architect, alice, bob, outsider
):
    task_id, _ = _won(market, custody, sponsor, parties, architect, outsider)
    with reverts("NotCustodian"):
        custody.handOver(task_id, cid(7), {"from": outsider})
    custody.handOver(task_id, cid(70), {"from": parties[0]})
    with reverts("AlreadyHandedOver"):
        custody.handOver(task_id, cid(71), {"from": parties[0]})
    with reverts("HandoverOpen"):
        custody.settle(task_id, {"from": outsider})
    tx = custody.handOver(task_id, cid(80), {"from": parties[1]})
    assert "CustodySettled" in tx.events
    third = FEE // 3
    assert custody.pendingWithdrawals(parties[0]) == CUSTODY_STAKE + third
    assert custody.pendingWithdrawals(parties[1]) == CUSTODY_STAKE + third
    assert custody.pendingWithdrawals(parties[2]) == CUSTODY_STAKE + FEE - 2 * third
    assert custody.pendingWithdrawals(sponsor) == 0
    assert custody.balance() == FEE + 3 * CUSTODY_STAKE
    c = _custody(custody, task_id)
    assert (c["sealed0"], c["sealed1"]) == ("0x" + cid(70).hex(), "0x" + cid(80).hex())
    with reverts("AlreadySettled"):
        custody.settle(task_id, {"from": outsider})
    before = custody.balance()
    tx = custody.withdraw({"from": parties[2]})
    assert before - custody.balance() == CUSTODY_STAKE + FEE - 2 * third
    assert tx.events["Withdrawn"]["amount"] == CUSTODY_STAKE + FEE - 2 * third
    with reverts("NothingToWithdraw"):
        custody.withdraw({"from": parties[2]})


def test_a_custodian_that_does_not_deliver_loses_its_stake_and_third_to_the_sponsor(
    market, custody, sponsor, parties, architect, outsider
):
    task_id, _ = _won(market, custody, sponsor, parties, architect, outsider)
    assert custody.handoverDeadline(task_id) == 0  # the window opens when finalization is seen
    tx = custody.handOver(task_id, cid(70), {"from": parties[0]})
    deadline = custody.handoverDeadline(task_id)
    assert deadline == tx.timestamp + WINDOW
    chain.sleep(deadline - chain.time() + 1)
    chain.mine()
    with reverts("HandoverClosed"):
        custody.handOver(task_id, cid(80), {"from": parties[1]})
    custody.settle(task_id, {"from": outsider})
    third = FEE // 3
    assert custody.pendingWithdrawals(sponsor) == CUSTODY_STAKE + third
    assert custody.pendingWithdrawals(parties[1]) == 0
    assert custody.pendingWithdrawals(parties[0]) == CUSTODY_STAKE + third
    assert custody.pendingWithdrawals(outsider) == 0  # settling earns the caller nothing
    assert custody.balance() == FEE + 3 * CUSTODY_STAKE


def test_a_winner_without_a_commitment_cannot_be_handed_over(
    market, custody, sponsor, parties, architect, outsider
):
    task_id = _ready(market, custody, sponsor, parties)
    arch = market.propose(task_id, architect)
    node = market.submit(task_id, outsider, arch)
    custody.commitShare(node, cid(5), {"from": parties[0]})
    _attest(custody, parties, {arch: 0, node: 9500})
    market.tree.finalize(task_id, {"from": sponsor})
    with reverts("NoCommitment"):
        custody.handOver(task_id, cid(81), {"from": parties[1]})


def test_no_winner_pays_custody_served_and_nothing_is_handed_over(
    market, custody, sponsor, parties, outsider
):
    task_id = _ready(market, custody, sponsor, parties)
    with reverts("NotFinalized"):
        custody.settle(task_id, {"from": outsider})
    chain.sleep(DAY + 1)
    market.tree.finalize(task_id, {"from": outsider})
    with reverts("NoWinner"):
        custody.handOver(task_id, cid(1), {"from": parties[0]})
    custody.settle(task_id, {"from": outsider})
    assert sum(custody.pendingWithdrawals(p) for p in parties) == FEE + 3 * CUSTODY_STAKE
    assert custody.pendingWithdrawals(sponsor) == 0


def test_custody_never_started_refunds_the_fee_and_returns_each_stake(
    market, custody, sponsor, parties, outsider
):
    task_id = market.create_task(sponsor, private=True)
    _register(custody, task_id, sponsor, parties)
    _accept(custody, task_id, parties[0], _key(0))
    with reverts("CustodyNotReady"):
        custody.settle(task_id, {"from": outsider})
    chain.sleep(DAY + 1)
    chain.mine()
    custody.settle(task_id, {"from": outsider})
    assert custody.pendingWithdrawals(sponsor) == FEE
    assert custody.pendingWithdrawals(parties[0]) == CUSTODY_STAKE
    with reverts("AlreadySettled"):
        _accept(custody, task_id, parties[1], _key(1))


def test_a_sponsor_withdraws_a_custody_a_party_never_accepts_and_registers_another(
    market, custody, sponsor, parties, architect, outsider, mallory
):
    """A named party that never accepted kept the task, its bounty and the fee waiting until
    the deadline. The sponsor withdraws a custody not ready: the fee comes back to it, each
    stake to whoever staked it (nothing more to anyone), and it registers another."""
    task_id = market.create_task(sponsor, private=True)
    _register(custody, task_id, sponsor, parties)
    _accept(custody, task_id, parties[0], _key(0))
    _accept(custody, task_id, parties[2], _key(2))  # custodian 1 never accepts
    for who in (mallory, parties[0]):
        with reverts("NotSponsor"):
            custody.withdrawCustody(task_id, {"from": who})
    escrow_before = custody.balance()
    custody.withdrawCustody(task_id, {"from": sponsor})
    assert custody.pendingWithdrawals(sponsor) == FEE
    assert [custody.pendingWithdrawals(p) for p in parties] == [CUSTODY_STAKE, 0, CUSTODY_STAKE]
    assert custody.balance() == escrow_before  # credited, not sent: pull payments
    assert int(_custody(custody, task_id)["custodian0"], 16) == 0
    with reverts("NotRegistered"):
        custody.withdrawCustody(task_id, {"from": sponsor})
    # another custody: the dealer becomes custodian 1, the old custodian 1 is left out
    others = (parties[0], parties[2], outsider)
    custody.approve(outsider, True, {"from": custody.admin()})
    _register(custody, task_id, sponsor, others, fee=0)
    _accept_all(custody, task_id, others)
    with reverts("CustodyReady"):
        custody.withdrawCustody(task_id, {"from": sponsor})
    custody.shareValidation(task_id, cid(1), cid(2), {"from": sponsor})
    node = market.propose(task_id, architect)
    assert market.tree.getNode(node).dict()["status"] == 0  # the task takes work
    # what the contract holds is the new custody's stakes, plus what the first one credited
    credited = sum(custody.pendingWithdrawals(a) for a in (*parties, outsider, sponsor))
    assert custody.balance() == credited + 3 * CUSTODY_STAKE
    custody.approve(outsider, False, {"from": custody.admin()})


def test_an_accept_sent_for_withdrawn_terms_binds_to_nothing(market, custody, sponsor, parties):
    """The attack that withdrew the first version of withdrawal: between a party's reading of
    the terms and its accept landing, the sponsor withdraws and registers others (the party in
    another role, no fee), and the accept, sent for the first terms, bound the party to the
    second. An accept names the terms it read: it is refused, nothing is staked."""
    task_id = market.create_task(sponsor, private=True)
    _register(custody, task_id, sponsor, parties)
    read = custody.termsOf(task_id)  # custodian 1 reads the terms: a third of FEE, custodian 1
    custody.withdrawCustody(task_id, {"from": sponsor})
    swapped = (parties[1], parties[0], parties[2])  # custodian 1 is now custodian 0
    _register(custody, task_id, sponsor, swapped, fee=0)
    assert custody.termsOf(task_id) != read
    escrow = custody.balance()
    with reverts("TermsChanged"):
        _accept(custody, task_id, parties[1], _key(1), terms=read)
    assert custody.balance() == escrow and _custody(custody, task_id)["accepted"] == 0
    # the terms it now reads (every field counts: the same parties and fee, another window)
    for changed in ({"fee": 0, "window": WINDOW + 1}, {"fee": 1}, {"stake": CUSTODY_STAKE + 1}):
        now = custody.termsOf(task_id)
        custody.withdrawCustody(task_id, {"from": sponsor})
        _register(custody, task_id, sponsor, swapped, **changed)
        assert custody.termsOf(task_id) != now
    read = custody.termsOf(task_id)
    custody.withdrawCustody(task_id, {"from": sponsor})
    _register(custody, task_id, sponsor, swapped, stake=CUSTODY_STAKE + 1)  # the same terms
    _accept(custody, task_id, parties[1], _key(1), terms=read, value=CUSTODY_STAKE + 1)
    assert _custody(custody, task_id)["accepted"] == 1


def test_one_tasks_custody_never_pays_from_anothers(
    market, custody, sponsor, parties, architect, outsider
):
    """Two private tasks; the first settles with a forfeit; the contract still holds every wei
    the second escrows, and the credits of the first are exactly what it was paid."""
    first, _ = _won(market, custody, sponsor, parties, architect, outsider)
    second = _ready(market, custody, sponsor, parties)
    custody.noteFinalized(first, {"from": outsider})
    chain.sleep(custody.handoverDeadline(first) - chain.time() + 1)
    chain.mine()
    custody.settle(first, {"from": outsider})
    credited = sum(custody.pendingWithdrawals(a) for a in (*parties, sponsor))
    assert credited == FEE + 3 * CUSTODY_STAKE  # the first task's escrow, no more
    assert custody.balance() - credited == FEE + 3 * CUSTODY_STAKE  # the second's, intact
    assert _custody(custody, second)["accepted"] == 7


def test_stake_amounts_do_not_overflow(market, custody, sponsor, parties):
    task_id = market.create_task(sponsor, private=True)
    with reverts("AmountTooLarge"):
        _register(custody, task_id, sponsor, parties, stake=2**96)
    assert STAKE  # the BountyTree stake is a different one
    assert web3.eth.get_balance(custody.address) == 0


def test_a_score_is_recorded_only_when_both_custodians_attest_the_same(
    market, custody, sponsor, parties, architect, outsider, mallory
):
    task_id = _ready(market, custody, sponsor, parties)
    arch = market.propose(task_id, architect)
    node = market.submit(task_id, outsider, arch)
    for index in (0, 1):  # a parent is scored before its child
        custody.attest(arch, 0, 0, {"from": parties[index]})
    for stranger in (mallory, parties[2], sponsor):
        with reverts("NotCustodian"):
            custody.attest(node, 0, 5000, {"from": stranger})
    with reverts("BadAttestation"):
        custody.attest(node, 0, 10_001, {"from": parties[0]})
    with reverts("BadAttestation"):
        custody.attest(node, 1, 0, {"from": parties[0]})
    with reverts("BadAttestation"):
        custody.attest(node, 2, 1, {"from": parties[0]})
    custody.attest(node, 0, 5000, {"from": parties[0]})
    with reverts("AlreadyAttested"):
        custody.attest(node, 0, 5000, {"from": parties[0]})
    assert market.tree.getNode(node)[6] == 0  # still pending: one custodian decides nothing
    tx = custody.attest(node, 0, 4900, {"from": parties[1]})
    assert "AttestationsDiffer" in tx.events and market.tree.getNode(node)[6] == 0
    custody.attest(node, 1, 8, {"from": parties[1]})  # a score and a rejection differ too
    tx = custody.attest(node, 0, 5000, {"from": parties[0]})
    assert "AttestationsDiffer" in tx.events and market.tree.getNode(node)[6] == 0
    assert custody.attestationOf(node, 0) == 0 and custody.attestationOf(node, 1) == 0
    custody.attest(node, 0, 5000, {"from": parties[1]})
    tx = custody.attest(node, 0, 5000, {"from": parties[0]})
    scored = tx.events["NodeScored"]
    assert (scored["nodeId"], scored["accuracyBps"], scored["verifiedOps"]) == (node, 5000, 0)
    with reverts("NodeNotPending"):
        custody.attest(node, 0, 5000, {"from": parties[1]})


def test_both_custodians_reject_a_node_they_cannot_train(
    market, custody, sponsor, parties, architect, outsider
):
    task_id = _ready(market, custody, sponsor, parties)
    arch = market.propose(task_id, architect)
    node = market.submit(task_id, outsider, arch)
    custody.attest(node, 1, 8, {"from": parties[0]})
    # the other custodian found its share of the files missing: two rejections agree
    tx = custody.attest(node, 1, 1, {"from": parties[1]})
    assert tx.events["NodeRejected"]["reason"] == 8
    assert "StakeForfeited" in tx.events


def test_a_custodian_that_rejects_an_honest_node_cannot_have_its_stake_forfeited(
    market, custody, sponsor, parties, architect, outsider, reputation
):
    """A deviating custodian says its share of an honest node is corrupt, a fault only it could
    see; the other, whose share is sound, follows as UNCONFIRMED (a node one custodian cannot
    train would hold up the task). The node's stake used to be forfeited to the pool: now it is
    returned and its author's reputation kept, so the rejection takes nothing from the author
    but its chance, whichever custodian speaks first (third attacker review: a deviating
    custodian that spoke first had a later missing share of the other's forfeit the stake). Nor
    does a corrupt said on a child whose parent just fell: the other's parent-rejected stands
    (second attacker review). And a custodian cannot hand a faulty node its stake back: an
    UNCONFIRMED beside a fault both could check spares nothing (an architecture's files are
    public: only missing is one custodian's alone), and parent-rejected is refused while the
    parent stands."""
    task_id = _ready(market, custody, sponsor, parties)
    tree = market.tree
    arch = market.propose(task_id, architect)
    _attest(custody, parties, {arch: 0})
    honest, late, missing, unfit, unfit_late = (
        market.submit(task_id, outsider, arch) for _ in range(5)
    )
    owed, points = tree.pendingWithdrawals(outsider), reputation.scoreOf(outsider)
    forfeited = tree.getTask(task_id).dict()["forfeited"]

    def spared(node: int, first: int, second: int) -> bool:
        """Whether `node`, rejected `first` then `second`, kept its stake (and no more)."""
        before = tree.pendingWithdrawals(outsider)
        custody.attest(node, 1, first, {"from": parties[0]})
        tx = custody.attest(node, 1, second, {"from": parties[1]})
        kept = tree.pendingWithdrawals(outsider) - before
        assert kept in (0, STAKE) and ("StakeForfeited" in tx.events) == (kept == 0)
        return kept == STAKE

    assert spared(honest, 8, tree.UNCONFIRMED()) and tree.UNCONFIRMED() == 15
    assert tree.getNode(honest).dict()["status"] == 2  # rejected, as unconfirmed
    assert reputation.scoreOf(outsider) == points  # the gain of the deviation: nothing
    assert tree.getTask(task_id).dict()["forfeited"] == forfeited
    assert tree.pendingWithdrawals(outsider) == owed + STAKE
    assert spared(late, tree.UNCONFIRMED(), 8) and spared(missing, tree.UNCONFIRMED(), 1)
    assert not spared(unfit, 12, tree.UNCONFIRMED())  # unfit-spec: both could check it
    assert not spared(unfit_late, tree.UNCONFIRMED(), 12)
    # an architecture's files are public: corrupt is for both to see, but one custodian's store
    # may miss them in time where the other's did not (final attacker review: the two honest
    # custodians then disagreed forever, and the task waited for its grace day)
    corrupt, missed = market.propose(task_id, outsider), market.propose(task_id, outsider)
    assert not spared(corrupt, 8, tree.UNCONFIRMED())
    assert spared(missed, 1, tree.UNCONFIRMED())
    # a bait parent falls; a deviating custodian says its child is corrupt, the other follows
    # the parent
    bait = market.propose(task_id, architect)
    child = market.submit(task_id, outsider, bait)
    with reverts("BadAttestation"):  # not while the parent stands
        custody.attest(child, 1, tree.PARENT_REJECTED(), {"from": parties[1]})
    with reverts("BadAttestation"):  # nor for an architecture
        custody.attest(bait, 1, tree.PARENT_REJECTED(), {"from": parties[1]})
    custody.attest(bait, 1, 8, {"from": parties[0]})
    custody.attest(bait, 1, 8, {"from": parties[1]})
    assert spared(child, 8, tree.PARENT_REJECTED())


def test_a_node_a_custodian_could_not_train_or_score_in_time_keeps_its_stake_whatever_the_other_says(
    market, custody, sponsor, parties, architect, outsider, reputation
):
    """An honest custodian that could not train a node within its budget twice says so first
    (TOO_SLOW, 16). As UNCONFIRMED, a deviating other could then name a fault both could check,
    and the pair recorded that fault: the stake forfeited and the author's reputation taken
    (attacker review). TOO_SLOW beside any reason, in either order, records TOO_SLOW and
    returns the stake. So it does of a node both custodians committed to, architecture or
    trained, that could not be scored in time: nothing is found at fault once both committed."""
    task_id = _ready(market, custody, sponsor, parties)
    tree = market.tree
    arch = market.propose(task_id, architect)
    _attest(custody, parties, {arch: 0})
    points = reputation.scoreOf(outsider)
    for first, second in ((16, 13), (12, 16), (16, 8), (16, 16)):
        node = market.submit(task_id, outsider, arch)
        before = tree.pendingWithdrawals(outsider)
        custody.attest(node, 1, first, {"from": parties[0]})
        tx = custody.attest(node, 1, second, {"from": parties[1]})
        assert tx.events["NodeRejected"]["reason"] == 16 and "StakeForfeited" not in tx.events
        assert tree.pendingWithdrawals(outsider) - before == STAKE
    assert reputation.scoreOf(outsider) == points
    for node, author in ((market.submit(task_id, outsider, arch), outsider),
                         (market.propose(task_id, architect), architect)):  # fmt: skip
        points, before = reputation.scoreOf(author), tree.pendingWithdrawals(author)
        for i in (0, 1):
            custody.commitShare(node, cid(900 + 2 * node + i), {"from": parties[i]})
        custody.attest(node, 1, 16, {"from": parties[1]})
        tx = custody.attest(node, 1, 16, {"from": parties[0]})
        assert tx.events["NodeRejected"]["reason"] == 16 and "StakeForfeited" not in tx.events
        assert tree.pendingWithdrawals(author) - before == STAKE
        assert reputation.scoreOf(author) == points
    # said of a training one custodian says ended (its commitment), or of an architecture
    # before its scoring, it would hand a faulty node its stake back
    committed = market.submit(task_id, outsider, arch)
    custody.commitShare(committed, cid(901), {"from": parties[1]})
    for node in (market.propose(task_id, architect), committed):
        with reverts("BadAttestation"):
            custody.attest(node, 1, 16, {"from": parties[0]})


def test_the_oracles_role_does_not_reach_a_private_task(
    market, custody, sponsor, parties, architect, outsider, mallory, oracle, admin
):
    """The oracle's account (or a thief of its key) tries every scorer's call on a private task:
    scoring its accomplice's node at the target, rejecting an honest node to forfeit its stake,
    finalizing leaving the honest node unscored, and a test score after finalize. Each is
    refused, so its gain is nothing: the accomplice's node stays pending and unpaid, the honest
    node is scored through the custodians only. Nor does PrivateCustody's role reach a public
    task, and a task is made private only through registration."""
    task_id = _ready(market, custody, sponsor, parties)
    tree = market.tree
    assert tree.getTask(task_id).dict()["privacy"] == CUSTODIED
    arch = market.propose(task_id, architect)
    honest = market.submit(task_id, outsider, arch)
    accomplice = market.submit(task_id, mallory, arch)
    with reverts("NotScorer"):
        tree.recordScores(task_id, [(arch, 9900, 0, 0)], {"from": oracle})
    with reverts("NotScorer"):
        tree.rejectNodes(task_id, [honest], [6], {"from": oracle})
    _attest(custody, parties, {arch: 0, honest: 9500})
    with reverts("NotScorer"):
        tree.recordScores(task_id, [(accomplice, 9900, 0, 0)], {"from": oracle})
    with reverts("NotScorer"):
        tree.finalizeLeaving(task_id, 1, {"from": oracle})
    # another holder of CUSTODY_ROLE (a second custody contract, say) neither scores the task
    # nor takes it over
    tree.grantRole(tree.CUSTODY_ROLE(), mallory, {"from": admin})
    assert tree.custodyOf(task_id) == custody.address
    with reverts("NotScorer"):
        tree.recordScores(task_id, [(accomplice, 9900, 0, 0)], {"from": mallory})
    with reverts("NotAwaitingCustody"):
        tree.markCustodied(task_id, {"from": mallory})
    tree.revokeRole(tree.CUSTODY_ROLE(), mallory, {"from": admin})
    assert tree.getNode(accomplice).dict()["status"] == 0  # still pending, never recorded
    chain.sleep(2 * DAY + 1)  # the grace over: anyone finalizes, the accomplice's node pending
    tree.finalize(task_id, {"from": sponsor})
    with reverts("NotScorer"):
        tree.recordTestScore(task_id, 10_000, {"from": oracle})
    assert tree.getTask(task_id).dict()["winnerNodeId"] == honest
    assert tree.pendingWithdrawals(mallory) == 0
    # the custody's role reaches only the tasks it marks, and marks only through registration
    public = market.create_task(sponsor)
    p_arch = market.propose(public, architect)
    with reverts("AccessControlUnauthorizedAccount"):
        tree.markCustodied(public, {"from": oracle})
    with reverts("AccessControlUnauthorizedAccount"):
        tree.markCustodied(public, {"from": admin})
    with reverts("NotRegistered"):
        custody.attest(p_arch, 0, 9000, {"from": parties[0]})
    assert tree.getTask(public).dict()["privacy"] == PUBLIC


def test_a_task_the_custody_does_not_hold_cannot_be_scored_through_it(
    market, custody, sponsor, parties, architect, outsider
):
    public = market.create_task(sponsor)
    arch = market.propose(public, architect)
    with reverts("NotRegistered"):
        custody.attest(arch, 0, 9000, {"from": parties[0]})


def test_only_the_sponsor_shares_its_validation_rows_once_custody_is_ready(
    market, custody, sponsor, parties, mallory
):
    task_id = market.create_task(sponsor, private=True)
    _register(custody, task_id, sponsor, parties)
    with reverts("CustodyNotReady"):
        custody.shareValidation(task_id, cid(1), cid(2), {"from": sponsor})
    _accept_all(custody, task_id, parties)
    with reverts("NotSponsor"):
        custody.shareValidation(task_id, cid(1), cid(2), {"from": mallory})
    custody.shareValidation(task_id, cid(1), cid(2), {"from": sponsor})
    with reverts("AlreadyShared"):
        custody.shareValidation(task_id, cid(3), cid(4), {"from": sponsor})
    assert custody.validationShares(task_id) == ("0x" + cid(1).hex(), "0x" + cid(2).hex())


def test_only_approved_accounts_hold_a_task_and_only_the_admin_approves(
    market, custody, sponsor, parties, mallory, sybil
):
    """A sponsor naming accounts of its own as custodians would receive every data owner's
    rows and decide every score: it cannot, unless the admin approved them."""
    task_id = market.create_task(sponsor, private=True)
    with reverts("NotApproved"):
        _register(custody, task_id, sponsor, (mallory, sybil, parties[2]))
    with reverts("NotAdmin"):
        custody.approve(mallory, True, {"from": sponsor})
    assert not custody.isApproved(mallory)
    _register(custody, task_id, sponsor, parties)


def test_finalizing_late_never_shortens_the_hand_over_window(
    market, custody, sponsor, parties, architect, outsider
):
    """A sponsor that waits to finalize until long after the deadline, then settles at once,
    forfeits nobody: the window starts when finalization is noted."""
    task_id = _ready(market, custody, sponsor, parties)
    arch = market.propose(task_id, architect)
    node = market.submit(task_id, outsider, arch)
    for index in (0, 1):
        custody.commitShare(node, cid(900 + index), {"from": parties[index]})
    _attest(custody, parties, {arch: 0, node: 100})  # below the target: no early finalize
    chain.sleep(40 * DAY)
    market.tree.finalize(task_id, {"from": sponsor})
    with reverts("HandoverOpen"):
        custody.settle(task_id, {"from": sponsor})
    custody.noteFinalized(task_id, {"from": sponsor})
    with reverts("HandoverOpen"):
        custody.settle(task_id, {"from": sponsor})
    for index in (0, 1):
        custody.handOver(task_id, cid(70 + index), {"from": parties[index]})
    assert custody.pendingWithdrawals(sponsor) == 0
    assert custody.pendingWithdrawals(parties[0]) == CUSTODY_STAKE + FEE // 3


def test_both_custodians_agree_to_finalize_leaving_nodes_neither_can_score(
    market, custody, sponsor, parties, architect, outsider, mallory, oracle
):
    """A node the custodians cannot score (its record out of range, say) held a due private task
    until FINALIZE_GRACE: only the task's scorer finalizes leaving nodes, and the custody
    contract had no call for it. Now both custodians agree on what they saw; one alone, a
    stranger, the oracle's role, or an agreement made before a later submission finalizes
    nothing."""
    task_id = _ready(market, custody, sponsor, parties)
    arch = market.propose(task_id, architect)
    _attest(custody, parties, {arch: 9500})  # the target (9000) is reached: the task is due
    stuck = market.submit(task_id, outsider, arch)
    tree = market.tree

    def pending() -> int:
        return tree.getTask(task_id).dict()["pendingNodes"]

    def submissions() -> int:
        return tree.getTask(task_id).dict()["submissions"]

    seen = submissions()
    for stranger in (mallory, parties[2], sponsor):
        with reverts("NotCustodian"):
            custody.finalizeLeaving(task_id, 1, seen, {"from": stranger})
    with reverts("NotScorer"):
        tree.finalizeLeaving(task_id, 1, {"from": oracle})
    custody.finalizeLeaving(task_id, 1, seen, {"from": parties[0]})  # one decides nothing
    assert not tree.getTask(task_id).dict()["finalized"] and pending() == 1
    market.submit(task_id, outsider, arch)  # a node revealed since custodian 0 agreed
    with reverts("SubmissionsChanged"):  # what custodian 1 saw is no longer so
        custody.finalizeLeaving(task_id, 1, seen, {"from": parties[1]})
    custody.finalizeLeaving(task_id, 1, submissions(), {"from": parties[1]})  # another set
    assert not tree.getTask(task_id).dict()["finalized"] and pending() == 2
    custody.finalizeLeaving(task_id, 2, submissions(), {"from": parties[1]})
    tx = custody.finalizeLeaving(task_id, 2, submissions(), {"from": parties[0]})
    assert "TaskFinalized" in tx.events and tree.getTask(task_id).dict()["finalized"]
    assert tree.getTask(task_id).dict()["winnerNodeId"] == arch
    assert tree.getNode(stuck)[6] == 0  # left pending, unscored
    assert custody.handoverDeadline(task_id) > 0  # the hand-over window runs from now


def test_nodes_the_custodians_leave_pending_do_not_burn_the_sponsors_bond(
    market, custody, sponsor, parties, architect, outsider
):
    """A node the custodians give up on (a deviating custodian's, say) is left pending at
    finalize; in a public task that burns the audit bond (the sponsor's validator left work
    unscored), but a private task's nodes wait for its custodians, not its sponsor: its bond
    stays held for the audit window, and the left node's fee is burned."""
    task_id = market.create_task(sponsor, private=True, target=9000, bond=BOND)
    _register(custody, task_id, sponsor, parties)
    _accept_all(custody, task_id, parties)
    custody.shareValidation(task_id, cid(1), cid(2), {"from": sponsor})
    arch = market.propose(task_id, architect)
    _attest(custody, parties, {arch: 9500})
    market.submit(task_id, outsider, arch)  # never scored
    seen = market.tree.getTask(task_id).dict()["submissions"]
    for index in (0, 1):
        tx = custody.finalizeLeaving(task_id, 1, seen, {"from": parties[index]})
    assert "TaskFinalized" in tx.events and "BondForfeited" not in tx.events
    task = market.tree.getTask(task_id).dict()
    assert task["pendingNodes"] == 1 and task["auditWindowEnd"] > 0  # held for the audit


def test_a_private_task_whose_custodians_could_score_nothing_holds_the_bond_for_the_audit(
    market, custody, sponsor, parties, architect, outsider
):
    """Custodians that could score nothing (every record out of range, say) agree to finalize
    leaving every node pending. The bond used to come back to the sponsor at once, though the
    sponsor's own shares may have decided that nothing was scored (attacker review of the
    contract economics). It is held for the audit window: the sponsor publishes the file, which
    the audit checks the shares against, or the bond is burned."""
    task_id = market.create_task(sponsor, private=True, target=9000, bond=BOND)
    _register(custody, task_id, sponsor, parties)
    _accept_all(custody, task_id, parties)
    custody.shareValidation(task_id, cid(1), cid(2), {"from": sponsor})
    market.propose(task_id, architect)  # never scored: the shares do not open
    chain.sleep(DAY + 1)
    chain.mine()
    seen = market.tree.getTask(task_id).dict()["submissions"]
    for index in (0, 1):
        tx = custody.finalizeLeaving(task_id, 1, seen, {"from": parties[index]})
    assert "TaskFinalized" in tx.events
    bond_kind = 5  # IBountyTree.PayoutKind.Bond
    assert all(e["kind"] != bond_kind for e in tx.events["PayoutCredited"])
    task = market.tree.getTask(task_id).dict()
    assert task["winnerNodeId"] == 0 and task["bondState"] == 1  # held
    assert task["auditWindowEnd"] > 0
    with reverts("AuditWindowOpen"):
        market.tree.forfeitBond(task_id, {"from": outsider})
    chain.sleep(task["auditWindowEnd"] - chain.time() + 1)
    chain.mine()
    burned = market.tree.forfeitBond(task_id, {"from": outsider})
    assert [(e["account"], e["amount"]) for e in burned.events["PayoutCredited"]] == [
        ("0x0000000000000000000000000000000000000000", BOND)
    ]


def test_validation_shares_a_custodian_cannot_read_burn_the_bond_of_a_task_left_pending(
    market, custody, sponsor, parties, architect, outsider
):
    """A sponsor that shares the CIDs of its validation rows and serves them to one custodian
    only (or to none) has every node wait: the custodians blame no node for the sponsor's files.
    It used to get its bond back, the task having paid nobody. Either custodian's word that it
    cannot read its share now makes the nodes the sponsor's: a finalize leaving them pending
    burns the bond, as a public task's does. Only the task's custodians say it; a word taken
    back (the share read after all) holds the bond for the audit again."""
    task_id = market.create_task(sponsor, private=True, target=9000, bond=BOND)
    _register(custody, task_id, sponsor, parties)
    _accept_all(custody, task_id, parties)
    with reverts("NotShared"):
        custody.reportValidation(task_id, False, {"from": parties[1]})
    custody.shareValidation(task_id, cid(1), cid(2), {"from": sponsor})
    for stranger in (sponsor, parties[2], outsider):
        with reverts("NotCustodian"):
            custody.reportValidation(task_id, False, {"from": stranger})
    with reverts("NotScorer"):  # nor BountyTree's flag, but through the task's custody
        market.tree.markValidationUnread(task_id, True, {"from": outsider})
    market.propose(task_id, architect)  # never scored: custodian 1 is never served its share

    # a word taken back clears only the custodian's own
    custody.reportValidation(task_id, False, {"from": parties[0]})
    custody.reportValidation(task_id, False, {"from": parties[1]})
    tx = custody.reportValidation(task_id, True, {"from": parties[0]})
    assert tx.events["ValidationReported"][0]["readable"] is True
    assert (
        custody.validationUnread(task_id) == 0b10
        and market.tree.getTask(task_id).dict()["validationUnread"]
    )

    task = market.tree.getTask(task_id).dict()
    chain.sleep(task["deadline"] + DAY - chain.time() + 1)  # past FINALIZE_GRACE
    chain.mine()
    tx = market.tree.finalize(task_id, {"from": outsider})
    assert "BondForfeited" in tx.events
    credited = [(e["account"], e["amount"]) for e in tx.events["PayoutCredited"]]
    assert (sponsor.address, BOND) not in credited and (
        "0x0000000000000000000000000000000000000000",
        BOND,
    ) in credited
    assert market.tree.getTask(task_id).dict()["bondState"] == 3  # forfeited
    with reverts("TaskIsFinalized"):  # nothing said after finalize changes it
        custody.reportValidation(task_id, True, {"from": parties[1]})


def test_a_word_taken_back_leaves_the_bond_to_the_audit(
    market, custody, sponsor, parties, architect, outsider
):
    """A custodian that could not read its share and then did (the sponsor's store was back)
    takes its word back once the nodes it held are scored, with later nodes pending (which ones
    waited on the share is the custodian's to see: custodian/service.py; a take-back with any
    node pending used to revert, so a busy task kept the word to its end): nodes left pending
    later are the custodians' again, and the bond is held."""
    task_id = market.create_task(sponsor, private=True, target=9000, bond=BOND)
    _register(custody, task_id, sponsor, parties)
    _accept_all(custody, task_id, parties)
    custody.shareValidation(task_id, cid(1), cid(2), {"from": sponsor})
    arch = market.propose(task_id, architect)
    custody.reportValidation(task_id, False, {"from": parties[1]})
    _attest(custody, parties, {arch: 5000})
    market.submit(task_id, outsider, arch)  # submitted after the share was read; left pending
    assert market.tree.getTask(task_id).dict()["pendingNodes"] == 1
    custody.reportValidation(task_id, True, {"from": parties[1]})
    assert not market.tree.getTask(task_id).dict()["validationUnread"]
    task = market.tree.getTask(task_id).dict()
    chain.sleep(task["deadline"] + DAY - chain.time() + 1)
    chain.mine()
    tx = market.tree.finalize(task_id, {"from": architect})
    assert "BondForfeited" not in tx.events
    assert market.tree.getTask(task_id).dict()["bondState"] == 1  # held for the audit


@pytest.mark.parametrize("said", [(0, 1), (1,), ()], ids=["both", "custodian 1 alone", "none"])
def test_a_node_both_custodians_say_waits_for_the_dealer_costs_the_dealer_its_third(
    market, custody, sponsor, parties, architect, outsider, said
):
    """A dealer that never joins holds every node of its task pending (no session runs without
    it) and was paid its third at settlement all the same. A task finalized leaving a node both
    custodians say waits for the dealer now sends its third back to the sponsor; its stake is
    returned (a custodian that keeps the dealer out can make both say it: it may cost the dealer
    a fee it could not earn, not its stake). One custodian's word alone changes nothing. Only
    the task's custodians say it, of a pending node, and nothing said after finalize counts."""
    task_id = _ready(market, custody, sponsor, parties)
    arch = market.propose(task_id, architect)  # never scored: no session without the dealer
    for stranger in (sponsor, parties[2], outsider):
        with reverts("NotCustodian"):
            custody.reportDealer(arch, True, {"from": stranger})
    with reverts("NodeNotInTask"):
        custody.reportDealer(arch + 99, True, {"from": parties[0]})
    for index in said:
        tx = custody.reportDealer(arch, True, {"from": parties[index]})
        assert tx.events["DealerReported"][0]["waits"] is True
        custody.reportDealer(arch, True, {"from": parties[index]})  # said again: counted once
    assert custody.dealerWaitOf(arch) == sum(1 << i for i in said)
    assert custody.dealerWaiting(task_id) == (said == (0, 1))

    task = market.tree.getTask(task_id).dict()
    chain.sleep(task["deadline"] + DAY - chain.time() + 1)  # past FINALIZE_GRACE
    chain.mine()
    market.tree.finalize(task_id, {"from": outsider})
    with reverts("TaskClosed"):
        custody.reportDealer(arch, False, {"from": parties[0]})
    before = {p: custody.pendingWithdrawals(p) for p in (*parties, sponsor)}
    tx = custody.settle(task_id, {"from": outsider})
    gain = {p: custody.pendingWithdrawals(p) - before[p] for p in before}
    third = FEE // 3
    dealer_third = FEE - 2 * third
    assert gain[parties[0]] == gain[parties[1]] == CUSTODY_STAKE + third
    if said == (0, 1):
        assert gain[parties[2]] == CUSTODY_STAKE  # its own stake back: nothing earned
        assert gain[sponsor] == dealer_third
        unserved = [e for e in tx.events["Credited"] if e["kind"] == 4]
        assert [(e["account"], e["amount"]) for e in unserved] == [(sponsor, dealer_third)]
    else:
        assert gain[parties[2]] == CUSTODY_STAKE + dealer_third
        assert gain[sponsor] == 0
    assert custody.balance() >= sum(custody.pendingWithdrawals(p) for p in (*parties, sponsor))


def test_a_word_on_the_dealer_is_per_node_and_ends_when_the_node_is_recorded(
    market, custody, sponsor, parties, architect, outsider
):
    """A dealer that was away once, both custodians saying so of the node then waiting, and that
    came back for every session after: the node is recorded (or a custodian takes its word back
    when the dealer comes to its session), the count falls to zero, and a node left pending at
    finalize for another reason (a node the custodians gave up on) costs the dealer nothing.
    Before, the word was per task and stayed while any node was pending."""
    task_id = _ready(market, custody, sponsor, parties)
    arch = market.propose(task_id, architect)
    other = market.propose(task_id, outsider)
    for index in (0, 1):
        custody.reportDealer(arch, True, {"from": parties[index]})
        custody.reportDealer(other, True, {"from": parties[index]})
        custody.commitShare(arch, cid(900 + index), {"from": parties[index]})
    assert custody.dealerWaiting(task_id) == 2
    _attest(custody, parties, {arch: 5000})  # the dealer came back: recorded, waits no more
    assert custody.dealerWaitOf(arch) == 0 and custody.dealerWaiting(task_id) == 1
    custody.reportDealer(other, False, {"from": parties[1]})  # the dealer came to its session
    assert custody.dealerWaiting(task_id) == 0
    custody.reportDealer(other, False, {"from": parties[1]})  # said again: nothing changes
    assert custody.dealerWaiting(task_id) == 0 and custody.dealerWaitOf(other) == 0b01
    with reverts("NodeNotPending"):
        custody.reportDealer(arch, True, {"from": parties[0]})
    task = market.tree.getTask(task_id).dict()
    chain.sleep(task["deadline"] + DAY - chain.time() + 1)  # `other` left pending
    chain.mine()
    market.tree.finalize(task_id, {"from": outsider})
    custody.handOver(task_id, cid(70), {"from": parties[0]})
    before = custody.pendingWithdrawals(parties[2])
    custody.handOver(task_id, cid(80), {"from": parties[1]})  # both delivered: settled
    assert custody.pendingWithdrawals(parties[2]) - before == CUSTODY_STAKE + FEE - 2 * (FEE // 3)
