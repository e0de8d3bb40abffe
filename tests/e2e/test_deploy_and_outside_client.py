"""`bountytree deploy` on the session's real local chain (Ganache, anvil or Hardhat), then a plain
web3.py client that knows nothing but the deployment file runs a whole task through the
interface of docs/design.md; the same deployment on a chain that plays a public one (another
chain id), where every transaction is quoted and confirmed; and `bountytree up --chain anvil`."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import time

import pytest
from conftest import TEST_CHAIN, run_cli
from eth_abi import encode
from web3 import Web3
from web3.logs import DISCARD

from bountytree.chain.client import ganache_account
from bountytree.chain.local import start_chain
from bountytree.config import ROOT
from bountytree.errors import UserError
from bountytree.processes import free_port, wait_for_port

SEPOLIA = 11155111


def test_deploy_writes_a_file_an_outside_client_can_use(settings, tmp_path):
    deployments = tmp_path / "deployments"
    result = run_cli(
        settings, "deploy", "--account", "0", env={"BOUNTYTREE_DEPLOYMENTS": str(deployments)}
    )
    assert result.returncode == 0, result.stderr.decode()
    out = result.stdout.decode()
    assert "BountyTree" in out and "gas" in out and "wrote" in out

    # ── an outside client: web3.py, the JSON file, the local chain's unlocked accounts ──
    w3 = Web3(Web3.HTTPProvider(settings.rpc))
    record = json.loads((deployments / f"{w3.eth.chain_id}.json").read_text())
    tree = w3.eth.contract(address=record["BountyTree"]["address"], abi=record["BountyTree"]["abi"])
    rep = w3.eth.contract(address=record["Reputation"]["address"], abi=record["Reputation"]["abi"])
    oracle, sponsor, architect, owner, publisher = w3.eth.accounts[:5]
    assert tree.functions.hasRole(tree.functions.ORACLE_ROLE().call(), oracle).call()
    assert rep.functions.writer().call() == tree.address

    def send(fn, sender, value=0):
        receipt = w3.eth.wait_for_transaction_receipt(fn.transact({"from": sender, "value": value}))
        assert receipt.status == 1
        return receipt

    stake, bounty = Web3.to_wei(0.01, "ether"), Web3.to_wei(2, "ether")
    deadline = w3.eth.get_block("latest").timestamp + 3600
    r = send(
        tree.functions.createTask(
            b"\x01" * 32, b"\x02" * 32, 9000, deadline, 5000, 3000, 2000, stake, 0, 0, 0, False
        ),
        sponsor,
        bounty,
    )
    task_id = tree.events.TaskCreated().process_receipt(r, errors=DISCARD)[0].args.taskId

    def commit_then_reveal(sender, types, values, reveal):
        """Everything put on a task is committed first, then revealed in a later block."""
        salt = os.urandom(32)
        hidden = Web3.keccak(
            encode(["address", "uint256", *types, "bytes32"], [sender, task_id, *values, salt])
        )
        commit = send(tree.functions.commitSubmission(task_id, hidden), sender, stake)
        # as on a public chain, the reveal waits for a later block (gas is estimated on the latest)
        deadline = time.monotonic() + 30
        while w3.eth.block_number <= commit.blockNumber and time.monotonic() < deadline:
            time.sleep(0.1)
        return send(reveal(salt), sender)

    node_fields = ["uint256", "bytes32", "uint256"]
    r = commit_then_reveal(
        architect,
        node_fields,
        [0, b"\x03" * 32, 0],
        lambda salt: tree.functions.revealSubmission(task_id, 0, b"\x03" * 32, 0, salt),
    )
    arch = tree.events.ArchitectureProposed().process_receipt(r, errors=DISCARD)[0].args.nodeId
    r = commit_then_reveal(
        publisher,
        ["bytes32"],
        [b"\x05" * 32],
        lambda salt: tree.functions.revealDataset(task_id, b"\x05" * 32, salt),
    )
    dataset = tree.events.DatasetPublished().process_receipt(r, errors=DISCARD)[0].args.datasetId
    assert tree.functions.datasetIdOf(task_id, b"\x05" * 32).call() == dataset == 1

    # a compute provider trains on the published dataset
    weights, ops = b"\x04" * 32, 12345
    r = commit_then_reveal(
        owner,
        node_fields,
        [arch, weights, dataset],
        lambda salt: tree.functions.revealSubmission(task_id, arch, weights, dataset, salt),
    )
    node = tree.events.NodeSubmitted().process_receipt(r, errors=DISCARD)[0].args
    assert (node.parentId, node.author, node.datasetId) == (arch, owner, dataset)

    send(
        tree.functions.recordScores(
            task_id, [(arch, 6000, 0, 0), (node.nodeId, 9100, ops, dataset)]
        ),
        oracle,
    )
    r = send(tree.functions.finalize(task_id), sponsor)
    assert (
        tree.events.TaskFinalized().process_receipt(r, errors=DISCARD)[0].args.winnerNodeId
        == node.nodeId
    )
    fn = tree.functions.getTask(task_id)
    task = dict(
        zip([c["name"] for c in fn.abi["outputs"][0]["components"]], fn.call(), strict=False)
    )
    assert task["finalized"] is True and task["pendingNodes"] == 0

    # data 50% to the publisher, compute 30% to the provider, expertise 20% to the architect,
    # each less the reputation levy; stakes back (the dataset's at its reveal)
    levy_bps = tree.functions.REPUTATION_LEVY_BPS().call()

    def net(wei):
        return wei - wei * levy_bps // 10_000

    assert tree.functions.pendingWithdrawals(publisher).call() == stake + net(bounty * 5 // 10)
    assert tree.functions.pendingWithdrawals(owner).call() == stake + net(bounty * 3 // 10)
    assert tree.functions.pendingWithdrawals(architect).call() == stake + net(bounty * 2 // 10)
    before = w3.eth.get_balance(owner)
    r = send(tree.functions.withdraw(), owner)
    assert (
        w3.eth.get_balance(owner)
        == before + stake + net(bounty * 3 // 10) - r.gasUsed * r.effectiveGasPrice
    )
    # a point per REPUTATION_POINT_PRICE of each account's levy; the sponsor pays none, earns none
    price = tree.functions.REPUTATION_POINT_PRICE().call()
    assert [rep.functions.scoreOf(a).call() for a in (owner, architect, publisher, sponsor)] == [
        (bounty * share // 10 - net(bounty * share // 10)) // price for share in (3, 2, 5)
    ] + [0]


def test_deploy_errors_are_one_line(settings, tmp_path):
    down = run_cli(settings, "deploy", "--rpc", "http://127.0.0.1:1")
    assert down.returncode == 2 and "cannot reach the chain" in down.stderr.decode()
    assert down.stderr.decode().count("\n") == 1
    bad_key = run_cli(settings, "deploy", env={"BOUNTYTREE_PRIVATE_KEY": "0x1234"})
    assert bad_key.returncode == 2 and "not a valid private key" in bad_key.stderr.decode()
    no_build = run_cli(
        settings,
        "deploy",
        env={
            "BOUNTYTREE_BUILD": str(tmp_path / "nothing"),
            "BOUNTYTREE_DEPLOYMENTS": str(tmp_path / "d"),
        },
    )
    assert no_build.returncode == 2 and "compile the contracts" in no_build.stderr.decode()
    assert not (tmp_path / "d").exists()  # nothing written


# ── a chain that plays a public one: the local chain's software under Sepolia's chain id ──


@pytest.fixture(scope="module")
def public_chain():
    chain = start_chain(TEST_CHAIN, free_port(), chain_id=SEPOLIA)
    yield chain
    chain.stop()


def _public_cli(public_chain, tmp_path, *args, stdin=None):
    """A bountytree command against the public-looking chain, as a user runs it: the account is
    named (`dev:0`), stdin is what the caller gives (a pipe, or a terminal)."""
    env = {
        **os.environ,
        "BOUNTYTREE_RPC": public_chain.rpc,
        "BOUNTYTREE_HOME": str(tmp_path / "home"),
        "BOUNTYTREE_DEPLOYMENTS": str(tmp_path / "deployments"),
        "BOUNTYTREE_STORE": str(tmp_path / "store"),
    }
    env.pop("BOUNTYTREE_ACCOUNT", None)
    return subprocess.run(
        [sys.executable, "-m", "bountytree", *args],
        stdin=stdin if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        env=env,
        timeout=300,
    )


def _on_a_terminal(public_chain, tmp_path, answers: str, *args):
    """Runs the command with a terminal as stdin, the answers typed in advance."""
    leader, follower = pty.openpty()
    try:
        os.write(leader, answers.encode())
        return _public_cli(public_chain, tmp_path, *args, stdin=follower)
    finally:
        os.close(leader)
        os.close(follower)


def test_off_a_local_chain_nothing_is_sent_unconfirmed(public_chain, tmp_path):
    w3 = Web3(Web3.HTTPProvider(public_chain.rpc))
    deployer = ganache_account(0).address
    before = w3.eth.get_transaction_count(deployer)

    refused = _public_cli(public_chain, tmp_path, "deploy", "--account", "0")
    assert refused.returncode == 2 and b"deterministic keys are public" in refused.stderr

    piped = _public_cli(public_chain, tmp_path, "deploy", "--account", "dev:0")
    lines = piped.stderr.decode().strip().splitlines()
    assert piped.returncode == 2 and len(lines) == 1, piped.stderr
    assert "stdin is not a terminal (pass --yes" in lines[0]

    declined = _on_a_terminal(public_chain, tmp_path, "n\n", "deploy", "--account", "dev:0")
    err = declined.stderr.decode()
    assert (
        declined.returncode == 2 and "error: not sent: deploy Reputation was not confirmed" in err
    )
    assert f"deploy Reputation on chain {SEPOLIA} from {deployer}: gas ~" in err
    assert "send it? [y/N]" in err and "at most" in err

    assert w3.eth.get_transaction_count(deployer) == before  # nothing was sent
    assert not (tmp_path / "deployments").exists()


def test_deploy_and_a_task_on_a_public_chain_are_quoted_and_confirmed(public_chain, tmp_path):
    w3 = Web3(Web3.HTTPProvider(public_chain.rpc))
    deployed = _on_a_terminal(public_chain, tmp_path, "y\n" * 6, "deploy", "--account", "dev:0")
    err, out = deployed.stderr.decode(), deployed.stdout.decode()
    assert deployed.returncode == 0, err
    for action in (
        "deploy Reputation",
        "deploy Payouts",
        "deploy BountyTree",
        "bindWriter",
        "deploy PrivateCustody",
        "grantRole CUSTODY_ROLE to PrivateCustody",
    ):
        assert f"{action} on chain {SEPOLIA}" in err
    assert err.count("send it? [y/N]") == 6 and "waiting for 2 confirmations" in err
    assert "cost           gas" in out and "ETH (6 transactions)" in out
    record = json.loads((tmp_path / "deployments" / f"{SEPOLIA}.json").read_text())
    assert w3.eth.get_code(record["BountyTree"]["address"])
    assert w3.eth.get_code(record["PrivateCustody"]["address"])

    # --yes: quoted on stderr, sent without a question, two confirmations waited for
    validation = tmp_path / "validation.csv"
    validation.write_text("a,b,label\n" + "".join(f"{i},{i % 3},{i % 2}\n" for i in range(40)))
    posted = _public_cli(
        public_chain,
        tmp_path,
        "task",
        "create",
        "--validation",
        str(validation),
        "--name",
        "public",
        "--bounty",
        "0.5",
        "--target",
        "0.9",
        "--deadline",
        "2h",
        "--account",
        "dev:1",
        "--yes",
    )
    err = posted.stderr.decode()
    assert posted.returncode == 0, err
    assert f"createTask on chain {SEPOLIA} from {ganache_account(1).address}: sends 0.5" in err
    assert "send it?" not in err and "waiting for 2 confirmations" in err
    tx_hash = next(w for w in posted.stdout.decode().split() if w.startswith("0x") and len(w) == 66)
    receipt = w3.eth.get_transaction_receipt(tx_hash)
    assert w3.eth.block_number >= receipt["blockNumber"] + 1  # buried under one more block
    tx = w3.eth.get_transaction(tx_hash)
    assert tx["type"] == 2 and tx["maxFeePerGas"] >= receipt["effectiveGasPrice"]


def test_up_runs_anvil_and_resumes_it(tmp_path):
    """`bountytree up --chain anvil`: anvil with its state in the home folder, the contracts
    deployed once; stopped and started again, the same chain and deployment come back."""
    port = free_port()
    env = {
        **os.environ,
        "BOUNTYTREE_HOME": str(tmp_path / "home"),
        "BOUNTYTREE_DEPLOYMENTS": str(tmp_path / "deployments"),
        "BOUNTYTREE_STORE": str(tmp_path / "store"),
    }
    command = [sys.executable, "-m", "bountytree", "--rpc", f"http://127.0.0.1:{port}"]
    command += ["up", "--chain", "anvil", "--no-app", "--exit"]
    first = subprocess.run(command, capture_output=True, env=env, timeout=300, cwd=ROOT)
    assert first.returncode == 0, first.stderr.decode()
    assert "chain      anvil at" in first.stdout.decode()
    assert "contracts  deployed BountyTree" in first.stdout.decode()
    record = json.loads((tmp_path / "deployments" / "31337.json").read_text())
    assert {p.name for p in (tmp_path / "home" / "anvil").iterdir()} & {
        "state.json",
        "state.next.json",
    }
    with pytest.raises(UserError, match="did not listen"):  # everything it started is stopped
        wait_for_port(port, timeout=1)

    second = subprocess.run(command, capture_output=True, env=env, timeout=300, cwd=ROOT)
    assert second.returncode == 0, second.stderr.decode()
    assert "contracts  already deployed" in second.stdout.decode()
    assert json.loads((tmp_path / "deployments" / "31337.json").read_text()) == record
