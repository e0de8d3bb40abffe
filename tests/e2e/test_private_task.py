"""A private task on the real chain, the real store and three real MPC parties: the sponsor
makes the task private, custodians and dealer stake, a data owner's rows reach the custodians
only as sealed shares, the child is trained and scored on shares (the Ladder inside), the
custodians commit on-chain and hand the winner over, and the sponsor exports a model whose
accuracy is what the chain recorded.

The custodians' steps that their service will run (opening their row shares, the MPC session,
writing holdings) are run here by the test with the same functions; every on-chain and hand-over
step is the command a person runs.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import (
    cli_error,
    cli_ok,
    created_task_id,
    custody_terms,
    market_for,
    node_id_of,
)

from bountytree.chain.client import ganache_account
from bountytree.errors import UserError
from bountytree.market.actions import Score
from bountytree.market.custody import SCORE, Custody
from bountytree.market.ladder import DEFAULT_MARGIN_BPS, round_down
from bountytree.models import weights as weights_io
from bountytree.models.datasets import load_file
from bountytree.models.spec import build_torch, parse_spec
from bountytree.mpc.local import run_parties
from bountytree.private import handover, ring, rows, sealing, shares
from bountytree.storage.store import get_bytes
from tests.mpc import private_tasks

SPEC = {
    "format": "bountytree/model@1",
    "name": "private digits MLP",
    "input_shape": [64],
    "num_classes": 10,
    "layers": [
        {"type": "Linear", "in_features": 64, "out_features": 32},
        {"type": "ReLU"},
        {"type": "Linear", "in_features": 32, "out_features": 10},
    ],
    "training": {
        "optimizer": "sgd",
        "lr": 0.2,
        "momentum": 0.5,
        "batch_size": 32,
        "epochs": 2,
        "seed": 3,
    },
}
CUSTODIANS, DEALER, ARCHITECT, OWNER = (5, 6), 7, 1, 2


def _keygen(settings, path: Path) -> bytes:
    out = cli_ok(settings, "custody", "keygen", "--out", str(path))
    return bytes.fromhex(out.rsplit("public key ", 1)[1].strip())


def _holding(share: shares.Share, key_file: Path, folder: Path, name: str) -> Path:
    """What a custodian keeps of a node: its share and salt, sealed to its own key."""
    own = sealing.public_key(sealing.read_private_key(key_file))
    path = folder / name
    path.write_bytes(handover.seal_share(share, shares.new_salt(), own))
    return path


def test_a_private_task_from_posting_to_the_sponsors_export(settings, deployed, files, tmp_path):
    address = {i: ganache_account(i).address for i in (*CUSTODIANS, DEALER)}
    admin = Custody(market_for(settings, 0))  # the deployer approves custodians and dealers
    for account in address.values():
        if not admin.is_approved(account):
            admin.approve(account)
    sponsor_key = tmp_path / "sponsor.key"
    _keygen(settings, sponsor_key)
    custodian_keys = [tmp_path / f"custodian{i}.key" for i in (0, 1)]
    for path in custodian_keys:
        _keygen(settings, path)

    create = (
        "task", "create", "--validation", str(files["validation"]), "--name", "private digits",
        "--bounty", "1", "--target", "0.2", "--deadline", "2h", "--stake", "0.01",
    )  # fmt: skip
    out = cli_ok(settings, *create, "--private-models")
    assert "takes nothing until you register its custody" in out, out
    task_id = created_task_id(out)
    terms = (
        "--custodians", f"{address[5]},{address[6]}", "--dealer", address[7],
        "--key-file", str(sponsor_key), "--stake", "0.02", "--fee", "0.03",
    )  # fmt: skip
    register = ("custody", "register", "--task", str(task_id), *terms)
    waiting = cli_error(settings, "custody", "show", "--task", str(task_id))
    assert "is private, its custody not registered yet" in waiting, waiting
    # only the sponsor names its task's custody, and only of a task created private
    assert "NotSponsor" in cli_error(settings, *register, "--account", "3")
    public = created_task_id(cli_ok(settings, *create))
    refused = cli_error(settings, "custody", "register", "--task", str(public), *terms)
    assert "created public and never turns private" in refused, refused
    cli_ok(settings, *register)

    def accept(key: Path, account: int, terms: str) -> str:
        return cli_ok(
            settings, "custody", "accept", "--task", str(task_id), "--key-file", str(key),
            "--account", str(account), "--terms", terms,
        )  # fmt: skip

    # custodian 0 accepts and custodian 1 does not: the sponsor withdraws this custody (the
    # stake back to custodian 0) and registers again, and custodian 0 accepts again
    reviewed = custody_terms(settings, task_id)
    pending = market_for(settings).chain.custody.functions.pendingWithdrawals
    before = pending(address[5]).call()
    assert "as custodian 0: staked 0.02 ETH" in accept(custodian_keys[0], 5, reviewed)
    assert "NotSponsor" in cli_error(
        settings, "custody", "cancel", "--task", str(task_id), "--account", "3"
    )
    assert "withdrew task" in cli_ok(settings, "custody", "cancel", "--task", str(task_id))
    assert pending(address[5]).call() - before == 2 * 10**16
    # other terms (no fee) in the place of those custodian 1 reviewed: its accept binds to
    # nothing it did not read (the attacker review of withdrawal)
    cli_ok(settings, *register[:-2], "--fee", "0")
    refused = cli_error(
        settings, "custody", "accept", "--task", str(task_id), "--key-file",
        str(custodian_keys[1]), "--account", "6", "--terms", reviewed,
    )  # fmt: skip
    assert "not on the terms you name" in refused, refused
    assert Custody(market_for(settings)).require(task_id).accepted == 0
    cli_ok(settings, "custody", "cancel", "--task", str(task_id))
    cli_ok(settings, *register)
    assert custody_terms(settings, task_id) == reviewed  # the same terms, the same hash
    for index in (0, 1):
        accept(custodian_keys[index], CUSTODIANS[index], reviewed)
    dealer_key = tmp_path / "dealer.key"
    _keygen(settings, dealer_key)
    accept(dealer_key, DEALER, reviewed)
    market = market_for(settings)
    custody = Custody(market)
    view = custody.require(task_id)
    assert view.ready and all(view.keys)
    assert "is ready (all three accepted): it stays" in cli_error(
        settings, "custody", "cancel", "--task", str(task_id)
    )
    # registered and accepted, the task takes nothing until the sponsor's rows are shared
    assert "takes nothing until its custody is ready" in cli_error(
        settings, "propose", "--task", str(task_id), "--spec", "examples/mlp.json",
        "--account", str(ARCHITECT),
    )  # fmt: skip
    cli_ok(settings, "custody", "share-validation", "--task", str(task_id))

    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(SPEC))
    arch = node_id_of(
        cli_ok(settings, "propose", "--task", str(task_id), "--spec", str(spec_file),
               "--account", str(ARCHITECT))
    )  # fmt: skip
    spec = parse_spec(SPEC)
    proposed = market.architecture_spec(market.node(arch))
    initial = weights_io.load(
        get_bytes(market.store, market.node(arch).weights_cid(proposed), 1 << 20), spec
    )

    # The data owner seals its row shares to the keys the custodians gave on-chain, and submits
    # the node record naming them.
    owner_rows = load_file(files["owner1"])
    owner = market_for(settings, OWNER)
    context = rows.node_context(market.chain.chain_id, task_id, owner.chain.address, arch)
    sealed = rows.seal_rows(
        owner_rows.X[:160], owner_rows.y[:160], 10, (view.keys[0], view.keys[1]), context
    )
    row_cids = tuple(market.store.add(io.BytesIO(s)) for s in sealed)
    assert all(owner_rows.X[:160].tobytes()[:64] not in s for s in sealed)
    record = rows.PrivateNode(arch, 160, (row_cids[0], row_cids[1]))
    child = owner.submit(task_id, arch, owner.store.add(io.BytesIO(record.to_bytes()))).node_id

    # The custodians: each opens its share of the rows, they train from the architecture's
    # public weights (shared as value and zero), each keeps its share sealed to itself.
    opened = [
        rows.open_rows(
            get_bytes(market.store, row_cids[i], 1 << 22),
            sealing.read_private_key(custodian_keys[i]),
            i,
            f"rows for custodian {i}",
            context,
            (64, 10),
        )
        for i in (0, 1)
    ]
    parent = {k: v.detach().numpy() for k, v in initial.items()}
    start = [shares.public_share(parent, i).tensors for i in (0, 1)]
    trained = run_parties(
        private_tasks.train,
        [(SPEC, start[i], opened[i].tensors["X"], opened[i].tensors["Y"]) for i in (0, 1)],
        tmp_path / "train",
    )
    child_shares = [
        shares.Share(i, {k[2:]: v for k, v in trained[i].items() if k.startswith("w:")})
        for i in (0, 1)
    ]
    holdings = [
        _holding(child_shares[i], custodian_keys[i], tmp_path, f"holding{i}") for i in (0, 1)
    ]
    for i, account in enumerate(CUSTODIANS):
        cli_ok(
            settings, "custody", "commit", "--node", str(child),
            "--holding", str(holdings[i]), "--key-file", str(custodian_keys[i]),
            "--account", str(account),
        )  # fmt: skip
    # a custodian cannot commit with the other's key, nor anyone else at all
    assert "does not open" in cli_error(
        settings, "custody", "commit", "--node", str(arch), "--holding", str(holdings[0]),
        "--key-file", str(custodian_keys[1]), "--account", "5",
    )  # fmt: skip

    # Scoring on shares against the sponsor's validation rows: only the record is revealed.
    validation = load_file(files["validation"])
    vx = ring.share_floats(validation.X)
    vy = ring.share_floats(np.eye(10, dtype=np.float32)[validation.y])
    best = ring.split(np.zeros((), dtype=np.int64))
    scored = run_parties(
        private_tasks.score,
        [
            (SPEC, child_shares[i].tensors, vx[i], vy[i], best[i], DEFAULT_MARGIN_BPS, 0)
            for i in (0, 1)
        ],
        tmp_path / "score",
    )
    recorded = scored[0]["recorded"]
    assert recorded == scored[1]["recorded"] and recorded >= 2000
    # Both custodians attest what the session revealed: the only way a private node is scored
    # (the oracle's account is refused: NotScorer).
    with pytest.raises(UserError, match="NotScorer"):
        market.record_scores(task_id, [Score(arch, 0, 0, 0)])
    for node_id, bps in ((arch, 0), (child, recorded)):
        for account in CUSTODIANS:
            Custody(market_for(settings, account)).attest(node_id, SCORE, bps)
    cli_ok(settings, "finalize", "--task", str(task_id))

    # Before the hand-over the sponsor has nothing to open; a stranger cannot hand over.
    out_dir = tmp_path / "model"
    assert "has not handed over" in cli_error(
        settings, "model", "export", "--task", str(task_id), "--out", str(out_dir),
        "--key-file", str(sponsor_key),
    )  # fmt: skip
    assert "NotCustodian" in cli_error(
        settings, "custody", "hand-over", "--task", str(task_id), "--holding",
        str(holdings[0]), "--key-file", str(custodian_keys[0]), "--account", "3",
    )  # fmt: skip
    before = {i: custody.pending(address[i]) for i in (*CUSTODIANS, DEALER)}
    for i, account in enumerate(CUSTODIANS):
        cli_ok(
            settings, "custody", "hand-over", "--task", str(task_id),
            "--holding", str(holdings[i]), "--key-file", str(custodian_keys[i]),
            "--account", str(account),
        )  # fmt: skip
    view = custody.require(task_id)
    assert view.settled and view.sealed[0] and view.sealed[1]
    paid = {i: custody.pending(address[i]) - before[i] for i in (*CUSTODIANS, DEALER)}
    assert sum(paid.values()) == view.fee + 3 * view.stake

    # The store holds only ciphertext: neither hand-over parses as weights or as a share.
    for cid in view.sealed:
        raw = get_bytes(market.store, str(cid), 1 << 22)
        assert raw.startswith(sealing.MAGIC)
    # another key opens nothing
    assert "does not open with this key" in cli_error(
        settings, "model", "export", "--task", str(task_id), "--out", str(out_dir),
        "--key-file", str(custodian_keys[0]),
    )  # fmt: skip
    out = cli_ok(
        settings, "model", "export", "--task", str(task_id), "--out", str(out_dir),
        "--key-file", str(sponsor_key),
    )  # fmt: skip
    assert f"exported node {child}" in out
    model = build_torch(spec)
    model.load_state_dict(weights_io.load((out_dir / "model.safetensors").read_bytes(), spec))
    with torch.no_grad():
        correct = int(
            (model(torch.from_numpy(validation.X)).argmax(1).numpy() == validation.y).sum()
        )
    exact = correct * 10_000 // len(validation)
    assert round_down(exact, DEFAULT_MARGIN_BPS) == recorded == market.node(child).accuracy_bps
