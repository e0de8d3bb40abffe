"""Pull payments, a re-entering attacker, and the single-writer reputation registry."""

from brownie import ZERO_ADDRESS, ReentrantWithdrawer, Reputation, accounts, chain
from conftest import DAY, reverts


def _credit_sponsor_refund(tree, market, sponsor, amount=10**18):
    """A task nobody worked on: after its deadline the whole bounty is credited to the sponsor."""
    task_id = market.create_task(sponsor, bounty=amount)
    chain.sleep(DAY + 1)
    chain.mine()
    tree.finalize(task_id, {"from": sponsor})


def test_withdraw_pays_exactly_what_is_owed(tree, market, sponsor):
    _credit_sponsor_refund(tree, market, sponsor)
    balance = sponsor.balance()
    tx = tree.withdraw({"from": sponsor})
    assert tx.events["Withdrawn"]["amount"] == 10**18
    assert sponsor.balance() == balance + 10**18 - tx.gas_used * tx.gas_price
    assert tree.pendingWithdrawals(sponsor) == 0 and tree.balance() == 0
    with reverts("NothingToWithdraw"):
        tree.withdraw({"from": sponsor})


def test_withdraw_with_nothing_owed_reverts(tree, outsider):
    with reverts("NothingToWithdraw"):
        tree.withdraw({"from": outsider})


def test_reentrant_withdraw_is_blocked(tree, admin):
    attacker = ReentrantWithdrawer.deploy(tree, {"from": admin})
    attacker.sponsor(chain.time() + 100, {"from": admin, "value": 10**18})
    # a second, honest task keeps ETH in the contract that a successful re-entry could steal
    tree.createTask(
        b"\x01" * 32,
        b"\x02" * 32,
        9000,
        chain.time() + DAY,
        5000,
        3000,
        2000,
        0,
        0,
        0,
        0,
        False,
        {"from": admin, "value": 5 * 10**18},
    )
    chain.sleep(101)
    chain.mine()
    tree.finalize(1, {"from": admin})
    assert tree.pendingWithdrawals(attacker) == 10**18

    # the re-entrant call's revert bubbles up: the whole withdraw fails, nothing moves
    with reverts("TransferFailed"):
        attacker.attack(True, {"from": admin})
    assert tree.pendingWithdrawals(attacker) == 10**18 and tree.balance() == 6 * 10**18

    # the attacker swallows the failure of its re-entry: it is paid once, not twice
    attacker.attack(False, {"from": admin})
    assert attacker.reentryAttempts() == 1
    assert attacker.received() == 10**18 and attacker.balance() == 10**18
    assert tree.pendingWithdrawals(attacker) == 0 and tree.balance() == 5 * 10**18


def test_reputation_has_one_writer_bound_once(admin, outsider):
    rep = Reputation.deploy({"from": admin})
    with reverts("NotWriter"):
        rep.adjust([outsider], [5], {"from": admin})
    with reverts("NotDeployer"):
        rep.bindWriter(outsider, {"from": outsider})
    with reverts("ZeroWriter"):
        rep.bindWriter("0x" + "00" * 20, {"from": admin})
    rep.bindWriter(accounts[9], {"from": admin})
    with reverts("WriterAlreadyBound"):
        rep.bindWriter(admin, {"from": admin})
    with reverts("LengthMismatch"):
        rep.adjust([outsider], [], {"from": accounts[9]})
    tx = rep.adjust([outsider, outsider, admin], [5, -2, -7], {"from": accounts[9]})
    assert rep.scoreOf(outsider) == 3 and rep.scoreOf(admin) == -7
    assert tx.events["ReputationChanged"][-1]["score"] == -7


def test_only_the_marketplace_writes_reputation(tree, reputation, admin):
    assert reputation.writer() == tree
    with reverts("NotWriter"):
        reputation.adjust([admin], [100], {"from": admin})


def test_reputation_is_bought_by_the_levy(tree, reputation, market, sponsor, architect, alice, bob):
    """Of every credit the path pays an account other than the sponsor, REPUTATION_LEVY_BPS (1%)
    is burned, and the account earns a point per REPUTATION_POINT_PRICE (a microether) of its
    levies in the task: 1 ETH of data pay is credited 0.99 ETH and earns 10,000 points, 0.099 ETH
    earns 990; a stake returned, however large, pays no levy and earns nothing; an architect paid
    nothing earns nothing."""
    assert (tree.REPUTATION_LEVY_BPS(), tree.REPUTATION_POINT_PRICE()) == (100, 10**12)
    stake = 10**18
    # all to data: the single trained node takes the whole bounty; the architect's share is 0
    small = market.create_task(sponsor, bounty=99 * 10**15, shares=(10000, 0, 0), stake=stake)
    real = market.create_task(sponsor, bounty=10**18, shares=(10000, 0, 0), stake=stake)
    for task_id, author in ((small, alice), (real, bob)):
        arch = market.propose(task_id, architect, value=stake)
        node = market.submit(task_id, author, arch, value=stake)
        market.score(task_id, {arch: 5000, node: 9000})
        tree.finalize(task_id, {"from": sponsor})
    assert [tree.pendingWithdrawals(a) for a in (alice, bob, architect, sponsor)] == [
        stake + 99 * 10**15 - 99 * 10**13,
        stake + 10**18 - 10**16,
        2 * stake,
        0,
    ]
    assert tree.pendingWithdrawals(ZERO_ADDRESS) == 99 * 10**13 + 10**16  # the levies, burned
    assert [reputation.scoreOf(a) for a in (alice, bob, architect, sponsor)] == [990, 10_000, 0, 0]
