"""`bountytree deploy` on a real Ganache, then a plain web3.py client that knows nothing but the
deployment file runs a whole task through the interface of docs/design.md."""

from __future__ import annotations

import json
import os

from conftest import run_cli
from eth_abi import encode
from web3 import Web3
from web3.logs import DISCARD


def test_deploy_writes_a_file_an_outside_client_can_use(settings, tmp_path):
    deployments = tmp_path / "deployments"
    result = run_cli(
        settings, "deploy", "--account", "0", env={"BOUNTYTREE_DEPLOYMENTS": str(deployments)}
    )
    assert result.returncode == 0, result.stderr.decode()
    out = result.stdout.decode()
    assert "BountyTree" in out and "gas" in out and "wrote" in out

    # ── an outside client: web3.py, the JSON file, Ganache's unlocked accounts ──
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
            b"\x01" * 32, b"\x02" * 32, 9000, deadline, 5000, 3000, 2000, stake
        ),
        sponsor,
        bounty,
    )
    task_id = tree.events.TaskCreated().process_receipt(r, errors=DISCARD)[0].args.taskId
    r = send(tree.functions.proposeArchitecture(task_id, b"\x03" * 32), architect, stake)
    arch = tree.events.ArchitectureProposed().process_receipt(r, errors=DISCARD)[0].args.nodeId
    r = send(tree.functions.publishDataset(task_id, b"\x05" * 32), publisher)
    dataset = tree.events.DatasetPublished().process_receipt(r, errors=DISCARD)[0].args.datasetId

    # a compute provider trains on the published dataset: commit, then reveal in a later block
    weights, salt, ops = b"\x04" * 32, os.urandom(32), 12345
    commitment = Web3.keccak(
        encode(
            ["address", "uint256", "uint256", "bytes32", "uint256", "bytes32"],
            [owner, task_id, arch, weights, dataset, salt],
        )
    )
    send(tree.functions.commitSubmission(task_id, commitment), owner, stake)
    w3.provider.make_request("evm_mine", [])
    r = send(tree.functions.revealSubmission(task_id, arch, weights, dataset, salt), owner)
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

    # data 50% to the publisher, compute 30% to the provider, expertise 20% to the architect, stakes back
    assert tree.functions.pendingWithdrawals(publisher).call() == bounty * 5 // 10
    assert tree.functions.pendingWithdrawals(owner).call() == stake + bounty * 3 // 10
    assert tree.functions.pendingWithdrawals(architect).call() == stake + bounty * 2 // 10
    before = w3.eth.get_balance(owner)
    r = send(tree.functions.withdraw(), owner)
    assert (
        w3.eth.get_balance(owner)
        == before + stake + bounty * 3 // 10 - r.gasUsed * r.effectiveGasPrice
    )
    assert [rep.functions.scoreOf(a).call() for a in (owner, architect, publisher, sponsor)] == [
        10,
        10,
        10,
        0,
    ]


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
