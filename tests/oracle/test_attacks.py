"""Attacks on the payout through the oracle, on a real Ganache with the real contracts, trainer,
store and two-party CrypTen oracle. Each test plays the attacker, measures what it gains (wei
of data, compute or expertise share) and asserts that it is zero, while the honest participants
beside it are still scored and paid."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import save
from torch import equal as torch_equal

from bountytree.market import ladder
from bountytree.market.actions import Market
from bountytree.market.validation import validator_folder
from bountytree.models import weights
from bountytree.models.counting import count_correct
from bountytree.models.datasets import Dataset, load_file
from bountytree.models.spec import ModelSpec, build_torch, load_spec
from bountytree.models.training import train_node
from bountytree.processes import free_port
from bountytree.storage.cid import digest_from_cid
from bountytree.storage.store import StoreError, add_bytes, cid_of, get_bytes
from oracle import pacing, service, unread_best
from oracle.service import Oracle
from tests.conftest import (
    advance_time,
    cli_error,
    cli_ok,
    market_for,
    new_task,
    node_id_of,
    nudged,
    run_cli,
    validator_process,
)
from tests.store_damage import remove

pytestmark = pytest.mark.mpc

MLP = "examples/mlp.json"
STAKE = 10**16  # new_task's default stake, 0.01 ETH
PAID_KINDS = ("data", "compute", "expertise")


def _oracle(settings, task_id: int) -> str:
    return cli_ok(
        settings, "--once", "--task", str(task_id), "--fetch-timeout", "0", module="oracle"
    )


def _train(
    settings, task_id: int, account: int, *, data=None, dataset: int = 0, parent: int | str = "best"
) -> int:
    source = ["--dataset", str(dataset)] if dataset else ["--data", str(data)]
    return node_id_of(
        cli_ok(
            settings,
            "--task",
            str(task_id),
            *source,
            "--parent",
            str(parent),
            "--account",
            str(account),
            "--quiet",
            module="trainer",
        )
    )


def _state(market, node_id: int):
    node = market.node(node_id)
    spec = market.architecture_spec(node)
    return spec, weights.load(get_bytes(market.store, node.weights_cid(spec), 1 << 24), spec)


def _credited(market, task_id: int) -> int:
    """Everything this task credited to the market's account, stakes returned included (its
    balance may hold credits from other tasks of the session's chain)."""
    me = market.chain.address
    return sum(p.amount for p in market.payouts(task_id) if p.account == me)


def _gain(market, task_id: int, account: str) -> int:
    """What a task paid `account` for data, compute or expertise (stakes returned are not gain)."""
    return sum(
        p.amount for p in market.payouts(task_id) if p.account == account and p.kind in PAID_KINDS
    )


def _finalize(settings, task_id: int) -> None:
    """Finalizes the task (past new_task's 2 h deadline) unless the oracle already did."""
    if market_for(settings).task(task_id, with_info=False).finalized:
        return
    advance_time(settings, 2 * 3600 + 60)
    cli_ok(settings, "finalize", "--task", str(task_id), "--account", "0")


def test_copies_of_public_weights_earn_nothing(settings, deployed, files):
    """Mallory downloads Alice's node, adds noise (a fifth of Alice's own update) and submits it
    as a child of the architecture, then submits Alice's exact weights under Alice's node. Both
    are rejected as copies and forfeit their stakes; Alice and Bob (an honest sibling) are paid."""
    task_id = new_task(settings, files["validation"], "copies", target="0.999")
    arch = node_id_of(
        cli_ok(settings, "propose", "--task", str(task_id), "--spec", MLP, "--account", "1")
    )
    _oracle(settings, task_id)
    alice = _train(settings, task_id, 3, data=files["owner1"], parent=arch)
    bob = _train(settings, task_id, 4, data=files["owner2"], parent=arch)
    _oracle(settings, task_id)

    mallory = market_for(settings, 8)
    _spec, alice_state = _state(mallory, alice)
    _, init = _state(mallory, arch)
    noisy = add_bytes(mallory.store, save(nudged(alice_state, init, 0.2, seed=1)))
    exact = add_bytes(mallory.store, save(alice_state))
    copy_of_alice = mallory.submit(task_id, arch, noisy).node_id
    same_as_parent = mallory.submit(task_id, alice, exact).node_id
    out = _oracle(settings, task_id)
    nodes = mallory.nodes(task_id)
    assert (nodes[copy_of_alice].status, nodes[copy_of_alice].reason) == ("rejected", "copy"), out
    assert (nodes[same_as_parent].status, nodes[same_as_parent].reason) == ("rejected", "copy"), out
    assert nodes[alice].status == nodes[bob].status == "scored"

    _finalize(settings, task_id)
    assert _gain(mallory, task_id, mallory.chain.address) == 0
    assert _credited(mallory, task_id) == 0  # not even a stake back
    forfeited = {e["args"]["nodeId"] for e in mallory.logs("StakeForfeited", taskId=task_id)}
    assert {copy_of_alice, same_as_parent} <= forfeited
    winner = mallory.task(task_id, with_info=False).winner
    assert winner in (alice, bob) and _gain(mallory, task_id, nodes[winner].author) > 0


def _permuted(state, seed: int):
    """The same function as the MLP `state` in other tensors: its hidden units in another order."""
    import torch

    order = torch.randperm(
        state["0.weight"].shape[0], generator=torch.Generator().manual_seed(seed)
    )
    out = dict(state)
    out["0.weight"], out["0.bias"] = state["0.weight"][order], state["0.bias"][order]
    out["2.weight"] = state["2.weight"][:, order]
    return {k: v.contiguous() for k, v in out.items()}


def _net(wei: int) -> int:
    """A credit to an account other than the sponsor, net of the 1% reputation levy."""
    return wei - wei * 100 // 10_000


def test_a_copy_that_changes_form_is_paid_only_its_own_raise(settings, deployed, files):
    """Mallory takes Alice's public weights, permutes the hidden units (the same function in
    other tensors: the oracle's tensor comparison sees new work) and fine-tunes them on her own
    rows, then submits the result under the architecture as her own private work, so that a win
    would make the path wholly hers (the second attack round measured that disguise taking the
    whole data share). The real oracle scores it: her node passes the copy check, sets a new best
    and wins. The data share is split by raises over the task's best when scored: Mallory is paid
    her node's own raise over Alice's (what her fine-tune on her own rows added, 24 points here),
    and Alice, off the winning path, is paid her raise in full by the claim finalize sends."""
    task_id = new_task(settings, files["validation"], "disguise", target="0.999")
    arch = node_id_of(
        cli_ok(settings, "propose", "--task", str(task_id), "--spec", MLP, "--account", "1")
    )
    _oracle(settings, task_id)
    alice = _train(settings, task_id, 3, data=files["owner1"], parent=arch)
    _oracle(settings, task_id)

    mallory = market_for(settings, 8)
    spec, alice_state = _state(mallory, alice)
    model = build_torch(spec)
    model.load_state_dict(_permuted(alice_state, seed=4))
    assert not torch_equal(model.state_dict()["0.weight"], alice_state["0.weight"])
    train_node(model, spec, load_file(files["owner2"]))
    copy = mallory.submit(task_id, arch, add_bytes(mallory.store, weights.to_bytes(model))).node_id
    log = _oracle(settings, task_id)
    nodes = mallory.nodes(task_id)
    assert nodes[copy].status == "scored", log  # the disguise passes the copy check

    _finalize(settings, task_id)  # and pays every raise off the winning path
    task = mallory.task(task_id, with_info=False)
    nodes = mallory.nodes(task_id)
    raised = task.raised_bps
    assert nodes[alice].raise_bps > 0 and raised == nodes[alice].raise_bps + nodes[copy].raise_bps
    assert task.unclaimed_raise_bps == 0 and all(
        n.claimed or n.id in (task.winner, alice) for n in nodes.values() if n.raise_bps
    )
    pool = int(mallory.logs("TaskFinalized", taskId=task_id)[0]["args"]["pool"])
    data_pool = pool * task.shares_bps[0] // 10_000

    def data_to(account: str) -> int:
        return sum(
            p.amount for p in mallory.payouts(task_id) if p.account == account and p.kind == "data"
        )

    me = mallory.chain.address
    # the disguised copy won (the case the attack round measured) and Alice's raise was claimed
    assert task.winner == copy and nodes[alice].claimed
    assert (
        _gain(mallory, task_id, me)
        == data_to(me)
        == _net(data_pool * nodes[copy].raise_bps // raised)
    )
    assert (
        abs(data_to(nodes[alice].author) - _net(data_pool * nodes[alice].raise_bps // raised)) <= 2
    )


def test_a_copy_of_a_node_still_waiting_for_its_files_cannot_take_its_raise(
    settings, deployed, files
):
    """Alice's node is revealed, but its weights reach the oracle's store late (the oracle waits
    for them, within its fetch timeout). Mallory, who read them elsewhere, reveals them in another
    form (hidden units permuted) under the architecture as her own work. Were the copy recorded
    first, it would be the new best and hold the raise, and Alice's node, no better, would record
    its parent's score. The oracle records nodes in the order they were revealed: the copy waits
    for Alice's node; once Alice's files arrive, hers is recorded first and holds the raise, and
    the copy, as good and no better, sets no new best and is paid nothing."""
    task_id = new_task(settings, files["validation"], "late original", target="0.999")
    arch = node_id_of(
        cli_ok(settings, "propose", "--task", str(task_id), "--spec", MLP, "--account", "1")
    )
    _oracle(settings, task_id)
    alice_market = market_for(settings, 3)
    spec, init = _state(alice_market, arch)
    model = build_torch(spec)
    model.load_state_dict(init)
    train_node(model, spec, load_file(files["owner1"]))
    # (nudged, so that no other test of the session's shared store holds the same bytes)
    raw = save(nudged(model.state_dict(), init, 0.01, seed=7))
    alice = alice_market.submit(task_id, arch, cid_of(raw)).node_id  # not in the store yet

    mallory = market_for(settings, 8)
    copy = add_bytes(mallory.store, save(_permuted(weights.load(raw, spec), seed=5)))
    copy = mallory.submit(task_id, arch, copy).node_id

    def oracle_round() -> str:
        return cli_ok(
            settings, "--once", "--task", str(task_id), "--fetch-timeout", "3600", module="oracle"
        )

    out = oracle_round()
    assert f"node {copy}: waiting (node {alice}, revealed before it, is not scored yet)" in out
    assert mallory.node(copy).status == mallory.node(alice).status == "pending"
    add_bytes(alice_market.store, raw)  # Alice's files arrive
    out = oracle_round()
    nodes = mallory.nodes(task_id)
    assert nodes[alice].status == nodes[copy].status == "scored", out
    assert nodes[alice].raise_bps > 0 and nodes[copy].raise_bps == 0
    _finalize(settings, task_id)
    assert _gain(mallory, task_id, mallory.chain.address) == 0
    assert _gain(mallory, task_id, nodes[alice].author) > 0


def test_dip_and_restore_gains_nothing(settings, deployed, files):
    """Mallory submits a deliberately broken child of Alice's node, then Alice's weights again as
    its child: the dip is no new best, so the Ladder records Alice's score for it (it reveals one
    bit and gains nothing); the restore is a copy of Alice's node (rejected) and, by the payout
    rule, could gain nothing over the best already reached on its path anyway."""
    task_id = new_task(settings, files["validation"], "dip", target="0.999")
    arch = node_id_of(
        cli_ok(settings, "propose", "--task", str(task_id), "--spec", MLP, "--account", "1")
    )
    _oracle(settings, task_id)
    alice = _train(settings, task_id, 3, data=files["owner1"], parent=arch)
    _oracle(settings, task_id)
    mallory = market_for(settings, 8)
    _, alice_state = _state(mallory, alice)
    _, init = _state(mallory, arch)
    dip = mallory.submit(
        task_id, alice, add_bytes(mallory.store, save(nudged(alice_state, init, 3.0, seed=2)))
    )
    _oracle(settings, task_id)
    restore = mallory.submit(
        task_id,
        dip.node_id,
        add_bytes(mallory.store, save(nudged(alice_state, init, 0.01, seed=3))),
    ).node_id
    _oracle(settings, task_id)
    nodes = mallory.nodes(task_id)
    assert nodes[dip.node_id].accuracy_bps == nodes[alice].accuracy_bps  # its parent's score
    assert (nodes[restore].status, nodes[restore].reason) == ("rejected", "copy")
    _finalize(settings, task_id)
    assert _gain(mallory, task_id, mallory.chain.address) == 0
    # at most the dip's stake back; the restore's is forfeited
    assert _credited(mallory, task_id) <= STAKE


def _trained(spec, init: dict, rows) -> dict:
    model = build_torch(spec)
    model.load_state_dict(init)
    train_node(model, spec, rows)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@dataclass(frozen=True)
class BlendTask:
    """A task with its architecture scored, and what a test blends nodes of chosen counts from:
    the initial weights, the validation rows and a model trained from them on each owner's rows."""

    task_id: int
    arch: int
    market: Market
    spec: ModelSpec
    init: dict
    rows: Dataset
    trained: dict[str, dict]


def _blend_task(settings, files, name: str, owners: tuple[str, ...]) -> BlendTask:
    task_id = new_task(settings, files["validation"], name, target="0.999")
    arch = node_id_of(
        cli_ok(settings, "propose", "--task", str(task_id), "--spec", MLP, "--account", "1")
    )
    _oracle(settings, task_id)
    market = market_for(settings, 3)
    spec, init = _state(market, arch)
    trained = {o: _trained(spec, init, load_file(files[o])) for o in owners}
    return BlendTask(task_id, arch, market, spec, init, load_file(files["validation"]), trained)


def _blend(a: dict, b: dict, t: float) -> dict:
    return {k: a[k] + t * (b[k] - a[k]) if a[k].is_floating_point() else a[k] for k in a}


def _blend_counting(spec, a: dict, b: dict, rows, want, steps: int = 800) -> tuple[bytes, int]:
    """The first blend of `a` towards `b` whose correct validation rows satisfy `want`, as the
    bytes a node would submit, with that count (as the validator counts it, in plaintext)."""
    for t in np.linspace(0.0, 1.0, steps + 1)[1:]:
        raw = save(_blend(a, b, float(t)))
        count = count_correct(weights.load(raw, spec), spec, rows.X, rows.y).correct
        if want(count):
            return raw, count
    raise AssertionError("no blend with the count wanted")


def test_a_node_a_row_better_than_the_best_takes_no_release(settings, deployed, files):
    """Noise mining at the Ladder's edge (the second attack round: net +0.078 ETH on four
    probes). Alice's node scores 0.75 points above its release (a multiple of the margin, one
    point); Mallory submits a child of it one validation row (0.25 points) better. Compared with
    the rounded best, that row was a whole margin: Mallory's node was released a point above
    Alice's, became the best and won, and Bob, whose child of Alice is four rows better, was
    recorded as carrying Alice's score. Compared with the exact best (the validator counts the
    best node again in every session), Mallory's node carries Alice's score and gains nothing;
    Bob's is released and wins."""
    t = _blend_task(settings, files, "edge", ("owner1", "owner2"))
    task_id, arch, market, spec, init, rows, trained = (
        t.task_id, t.arch, t.market, t.spec, t.init, t.rows, t.trained
    )  # fmt: skip
    start = count_correct(init, spec, rows.X, rows.y).correct
    # Alice: 0.75 points (three rows of 400) above a multiple of the margin, well above the
    # architecture
    raw, alice_count = _blend_counting(
        spec,
        init,
        trained["owner1"],
        rows,
        lambda c: c >= start + 12 and ladder.bps(c, len(rows)) % 100 == 75,
    )
    alice = market.submit(task_id, arch, add_bytes(market.store, raw)).node_id
    _oracle(settings, task_id)
    released = market.node(alice).accuracy_bps
    assert released == ladder.bps(alice_count, len(rows)) - 75, released

    mallory, bob = market_for(settings, 8), market_for(settings, 4)
    _, alice_state = _state(market, alice)
    raw, _ = _blend_counting(
        spec, alice_state, trained["owner1"], rows, lambda c: c == alice_count + 1
    )
    edge = mallory.submit(task_id, alice, add_bytes(mallory.store, raw)).node_id
    # the same node compared with the rounded best was a new best by the margin
    assert ladder.bps(alice_count + 1, len(rows)) >= released + 100
    raw, _ = _blend_counting(
        spec, alice_state, trained["owner2"], rows, lambda c: c >= alice_count + 4
    )
    better = bob.submit(task_id, alice, add_bytes(bob.store, raw)).node_id
    log = _oracle(settings, task_id)
    nodes = market.nodes(task_id)
    assert nodes[edge].status == nodes[better].status == "scored", log
    assert nodes[edge].accuracy_bps == released, log  # Alice's score, carried
    assert nodes[better].accuracy_bps >= released + 100, log

    _finalize(settings, task_id)
    assert market.task(task_id, with_info=False).winner == better
    assert _gain(mallory, task_id, mallory.chain.address) == 0
    assert _gain(bob, task_id, bob.chain.address) > 0


def test_a_leader_that_withdraws_its_file_stops_no_session(settings, deployed, files, monkeypatch):
    """The validator counts the task's best node in every session (the Ladder's exact best). The
    first version refused every session whose best it could not read: a leader that withdrew
    its file would have kept the lead, every later node pending (found by the attacker review
    of the exact best). Now the validator counts the best from the copy it kept when it admitted
    the node; with that copy gone too, the session goes on without the count. The nodes counted
    then wait for a session that counts it (they were recorded at once against the most the best
    can be, its release + η − 1, so a node that had earned a release carried its parent's score:
    an open finding of the exact best), no session spent while they rest, and each is recorded
    against that most once unread_best.HOLD_S from its reveal is over: a lost file never lowers
    the bar."""
    t = _blend_task(settings, files, "withdrawn", ("owner1", "owner2"))
    task_id, arch, market, spec, init, rows, trained = (
        t.task_id, t.arch, t.market, t.spec, t.init, t.rows, t.trained
    )  # fmt: skip
    # Alice: a quarter point above her release
    raw, alice_count = _blend_counting(
        spec,
        init,
        trained["owner1"],
        rows,
        lambda c: c >= 200 and ladder.bps(c, len(rows)) % 100 == 25,
    )
    alice = market.submit(task_id, arch, add_bytes(market.store, raw)).node_id
    _oracle(settings, task_id)
    task = market.task(task_id, with_info=False)
    assert task.best_node == alice and task.best_bps == ladder.round_down(
        ladder.bps(alice_count, len(rows)), 100
    )
    kept = (
        validator_folder(settings.home, market.chain.chain_id)
        / "weights"
        / f"{market.tree.address.lower()}-task-{task_id}"
    )

    def withdraw(node_id: int) -> Path:
        """The node's file is gone from the store; its copy the validator kept, at the path
        returned, is not."""
        cid = market.node(node_id).weights_cid(spec)
        remove(market.store, digest_from_cid(cid))
        with pytest.raises(StoreError):
            get_bytes(market.store, cid, 1 << 24)
        assert (kept / cid).exists()
        return kept / cid

    # Alice's file sent again as another node (rejected as a copy: settled, with her CID) must
    # not take her copy with it (the third attacker review: copies were dropped by CID)
    twice = market_for(settings, 8).submit(task_id, arch, market.node(alice).cid).node_id
    _oracle(settings, task_id)
    assert market.node(twice).status == "rejected"
    # Bob: four rows (a point) better than Alice, whose file is gone: the validator counts her
    # from its copy, and Bob beats her exact score by the margin
    withdraw(alice)
    bob_raw, bob_count = _blend_counting(
        spec, init, trained["owner1"], rows, lambda c: alice_count + 4 <= c <= alice_count + 6
    )
    bob = market_for(settings, 4).submit(task_id, arch, add_bytes(market.store, bob_raw)).node_id
    log = _oracle(settings, task_id)
    assert market.node(bob).accuracy_bps == task.best_bps + 100, log

    # Carol: a point better than Bob, whose file and copy are both gone: the session runs
    # without his count, and Carol, a point above his exact score but not above the most it can
    # be (his release + 99), waits for his count, as every node would
    def a_point_above(count: int) -> tuple[bytes, int]:
        """A blend a point above `count`, the best's, and below the most it can be plus a
        point (towards another owner's model than Bob's: once his file is back, the copy
        check reads it)."""
        release = market.task(task_id, with_info=False).best_bps
        return _blend_counting(
            spec,
            init,
            trained["owner2"],
            rows,
            lambda c: c >= count + 4 and ladder.bps(c, len(rows)) < release + 99 + 100,
        )

    withdraw(bob).unlink()
    carol_raw, carol_count = a_point_above(bob_count)
    carol = market_for(settings, 5).submit(task_id, arch, add_bytes(market.store, carol_raw))
    carol = carol.node_id
    log = _oracle(settings, task_id)
    assert market.node(carol).status == "pending", log
    assert f"node {carol}: waiting (the validator could not count the best node {bob}" in log
    log = _oracle(settings, task_id)  # resting: no session (a cron'd oracle spent one a round)
    assert "two-party session" not in log and market.node(carol).status == "pending", log
    # Bob's file is back in the store: the validator counts him, and Carol is released
    add_bytes(market.store, bob_raw)
    advance_time(settings, int(pacing.RETRY_BASE_S) + 1)
    log = _oracle(settings, task_id)
    nodes = market.nodes(task_id)
    assert nodes[carol].status == "scored", log
    assert nodes[carol].accuracy_bps == ladder.round_down(ladder.bps(carol_count, len(rows)), 100)
    assert market.task(task_id, with_info=False).best_node == carol
    # Alice is no longer the best: her copy went with the next session
    assert not (kept / market.node(alice).weights_cid(spec)).exists()
    # Dave: a point better than Carol, whose file and copy are both gone for good: Dave waits
    # for her count for unread_best.HOLD_S from his reveal, and is then recorded against the
    # most her exact score can be, carrying his parent's score
    withdraw(carol).unlink()
    dave, _ = a_point_above(carol_count)
    dave = market_for(settings, 6).submit(task_id, arch, add_bytes(market.store, dave)).node_id
    # his first session fails, which starts his clock towards the word that the validator keeps
    # work waiting; counted in the next, he is served and the clock stops while he waits (it
    # ran on, and at the hour said the validator kept him waiting: second attacker review)
    lines: list[str] = []
    oracle = Oracle(
        market_for(settings, 0), fetch_timeout=0, log=lines.append, settings_env=settings.to_env()
    )
    monkeypatch.setattr(service, "FAILPOINT", f"session-fails:{dave}")
    oracle.run_round([task_id])
    assert dave in oracle._unserved, lines
    monkeypatch.setattr(service, "FAILPOINT", "")
    advance_time(settings, int(pacing.RETRY_BASE_S) + 1)
    oracle.run_round([task_id])
    log = "\n".join(lines)
    assert f"node {dave}: waiting (the validator could not count the best node {carol}" in log
    assert market.node(dave).status == "pending" and dave not in oracle._unserved, log
    advance_time(settings, int(unread_best.HOLD_S) - 120)
    log = _oracle(settings, task_id)
    assert market.node(dave).status == "pending", log  # held its whole hold, not less
    advance_time(settings, 120)
    log = _oracle(settings, task_id)
    nodes = market.nodes(task_id)
    assert nodes[dave].status == "scored", log
    assert nodes[dave].accuracy_bps == nodes[arch].accuracy_bps, log
    assert "recorded against the most its exact score can be" in log
    assert market.task(task_id, with_info=False).best_node == carol


def test_trained_weights_are_no_architecture(settings, deployed, files):
    """A sponsor fine-tunes weights on its own validation set and proposes them as an
    architecture's initial weights to win alone and take the pools back: the command line
    refuses it before any transaction, and sent straight to the contract it is rejected."""
    task_id = new_task(settings, files["validation"], "fake architecture", target="0.5")
    honest = node_id_of(
        cli_ok(settings, "propose", "--task", str(task_id), "--spec", MLP, "--account", "1")
    )
    _oracle(settings, task_id)
    trained = _train(
        settings, task_id, 3, data=files["validation"], parent=honest
    )  # stands in for tuning
    sponsor = market_for(settings, 0)
    _state(sponsor, trained)  # the trained weights load against the spec
    raw = json.loads(Path(MLP).read_text())
    raw["init_weights"] = sponsor.node(trained).cid
    spec_file = settings.home / "fake-arch.json"
    spec_file.write_text(json.dumps(raw))
    line = cli_error(
        settings, "propose", "--task", str(task_id), "--spec", str(spec_file), "--account", "0"
    )
    assert "not the initialisation" in line
    spec_cid = add_bytes(sponsor.store, spec_file.read_bytes())
    fake = sponsor.submit(task_id, 0, spec_cid).node_id  # around the CLI's check
    _oracle(settings, task_id)
    assert sponsor.nodes(task_id)[fake].reason == "not-initial"
    _finalize(settings, task_id)
    assert _gain(sponsor, task_id, sponsor.chain.address) == 0  # no expertise share for the sponsor


def test_compute_is_paid_only_for_replayed_public_training(settings, deployed, files):
    """Dave trains on Pat's published dataset honestly (replayed, paid compute). Eve claims the
    published dataset for weights trained on her own data (replay mismatch, rejected). Mallory
    trains Dave's node further on Pat's dataset and declares the data private, to take Pat's
    data share: the replay attributes her node to Pat's dataset, so the data share goes to Pat
    (Mallory keeps only the compute share of the training she really did)."""
    task_id = new_task(settings, files["validation"], "compute", target="0.999")
    arch = node_id_of(
        cli_ok(settings, "propose", "--task", str(task_id), "--spec", MLP, "--account", "1")
    )
    out = cli_ok(
        settings,
        "dataset",
        "publish",
        "--task",
        str(task_id),
        "--data",
        str(files["public"]),
        "--account",
        "6",
    )
    dataset = int(out.split("dataset ", 1)[1].split()[0])
    _oracle(settings, task_id)
    dave = _train(settings, task_id, 7, dataset=dataset, parent=arch)
    _oracle(settings, task_id)

    spec = load_spec(Path(MLP).read_bytes())
    eve = market_for(settings, 5)
    _, init = _state(eve, arch)
    own = build_torch(spec)
    own.load_state_dict(init)
    train_node(own, spec, load_file(files["owner2"]))
    eve_node = eve.submit(
        task_id, arch, add_bytes(eve.store, weights.to_bytes(own)), dataset
    ).node_id

    mallory = market_for(settings, 8)
    _, dave_state = _state(mallory, dave)
    relabelled = build_torch(spec)
    relabelled.load_state_dict(dave_state)
    train_node(relabelled, spec, mallory.dataset(task_id, dataset, "label"))
    mallory_node = mallory.submit(
        task_id, dave, add_bytes(mallory.store, weights.to_bytes(relabelled))
    ).node_id
    log = _oracle(settings, task_id)
    nodes = mallory.nodes(task_id)
    assert nodes[dave].status == "scored" and nodes[dave].verified_ops > 0, log
    assert (nodes[eve_node].status, nodes[eve_node].reason) == ("rejected", "replay-mismatch"), log
    assert nodes[mallory_node].status == "scored" and nodes[mallory_node].dataset_id == dataset, log
    assert f"node {mallory_node}: declared private data, but dataset {dataset} reproduces it" in log

    _finalize(settings, task_id)
    data_to = {p.account for p in mallory.payouts(task_id) if p.kind == "data"}
    assert mallory.chain.address not in data_to and eve.chain.address not in data_to
    assert data_to <= {market_for(settings, 6).chain.address}  # Pat, the publisher
    assert _gain(eve, task_id, eve.chain.address) == 0


def test_a_copy_of_a_node_whose_session_failed_cannot_take_its_raise(
    settings, deployed, files, monkeypatch
):
    """Alice's node is checked and ready, but its session fails this round (the validator cannot
    evaluate it: `session-fails`, an infrastructure fault); Mallory's copy of it in another form,
    revealed after it, is evaluated fine in the same round. Recorded then, the copy was the new
    best and held the raise. Now it waits for Alice's node, within the fetch timeout; the next
    round records Alice's first, and the copy gains nothing."""
    task_id = new_task(settings, files["validation"], "failed original", target="0.999")
    arch = node_id_of(
        cli_ok(settings, "propose", "--task", str(task_id), "--spec", MLP, "--account", "1")
    )
    _oracle(settings, task_id)
    alice_market = market_for(settings, 3)
    spec, init = _state(alice_market, arch)
    model = build_torch(spec)
    model.load_state_dict(init)
    train_node(model, spec, load_file(files["owner1"]))
    raw = save(nudged(model.state_dict(), init, 0.01, seed=11))
    alice = alice_market.submit(task_id, arch, add_bytes(alice_market.store, raw)).node_id
    mallory = market_for(settings, 8)
    copy = add_bytes(mallory.store, save(_permuted(weights.load(raw, spec), seed=9)))
    copy = mallory.submit(task_id, arch, copy).node_id

    lines: list[str] = []
    oracle = Oracle(
        market_for(settings, 0),
        fetch_timeout=3600,
        log=lines.append,
        settings_env=settings.to_env(),
    )
    monkeypatch.setattr(service, "FAILPOINT", f"session-fails:{alice}")
    oracle.run_round([task_id])
    out = "\n".join(lines)
    assert f"node {alice}: not scored" in out, out
    assert f"node {copy}: waiting (node {alice}, revealed before it, is not scored yet)" in out, out
    assert mallory.node(copy).status == mallory.node(alice).status == "pending"
    # the next round holds the copy back before any session, and Alice's node rests (tried
    # again after RETRY_BASE_S, doubling): no session is spent on either
    lines.clear()
    oracle.run_round([task_id])
    out = "\n".join(lines)
    assert "two-party session" not in out and f"node {alice}: not scored (its session" in out, out
    assert mallory.node(copy).status == "pending"
    advance_time(settings, pacing.RETRY_BASE_S + 1)
    lines.clear()
    oracle.run_round([task_id])  # tried again, failing again: now it rests twice as long
    out = "\n".join(lines)
    assert "scoring 1 node(s)" in out and mallory.node(copy).status == "pending", out
    monkeypatch.setattr(service, "FAILPOINT", "")
    advance_time(settings, 2 * pacing.RETRY_BASE_S + 1)
    lines.clear()
    oracle.run_round([task_id])
    oracle.run_round([task_id])  # Alice's node first, then the copy it held
    out = "\n".join(lines)
    nodes = mallory.nodes(task_id)
    assert nodes[alice].status == nodes[copy].status == "scored", out
    assert nodes[alice].raise_bps > 0 and nodes[copy].raise_bps == 0
    _finalize(settings, task_id)
    assert _gain(mallory, task_id, mallory.chain.address) == 0
    assert _gain(mallory, task_id, nodes[alice].author) > 0


def test_nodes_that_each_fail_their_session_stall_no_later_node(
    settings, deployed, files, monkeypatch, tmp_path
):
    """Mallory reveals first a node whose every session fails (weights the oracle's store serves
    and the validator's cannot, say: `session-fails`), enough of them to fill a session's part
    of the round (one node here: the part size is set to 1). That part failing used to fail the
    whole round, every round: the honest architecture revealed after it was never scored. Now
    the failing part is left unscored and resting, and the honest node is scored in the same
    round."""
    monkeypatch.setattr(service, "MAX_NODES_PER_SESSION", 1)
    task_id = new_task(settings, files["validation"], "failing parts")
    mallory = node_id_of(
        cli_ok(settings, "propose", "--task", str(task_id), "--spec", _narrow_mlp(tmp_path),
               "--account", "8")
    )  # fmt: skip
    honest = node_id_of(
        cli_ok(settings, "propose", "--task", str(task_id), "--spec", MLP, "--account", "1")
    )
    monkeypatch.setattr(service, "FAILPOINT", f"session-fails:{mallory}")
    lines: list[str] = []
    oracle = Oracle(
        market_for(settings, 0), fetch_timeout=0, log=lines.append, settings_env=settings.to_env()
    )
    (r,) = oracle.run_round([task_id])
    out = "\n".join(lines)
    nodes = market_for(settings).nodes(task_id)
    assert r.error is None and nodes[honest].status == "scored", out
    assert nodes[mallory].status == "pending" and mallory in r.unscorable, out
    assert oracle._failing[mallory].count == 1  # it rests before it is tried again


def _narrow_mlp(tmp_path, hidden: int = 48) -> str:
    """The example MLP with fewer hidden units: another design, so no copy of it."""
    raw = json.loads(Path(MLP).read_text())
    raw["layers"][0]["out_features"] = raw["layers"][2]["in_features"] = hidden
    (tmp_path / f"narrow-{hidden}.json").write_text(json.dumps(raw))
    return str(tmp_path / f"narrow-{hidden}.json")


def test_a_session_failed_at_the_right_moment_does_not_get_a_node_left_out(
    settings, deployed, files, monkeypatch, tmp_path
):
    """The task is due (its deadline passed); Bob's node and Carol's are pending. Bob's session
    fails: the validator was kept busy at that moment (`session-fails`, as a stranger flooding
    its port during that one session would make it), and Carol's is scored. The oracle used to
    finalize at once, leaving Bob's node out (its stake returned, nothing more); a node is now
    given up on only after its sessions kept failing GIVE_UP_TRIES times over GIVE_UP_S. Here
    the validator is back by the next try: Bob's node is scored, then the task is finalized."""
    task_id = new_task(settings, files["validation"], "failed at the end", target="0.999")
    alice = node_id_of(
        cli_ok(settings, "propose", "--task", str(task_id), "--spec", MLP, "--account", "1")
    )
    bob = node_id_of(
        cli_ok(settings, "propose", "--task", str(task_id), "--spec", _narrow_mlp(tmp_path),
               "--account", "2")
    )  # fmt: skip
    lines: list[str] = []
    oracle = Oracle(
        market_for(settings, 0), fetch_timeout=0, log=lines.append, settings_env=settings.to_env()
    )
    monkeypatch.setattr(service, "FAILPOINT", f"session-fails:{bob}")
    oracle.run_round([task_id])
    market = market_for(settings)
    assert market.node(alice).status == "scored" and market.node(bob).status == "pending"
    carol = node_id_of(
        cli_ok(settings, "propose", "--task", str(task_id), "--spec", _narrow_mlp(tmp_path, 32),
               "--account", "4")
    )  # fmt: skip
    advance_time(settings, 2 * 3600 + 60)  # past the deadline: due
    (r,) = oracle.run_round([task_id])  # Bob's tried again, failing again; Carol's scored
    out = "\n".join(lines)
    assert market.node(carol).status == "scored", out
    assert not market.task(task_id, with_info=False).finalized, out
    assert bob in r.unscorable and "still to score before finalizing" in out, out
    monkeypatch.setattr(service, "FAILPOINT", "")
    # past any rest (the chain's clock under a loaded machine once fell 50 s short of a rest
    # of 60 advanced by 61; the rule under test is the next try, not the rest's length)
    advance_time(settings, pacing.RETRY_MAX_S + 1)
    oracle.run_round([task_id])
    out = "\n".join(lines)
    assert market.node(bob).status == "scored", out
    assert market.task(task_id, with_info=False).finalized, out


def test_a_task_whose_every_session_fails_rests_before_the_next(
    settings, deployed, files, monkeypatch, tmp_path
):
    """Nodes that each fail their session alone, and nothing else pending: every round used to
    run a session per node, every 5 s. The task now rests (10 s, doubling) before it tries
    again, and says so; a node revealed meanwhile is scored without waiting for the rest."""
    task_id = new_task(settings, files["validation"], "all fail")
    node = node_id_of(
        cli_ok(settings, "propose", "--task", str(task_id), "--spec", MLP, "--account", "1")
    )
    lines: list[str] = []
    oracle = Oracle(
        market_for(settings, 0), fetch_timeout=0, log=lines.append, settings_env=settings.to_env()
    )
    monkeypatch.setattr(service, "FAILPOINT", f"session-fails:{node}")
    (r,) = oracle.run_round([task_id])
    assert r.error and "session-fails" in r.error
    lines.clear()
    (r,) = oracle.run_round([task_id])
    out = "\n".join(lines)
    assert "every session failed lately" in out and "two-party session" not in out, out
    # new work ends the rest: it is not kept waiting by an old failure
    later = node_id_of(
        cli_ok(settings, "propose", "--task", str(task_id), "--spec", _narrow_mlp(tmp_path),
               "--account", "2")
    )  # fmt: skip
    oracle.run_round([task_id])
    assert market_for(settings).node(later).status == "scored"
    monkeypatch.setattr(service, "FAILPOINT", "")
    advance_time(settings, 2 * pacing.RETRY_BASE_S + 1)  # its second failure: 60 s of rest
    oracle.run_round([task_id])
    assert market_for(settings).node(node).status == "scored"


def test_whoever_answers_at_the_validators_address_scores_nothing(settings, deployed, files):
    """Mallory takes the address the oracle is told its validator listens at (`--validator`)
    and answers there as the real validator code would, holding rows and shifting every count
    by 60 of 400 rows: her counts were recorded. The task names the sponsor's validator link key
    (made by `task create`), so the oracle's model party refuses her link: nothing is counted,
    nothing recorded, and the round blames no node. The sponsor's own validator at the same
    address then scores the node."""
    task_id = new_task(settings, files["validation"], "impostor", target="0.999")
    info = market_for(settings).task(task_id).info
    assert info.validator_key is not None and len(info.validator_key) == 64
    arch = node_id_of(
        cli_ok(settings, "propose", "--task", str(task_id), "--spec", MLP, "--account", "1")
    )

    address = f"127.0.0.1:{free_port()}"
    mallory = validator_process(
        settings, task_id, files["validation"], address, "--one-session",
        hostile=("--shift", "60", "--own-key"),
    )  # fmt: skip
    out = run_cli(
        settings, "--once", "--task", str(task_id), "--validator", address, module="oracle"
    )
    _, err = mallory.communicate(timeout=300)
    said = out.stdout.decode() + out.stderr.decode()
    assert "party 0's key" in said and "is not one this party accepts" in said, said
    assert market_for(settings).node(arch).status == "pending", said
    assert mallory.returncode != 0, err.decode()[-2000:]

    sponsor = validator_process(settings, task_id, files["validation"], address, "--one-session")
    out = cli_ok(
        settings, "--once", "--task", str(task_id), "--validator", address, module="oracle"
    )
    _, err = sponsor.communicate(timeout=300)
    assert sponsor.returncode == 0, err.decode()[-2000:]
    assert market_for(settings).node(arch).status == "scored", out


def test_a_node_that_does_not_fit_the_task_stalls_nothing(settings, deployed, files):
    """An architecture for 3 classes in a 10-class task, sent straight to the contract, is
    rejected before any session; the honest architecture beside it is scored in the same round."""
    task_id = new_task(settings, files["validation"], "unfit")
    architect = market_for(settings, 2)
    raw = json.loads(Path(MLP).read_text())
    raw["num_classes"] = 3
    raw["layers"][-1]["out_features"] = 3
    unfit_spec = load_spec(json.dumps(raw).encode())
    init = add_bytes(architect.store, weights.initial_weights(unfit_spec))
    spec_cid = add_bytes(architect.store, unfit_spec.with_init_weights(init).to_bytes())
    unfit = architect.submit(task_id, 0, spec_cid).node_id
    honest = node_id_of(
        cli_ok(settings, "propose", "--task", str(task_id), "--spec", MLP, "--account", "1")
    )
    out = _oracle(settings, task_id)
    nodes = architect.nodes(task_id)
    assert (nodes[unfit].status, nodes[unfit].reason) == ("rejected", "unfit-spec"), out
    assert nodes[honest].status == "scored"
    assert out.count("two-party session") == 1  # one session, for the honest node only


def test_a_commitment_made_in_time_holds_the_finalize_until_it_is_revealed(
    settings, deployed, files
):
    """Class 5 of the second attack round, on the real oracle: once a task was due, anyone could
    finalize between a stranger's commitment and its reveal, and work committed in time never
    became a node. Account 6 commits a trained child of the architecture and stops before the
    reveal; the oracle scores the architecture, which reaches the target. Neither the oracle nor
    the architect finalizes while the commitment may be revealed. Account 6 reveals later
    (`bountytree reveal`, past the deadline the target brought forward, inside the window after
    it); the oracle scores the child, only then finalizes, and the child's author is paid."""
    task_id = new_task(settings, files["validation"], "reveal window", target="0.01")
    arch = node_id_of(
        cli_ok(settings, "propose", "--task", str(task_id), "--spec", MLP, "--account", "1")
    )
    owner = market_for(settings, 6)
    spec, init = _state(owner, arch)
    model = build_torch(spec)
    model.load_state_dict(init)
    train_node(model, spec, load_file(files["owner2"]))
    trained = weights.to_bytes(model)

    def stop(*_args, **_kwargs):
        raise RuntimeError("stopped between the halves")

    owner.chain.wait_for_block_after = stop
    with pytest.raises(RuntimeError, match="stopped"):
        owner.submit(task_id, arch, cid_of(trained), content=trained)
    del owner.chain.wait_for_block_after

    out = _oracle(settings, task_id)
    task = owner.task(task_id, with_info=False)
    assert task.target_reached and task.open_commitments == 1 and not task.finalized, out
    assert "waiting for 1 commitment(s) to be revealed" in out, out
    line = cli_error(settings, "finalize", "--task", str(task_id), "--account", "1")
    assert "may still be revealed" in line, line

    advance_time(settings, task.seconds_left + 60)  # the deadline passed; reveals still open
    revealed = cli_ok(settings, "reveal", "--task", str(task_id), "--account", "6")
    child = node_id_of(revealed.split("revealed as ", 1)[1])
    out = _oracle(settings, task_id)
    assert owner.node(child).status == "scored" and "finalized" in out, out
    assert owner.task(task_id, with_info=False).winner == child
    assert _gain(owner, task_id, owner.chain.address) > 0


def test_nobody_but_the_oracle_finalizes_over_pending_work(settings, deployed, files):
    """One second after the deadline a stranger cannot finalize while a node revealed in time
    is unscored; the oracle scores it and finalizes."""
    task_id = new_task(settings, files["validation"], "cut-off", deadline="10m")
    arch = node_id_of(
        cli_ok(settings, "propose", "--task", str(task_id), "--spec", MLP, "--account", "1")
    )
    advance_time(settings, 10 * 60 + 1)
    line = cli_error(settings, "finalize", "--task", str(task_id), "--account", "9")
    assert "WorkPending" in line
    out = _oracle(settings, task_id)
    market = market_for(settings)
    assert market.node(arch).status == "scored" and "finalized" in out
    assert _gain(market, task_id, market_for(settings, 1).chain.address) > 0


def test_the_oracle_says_when_the_validator_keeps_work_waiting(
    settings, deployed, files, monkeypatch
):
    """A node's sessions fail (the validator refusing it, `session-fails`): an hour later the
    oracle, restarted meanwhile, says on-chain that the validator keeps the task's work
    waiting, which makes a finalize leaving the node burn the sponsor's bond; the validator
    back and the node scored, the oracle takes the word back. Before, any node left pending
    burned the bond, whoever's doing it was (an oracle away, a stranger's files that never
    came: design.md, "The audit bond"); and the first version kept the failures' clock in
    memory only, so an oracle restarted every hour never said it."""
    task_id = new_task(settings, files["validation"], "validator away", target="0.999")
    node = node_id_of(
        cli_ok(settings, "propose", "--task", str(task_id), "--spec", MLP, "--account", "1")
    )
    lines: list[str] = []
    oracle = Oracle(
        market_for(settings, 0), fetch_timeout=0, log=lines.append, settings_env=settings.to_env()
    )
    market = market_for(settings)
    monkeypatch.setattr(service, "FAILPOINT", f"session-fails:{node}")
    oracle.run_round([task_id])
    assert not market.task(task_id, with_info=False).validation_unread  # one failure says nothing
    advance_time(settings, int(pacing.GIVE_UP_S) + 60)
    oracle = Oracle(  # restarted: the failures' clock is kept on disk
        market_for(settings, 0), fetch_timeout=0, log=lines.append, settings_env=settings.to_env()
    )
    oracle.run_round([task_id])
    out = "\n".join(lines)
    assert market.task(task_id, with_info=False).validation_unread, out
    assert f"the validator has not scored node(s) [{node}]" in out, out
    monkeypatch.setattr(service, "FAILPOINT", "")
    advance_time(settings, int(pacing.RETRY_MAX_S) + 1)  # past any rest
    oracle.run_round([task_id])
    out = "\n".join(lines)
    assert market.node(node).status == "scored", out
    assert not market.task(task_id, with_info=False).validation_unread, out
    assert "the validator scored every node" in out, out
    # the record names its deployment: a chain reset under the same id reuses node ids, whose
    # old clocks would say at once that a new task's validator kept work waiting
    record = oracle._unserved_file
    record.write_text(json.dumps({"deployment": "0xother@00", "nodes": {str(node): [task_id, 0]}}))
    assert service._read_unserved(record, oracle._deployment) == {}
    record.write_text(json.dumps({"deployment": oracle._deployment, "nodes": {"7": [task_id, 5]}}))
    assert service._read_unserved(record, oracle._deployment) == {7: (task_id, 5.0)}


def test_the_word_on_the_validator_is_taken_back_once_no_node_waits_on_it(
    settings, deployed, files, monkeypatch
):
    """The validator away for an hour, the oracle says so on-chain; back, it scores every node
    it is given, while a stranger's node whose file has not come stays pending, and a node
    revealed after it waits for it (reveal order). The word used to be taken back only once no
    node of the task was pending, which a busy task never is, so an honest sponsor's bond burned
    at a finalize leaving such nodes (open finding, "the validation word is per task"). It is
    now taken back once no pending node waits on the validator: kept while the node and a child
    of it fail their sessions beside the stranger's, taken back once both are recorded, though
    two nodes still wait for the stranger's file."""
    task_id = new_task(settings, files["validation"], "validator away once", target="0.999")
    node = node_id_of(
        cli_ok(settings, "propose", "--task", str(task_id), "--spec", MLP, "--account", "1")
    )
    lines: list[str] = []
    day = 24 * 3600  # the stranger's file stays young whatever the chain's clock does

    def oracle() -> Oracle:  # restarted every round: nothing is read from the failures' clock
        return Oracle(
            market_for(settings, 0), fetch_timeout=30 * day, log=lines.append,
            settings_env=settings.to_env(),
        )  # fmt: skip

    def unread() -> bool:
        return market.task(task_id, with_info=False).validation_unread

    market = market_for(settings)
    monkeypatch.setattr(service, "FAILPOINT", f"session-fails:{node}")
    oracle().run_round([task_id])
    advance_time(settings, int(pacing.GIVE_UP_S) + 60)
    oracle().run_round([task_id])
    assert unread(), "\n".join(lines)
    # a child of the node; a stranger's architecture whose file never reaches the store; and a
    # child revealed after it, which waits for it
    child = _train(settings, task_id, 2, data=files["owner1"], parent=node)
    stranger = market_for(settings, 5).submit(task_id, 0, cid_of(b"a spec nobody serves")).node_id
    later = _train(settings, task_id, 3, data=files["owner2"], parent=node)
    advance_time(settings, int(pacing.RETRY_MAX_S) + 1)  # past any rest
    lines.clear()
    oracle().run_round([task_id])  # the node's session fails again; its child waits for it
    out = "\n".join(lines)
    assert market.node(node).status == "pending" and market.node(child).status == "pending", out
    assert unread(), out  # both wait on the validator
    monkeypatch.setattr(service, "FAILPOINT", "")
    advance_time(settings, int(pacing.RETRY_MAX_S) + 1)
    oracle().run_round([task_id])
    out = "\n".join(lines)
    assert market.node(node).status == "scored" and market.node(child).status == "scored", out
    assert f"node {later}: waiting (node {stranger}, revealed before it" in out, out
    assert market.node(stranger).status == "pending" and market.node(later).status == "pending"
    assert not unread(), out
    assert "the validator scored every node it was given" in out, out
    oracle().run_round([task_id])  # nothing held, nothing said again
    assert not unread(), "\n".join(lines)


def test_a_node_whose_parent_rests_after_failing_stalls_no_record_of_its_task(
    settings, deployed, files, monkeypatch, tmp_path
):
    """A validator that refuses one node with a child: the node rests after its failed session
    while its child is counted. The child used to go into the batch of scores, which the
    contract refuses whole (its parent not scored), so nothing the validator served was
    recorded until the node's next try, and the word on the validator could not be taken back
    (attacker review of the per-node word). The child now waits for its parent; the rest is
    recorded."""
    task_id = new_task(settings, files["validation"], "a resting parent", target="0.999")
    refused = node_id_of(
        cli_ok(settings, "propose", "--task", str(task_id), "--spec", MLP, "--account", "1")
    )
    child = _train(settings, task_id, 2, data=files["owner1"], parent=refused)
    lines: list[str] = []
    oracle = Oracle(
        market_for(settings, 0), fetch_timeout=0, log=lines.append, settings_env=settings.to_env()
    )
    market = market_for(settings)
    monkeypatch.setattr(service, "FAILPOINT", f"session-fails:{refused}")
    oracle.run_round([task_id])  # the refused node fails, its child waits for it
    lines.clear()
    other = node_id_of(
        cli_ok(settings, "propose", "--task", str(task_id), "--spec", _narrow_mlp(tmp_path, 53),
               "--account", "3")
    )  # fmt: skip
    rounds = oracle.run_round([task_id])  # the refused node rests; its child and another count
    out = "\n".join(lines)
    assert f"node {refused}: not scored (its session failed 1 time(s)" in out, out  # it rests
    assert rounds[0].waiting[child] == f"parent {refused} is not scored yet", out
    assert rounds[0].error is None, out
    assert market.node(other).status == "scored", out
    assert market.node(refused).status == "pending" and market.node(child).status == "pending"
