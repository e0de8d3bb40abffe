"""Reliability drills. Two more live beside the code they drill: killing the oracle mid-batch
and mid-session (tests/oracle/test_oracle.py::test_killed_anywhere_and_restarted_…) and two
trainers submitting at the same moment (tests/trainer/…::test_two_trainers_at_once_both_land)."""

from __future__ import annotations

import pytest
from safetensors.torch import save

from bountytree.chain.client import deploy, ganache_account
from bountytree.chain.local import start_ganache
from bountytree.config import Settings
from bountytree.market.actions import open_market
from bountytree.models import weights
from bountytree.processes import free_port, stop
from bountytree.storage.cid import cid_from_digest, digest_from_cid
from bountytree.storage.store import add_bytes
from tests.conftest import (
    advance_time,
    cli_error,
    cli_ok,
    market_for,
    new_task,
    node_id_of,
    variant,
)

pytestmark = pytest.mark.mpc


def test_ganache_restarted_from_its_saved_state_loses_nothing(tmp_path, files):
    port = free_port()
    s = Settings(
        rpc=f"http://127.0.0.1:{port}",
        account="0",
        store=str(tmp_path / "store"),
        home=tmp_path,
        deployments=tmp_path / "deployments",
    )
    chain = start_ganache(port, tmp_path / "chain")
    try:
        deploy(s)
        task_id = new_task(s, files["validation"], "survives", bounty="2", target="0.1")
        node = node_id_of(
            cli_ok(
                s,
                "propose",
                "--task",
                str(task_id),
                "--spec",
                "examples/mlp.json",
                "--account",
                "2",
            )
        )
    finally:
        stop(chain)
    chain = start_ganache(port, tmp_path / "chain")
    try:
        out = cli_ok(s, "task", "show", str(task_id))
        assert "survives" in out and f"#{node} architecture" in out and "pending" in out
        cli_ok(
            s, "--once", "--task", str(task_id), module="oracle"
        )  # carries on: scores, reaches 10 %, finalizes
        market = open_market(s, ganache_account(2))
        assert market.task(task_id).finalized and market.pending() > 0
    finally:
        stop(chain)
    chain = start_ganache(port, tmp_path / "chain")
    try:
        market = open_market(s, ganache_account(2))
        owed = market.pending()
        assert owed > 0  # the credited payout survived the second restart too
        cli_ok(s, "withdraw", "--account", "2")
        assert market.pending() == 0
    finally:
        stop(chain)


def test_corrupted_block_fails_reads_by_name_and_the_oracle_blames_nobody(
    settings, deployed, files
):
    task_id = new_task(settings, files["validation"], "corruption")
    arch = node_id_of(
        cli_ok(settings, "propose", "--task", str(task_id), "--spec", "examples/mlp.json")
    )
    market = market_for(settings, 5)
    spec = market.architecture_spec(market.node(arch))
    state = weights.load(weights.initial_weights(spec), spec)
    state["0.bias"] = (
        state["0.bias"] + 1
    )  # other weights than the architecture's, so no block is shared
    bad_cid = add_bytes(market.store, save(state))
    good = market.submit(task_id, arch, add_bytes(market.store, variant(spec, 7))).node_id
    bad = market.submit(task_id, arch, bad_cid).node_id
    block = market.store._block_path(digest_from_cid(bad_cid))
    block.write_bytes(block.read_bytes()[:-1] + b"\x00")
    line = cli_error(settings, "ipfs", "cat", bad_cid)
    assert bad_cid in line and "corrupted" in line
    oracle = ("--once", "--task", str(task_id), "--fetch-timeout", "120")
    out = cli_ok(settings, *oracle, module="oracle")
    nodes = market.nodes(task_id)
    # Bytes that do not hash to their CID are the store's fault, never the author's: it waits.
    assert nodes[bad].status == "pending" and f"{bad_cid} is corrupted" in out, out
    assert f"node {bad}: waiting" in out, out
    assert nodes[good].status == "scored" and nodes[arch].status == "scored"
    # Past the time limit it is still nobody's fault (never rejected), but the oracle says that
    # it stopped waiting: the line changes, so a long-running oracle says it again.
    advance_time(settings, 180)
    out = cli_ok(settings, *oracle, module="oracle")
    assert f"node {bad}: overdue, not scored; finalize does not wait for it" in out, out
    assert market.node(bad).status == "pending"


def test_weights_that_never_arrive_are_rejected_after_the_time_limit(settings, deployed, files):
    task_id = new_task(settings, files["validation"], "never arrives")
    arch = node_id_of(
        cli_ok(settings, "propose", "--task", str(task_id), "--spec", "examples/mlp.json")
    )
    author = market_for(settings, 6)
    reputation_before = author.reputation(author.chain.address)
    lost = author.submit(task_id, arch, cid_from_digest(bytes(range(32)))).node_id
    cli_ok(settings, "--once", "--task", str(task_id), "--fetch-timeout", "120", module="oracle")
    assert (
        author.node(lost).status == "pending"
    )  # still inside its time limit: waiting, not rejected
    advance_time(settings, 180)
    out = cli_ok(
        settings, "--once", "--task", str(task_id), "--fetch-timeout", "120", module="oracle"
    )
    node = author.nodes(task_id)[lost]
    assert node.status == "rejected" and node.reason == "missing", out
    forfeits = author.logs("StakeForfeited", taskId=task_id)
    assert [e["args"]["nodeId"] for e in forfeits] == [lost]
    assert author.task(task_id).forfeited == 10**16
    assert author.reputation(author.chain.address) == reputation_before - 20_000
