"""A task's scoring fee, cap per account and audit bond, from `bountytree task create` through
the Market to the contract and back, on the session's real chain: every proposal pays stake +
fee, the cap refuses before anything is uploaded or sent, a bond comes back when the file is
published (`bountytree audit publish`) and is burned when it is not, work never scored gets its
stake and fee back (`bountytree reclaim`), and the winner's test score is read back from the
task."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from web3 import Web3

from bountytree.config import ROOT
from bountytree.errors import UserError
from bountytree.market.actions import Score
from bountytree.models.spec import load_spec
from bountytree.storage.cid import bytes32_to_cid
from tests.conftest import advance_time, cli_error, cli_ok, created_task_id, market_for

MLP = ROOT / "examples" / "mlp.json"
STAKE, FEE = 10**16, 10**15
WEEK = 7 * 24 * 3600


def _create(settings, files, name: str, *terms: str) -> int:
    return created_task_id(
        cli_ok(
            settings,
            "task",
            "create",
            "--validation",
            str(files["validation"]),
            "--name",
            name,
            "--bounty",
            "1",
            "--target",
            "0.5",
            "--deadline",
            "2h",
            "--stake",
            "0.01",
            *terms,
        )
    )


def _balance(market) -> int:
    return market.chain.w3.eth.get_balance(market.tree.address)


def _won(settings, task_id: int):
    """Account 1 proposes the MLP, the oracle (account 0) scores it above the target, finalizes."""
    architect, oracle = market_for(settings, 1), market_for(settings, 0)
    arch = architect.propose(task_id, load_spec(Path(MLP).read_bytes())).node_id
    oracle.record_scores(task_id, [Score(arch, 9000, 0, 0)])
    oracle.finalize(task_id)
    return architect, arch


def test_fee_and_cap_are_paid_and_enforced(settings, deployed, files):
    task_id = _create(
        settings, files, "fee and cap", "--scoring-fee", "0.001", "--max-submissions", "1"
    )
    architect = market_for(settings, 1)
    task = architect.task(task_id)
    assert (task.scoring_fee, task.max_submissions, task.price, task.bond_state) == (
        FEE,
        1,
        STAKE + FEE,
        "none",
    )
    before = _balance(architect)
    spec = load_spec(Path(MLP).read_bytes())
    arch = architect.propose(task_id, spec).node_id
    assert _balance(architect) == before + STAKE + FEE
    nonce = architect.chain.w3.eth.get_transaction_count(architect.chain.address)
    with pytest.raises(UserError, match="at most 1 proposals and commitments per account"):
        architect.propose(task_id, spec)
    assert architect.chain.w3.eth.get_transaction_count(architect.chain.address) == nonce
    market_for(settings, 2).propose(task_id, spec)  # the cap is per account
    oracle = market_for(settings, 0)
    oracle.record_scores(task_id, [Score(arch, 9000, 0, 0)])
    with pytest.raises(UserError, match="WorkPending"):  # the same for the oracle as for anyone
        oracle.finalize(task_id)
    with pytest.raises(UserError, match="PendingChanged"):  # it leaves only what it saw
        oracle.finalize(task_id, leaving=0)
    done = oracle.finalize(task_id, leaving=1)
    # the scored architecture's fee joins the pool; the pending proposal's comes back with its
    # stake
    assert done.pool == oracle.task(task_id).pool == 10**18 + FEE


def test_an_unpublished_file_burns_the_bond(settings, deployed, files):
    task_id = _create(settings, files, "forfeit", "--audit-bond", "0.5")
    sponsor = market_for(settings, 0)
    assert sponsor.task(task_id).audit_bond == 5 * 10**17
    _won(settings, task_id)
    task = sponsor.task(task_id)
    assert task.bond_state == "held" and task.audit_window_end > task.now
    anyone = market_for(settings, 5)
    with pytest.raises(UserError, match="may publish its validation file for"):
        anyone.forfeit_bond(task_id)
    advance_time(settings, WEEK + 60)
    out = anyone.forfeit_bond(task_id)
    assert [(p.account, p.amount, p.kind) for p in out.payouts] == [
        ("0x" + "00" * 20, 5 * 10**17, "burned")  # no account the sponsor might control
    ]
    assert sponsor.task(task_id).bond_state == "forfeited"
    with pytest.raises(UserError, match="holds no audit bond"):
        anyone.forfeit_bond(task_id)
    oracle = market_for(settings, 0)
    oracle.record_test_score(task_id, 8800)
    assert oracle.task(task_id).test_score_bps == 8800


def test_publishing_the_file_returns_the_bond(settings, deployed, files):
    task_id = _create(settings, files, "publish", "--audit-bond", "0.2")
    _won(settings, task_id)
    sponsor = market_for(settings, 0)
    before = sponsor.pending()
    cli_ok(settings, "audit", "publish", "--task", str(task_id))
    task = sponsor.task(task_id)
    assert (task.validation_published, task.bond_state) == (True, "returned")
    assert sponsor.pending() == before + 2 * 10**17
    assert sponsor.payouts(task_id)[-1].kind == "bond"


@pytest.mark.parametrize(
    "flag, value, message",
    [
        ("--max-submissions", "-1", "--max-submissions: '-1' is not a whole number"),
        ("--max-submissions", "70000", "--max-submissions: '70000' is not a whole number"),
        ("--scoring-fee", "lots", "--scoring-fee: 'lots' is not an amount of ETH"),
        ("--audit-bond", "-1", "--audit-bond: '-1' is not an amount of ETH"),
        # a private task refused the train part after the bounty was escrowed (the attacker
        # review of private-from-creation)
        ("--split", "60/20/20 --private-models", "--split with private models"),
    ],
)
def test_bad_terms_are_one_line_and_send_nothing(settings, deployed, files, flag, value, message):
    w3 = Web3(Web3.HTTPProvider(settings.rpc))
    tasks = market_for(settings, 0).task_ids()
    line = cli_error(
        settings,
        "task",
        "create",
        "--validation",
        str(files["validation"]),
        "--name",
        "bad",
        "--bounty",
        "1",
        "--target",
        "0.5",
        "--deadline",
        "2h",
        flag,
        *value.split(),
    )
    assert message in line
    assert market_for(settings, 0).task_ids() == tasks and w3.is_connected()


class _Crash(Exception):
    pass


def test_work_never_scored_gets_its_stakes_back(settings, deployed, files, monkeypatch):
    """Account 3 proposes an architecture the oracle never scores, and commits a child whose
    reveal never comes (the trainer's process dies between the two halves); the oracle scores
    account 1's architecture above the target. Finalize waits for the commitment's reveal window,
    then the oracle finalizes. `bountytree reclaim` gives account 3 back both stakes (the pending
    node's fee was burned: it bought no score; so is the commitment's, left unrevealed), and says
    so; a second run finds nothing."""
    task_id = _create(settings, files, "reclaim", "--scoring-fee", "0.001")
    spec = load_spec(MLP.read_bytes())
    winner = market_for(settings, 1).propose(task_id, spec).node_id
    loser = market_for(settings, 3)
    pending = loser.propose(task_id, spec).node_id

    def crash(*_args, **_kwargs):
        raise _Crash

    with monkeypatch.context() as m:
        m.setattr(loser.chain, "wait_for_block_after", crash)
        with pytest.raises(_Crash):
            loser.submit(task_id, pending, bytes32_to_cid(b"\x11" * 32))
    # a record of the same account and task id whose commitment this chain does not hold (made
    # on another chain: the home folder is shared): kept, never deleted by a reclaim here
    foreign = settings.home / "commitments" / f"{'ab' * 32}.json"
    foreign.write_text(json.dumps({"author": loser.chain.address, "task": task_id}))
    oracle = market_for(settings, 0)
    oracle.record_scores(task_id, [Score(winner, 9000, 0, 0)])
    with pytest.raises(UserError, match=r"1 commitment\(s\) made in time may still be revealed"):
        oracle.finalize(task_id)
    task = oracle.task(task_id, with_info=False)
    advance_time(settings, task.reveals_close_at - task.now + 1)
    assert oracle.finalize(task_id, leaving=1).pool == 10**18 + FEE  # the scored node's fee only
    before = loser.pending()
    out = cli_ok(settings, "reclaim", "--task", str(task_id), "--account", "dev:3")
    assert f"reclaimed 0.01 ETH for node {pending}" in out, out
    assert "reclaimed 0.01 ETH for commitment 0x" in out and "its fee burned" in out, out
    assert loser.pending() == before + STAKE + STAKE
    again = cli_ok(settings, "reclaim", "--task", str(task_id), "--account", "dev:3")
    assert "nothing of yours to reclaim" in again
    assert foreign.exists()
