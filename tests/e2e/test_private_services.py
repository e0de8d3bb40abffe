"""A private task played by its services: two custodians and a dealer as long-running
processes (`python -m custodian`), the sponsor, an architect and a data owner on the command
line. Nobody but the sponsor, after the hand-over, ever holds a trained node's weights."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time

import torch
from conftest import cli_error, cli_ok, created_task_id, market_for, node_id_of

from bountytree.chain.client import ganache_account
from bountytree.market.custody import Custody
from bountytree.market.ladder import DEFAULT_MARGIN_BPS, round_down
from bountytree.models import weights as weights_io
from bountytree.models.datasets import load_file
from bountytree.models.spec import build_torch, parse_spec
from bountytree.private import rows
from bountytree.processes import free_port
from bountytree.storage.store import get_bytes
from tests.e2e.test_private_task import SPEC

CUSTODIANS, DEALER = (8, 9), 10
WAIT_S = 420


def _start(settings, *args: str, account: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "BOUNTYTREE_RPC": settings.rpc,
        "BOUNTYTREE_STORE": settings.store,
        "BOUNTYTREE_HOME": str(settings.home),
        "BOUNTYTREE_DEPLOYMENTS": str(settings.deployments),
        "BOUNTYTREE_ACCOUNT": str(account),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "custodian", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _wait(what, done, procs, timeout=WAIT_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done():
            return
        for p in procs:
            assert p.poll() is None, p.stdout.read().decode()
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}")


def test_custodians_train_score_and_hand_over_a_private_task(settings, deployed, files, tmp_path):
    address = {i: ganache_account(i).address for i in (*CUSTODIANS, DEALER)}
    admin = Custody(market_for(settings, 0))  # the deployer approves custodians and dealers
    for account in address.values():
        if not admin.is_approved(account):
            admin.approve(account)
    keys = {}
    for name in ("sponsor", "c0", "c1"):
        keys[name] = tmp_path / f"{name}.key"
        cli_ok(settings, "custody", "keygen", "--out", str(keys[name]))
    create = (
        "task", "create", "--validation", str(files["validation"]),
        "--name", "private services", "--bounty", "1", "--target", "0.2",
        "--deadline", "2h", "--stake", "0.01", "--shares", "80/0/20",
    )  # fmt: skip
    terms = (
        "--custodians", f"{address[8]},{address[9]}", "--dealer", address[10],
        "--key-file", str(keys["sponsor"]), "--custody-stake", "0.02", "--custody-fee", "0.03",
    )  # fmt: skip
    tasks_before = market_for(settings).chain.tree.functions.counts().call()[0]
    assert "only with --private-models" in cli_error(settings, *create, *terms)
    assert "needs --dealer" in cli_error(settings, *create, "--private-models", *terms[:2])
    assert "three different accounts" in cli_error(
        settings, *create, "--private-models", *terms[:3], address[8], *terms[4:]
    )
    # refused before anything was sent
    assert market_for(settings).chain.tree.functions.counts().call()[0] == tasks_before
    out = cli_ok(settings, *create, "--private-models", *terms)
    task_id = created_task_id(out)
    assert "private models: custodians" in out
    # rows cannot be shared before the custodians have said where to seal them
    assert "not accepted by all three" in cli_error(
        settings, "custody", "share-validation", "--task", str(task_id)
    )
    for key, account in (("c0", 8), ("c1", 9)):
        cli_ok(
            settings, "custody", "accept", "--task", str(task_id),
            "--key-file", str(keys[key]), "--account", str(account),
        )  # fmt: skip
    cli_ok(settings, "custody", "accept", "--task", str(task_id), "--account", "10")
    cli_ok(settings, "custody", "share-validation", "--task", str(task_id))

    peer = f"127.0.0.1:{free_port()}"
    procs = [
        _start(settings, "dealer", "--peer", peer, "--session-timeout", "30", account=10),
        *[
            _start(
                settings,
                "serve",
                "--key-file",
                str(keys[k]),
                "--peer",
                peer,
                "--task",
                str(task_id),
                "--session-timeout",
                "30",
                "--interval",
                "1",
                account=a,
            )
            for k, a in (("c0", 8), ("c1", 9))
        ],
    ]
    try:
        # An architecture the custodians cannot train on shares (Adam) comes first: both reject
        # it, and it stalls nobody behind it.
        unfit = node_id_of(
            cli_ok(settings, "propose", "--task", str(task_id), "--spec", "examples/mlp.json",
                   "--account", "3")
        )  # fmt: skip
        spec_file = tmp_path / "spec.json"
        spec_file.write_text(json.dumps(SPEC))
        arch = node_id_of(
            cli_ok(settings, "propose", "--task", str(task_id), "--spec", str(spec_file),
                   "--account", "1")
        )  # fmt: skip
        owner_rows = tmp_path / "owner.csv"
        lines = files["owner1"].read_text().splitlines()
        owner_rows.write_text("\n".join(lines[:161]) + "\n")
        child = node_id_of(
            cli_ok(settings, "custody", "submit", "--task", str(task_id), "--parent", str(arch),
                   "--data", str(owner_rows), "--account", "2")
        )  # fmt: skip
        market = market_for(settings)
        # A thief submits a record naming the owner's sealed shares as its own rows: they are
        # bound to the owner's submission, open nowhere else, and the thief's node is rejected.
        stolen = json.loads(get_bytes(market.store, market.node(child).cid, 4096))
        thief = market_for(settings, 4)
        record = rows.PrivateNode(arch, stolen["rows"], tuple(stolen["shares"])).to_bytes()
        theft = thief.submit(task_id, arch, thief.store.add(io.BytesIO(record))).node_id
        _wait("the child's score", lambda: market.node(child).status == "scored", procs)
        _wait("the theft's rejection", lambda: market.node(theft).status == "rejected", procs)
        assert market.nodes(task_id)[theft].reason == "corrupt"
        recorded = market.node(child).accuracy_bps
        assert recorded >= 2000
        assert market.node(unfit).status == "rejected"
        assert market.nodes(task_id)[unfit].reason.startswith("unfit-spec")
        custody = Custody(market)
        # the chain holds commitments, the store only ciphertext: the node's CID is a record
        assert custody.commitment(child, 0) and custody.commitment(child, 1)
        record = get_bytes(market.store, market.node(child).cid, 4096)
        assert json.loads(record)["format"] == "bountytree/private-node@1"
        cli_ok(settings, "finalize", "--task", str(task_id))
        _wait("the hand-over", lambda: custody.require(task_id).settled, procs)
    finally:
        for p in procs:
            p.kill()
            p.wait()
    out_dir = tmp_path / "model"
    cli_ok(
        settings, "model", "export", "--task", str(task_id), "--out", str(out_dir),
        "--key-file", str(keys["sponsor"]),
    )  # fmt: skip
    spec = parse_spec(SPEC)
    model = build_torch(spec)
    model.load_state_dict(weights_io.load((out_dir / "model.safetensors").read_bytes(), spec))
    validation = load_file(files["validation"])
    with torch.no_grad():
        correct = int(
            (model(torch.from_numpy(validation.X)).argmax(1).numpy() == validation.y).sum()
        )
    assert round_down(correct * 10_000 // len(validation), DEFAULT_MARGIN_BPS) == recorded
