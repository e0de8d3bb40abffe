"""Files crafted to crash, stall or fool the oracle, sent straight to the contract (not through
the trainer), on the real chain, store and two-party oracle: each bad node is rejected with its
reason, the honest nodes beside it are scored in the same round, and the oracle keeps going."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import save

from bountytree.models import weights
from bountytree.models.datasets import load_file
from bountytree.models.spec import load_spec
from bountytree.storage.cid import cid_to_bytes32
from bountytree.storage.store import add_bytes, get_bytes
from tests.conftest import cli_ok, market_for, new_task, node_id_of, nudged, variant

pytestmark = pytest.mark.mpc

MLP = "examples/mlp.json"
STAKE = 10**16
NESTED = b"[" * 30_000 + b"]" * 30_000  # valid-looking JSON that overflows a recursive parser


def _propose_raw(market, task_id: int, spec_bytes: bytes) -> int:
    """An architecture whose spec goes on-chain as is, around the CLI's checks."""
    return market.submit(task_id, 0, add_bytes(market.store, spec_bytes)).node_id


def _publish_raw(market, task_id: int, raw: bytes) -> int:
    """A dataset published as is, around the CLI's checks."""
    return market.publish_cid(market.task(task_id), add_bytes(market.store, raw)).dataset_id


def _npz_bomb() -> bytes:
    """450 bytes whose X.npy header declares 2**44 rows: numpy would try to allocate petabytes."""
    import zipfile

    header = np.lib.format.header_data_from_array_1_0(np.zeros((2, 64), np.float32))
    header["shape"] = (2**44, 64)
    npy = io.BytesIO()
    np.lib.format.write_array_header_1_0(npy, header)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("X.npy", npy.getvalue())
        z.writestr("y.npy", npy.getvalue())
    return out.getvalue()


def test_crafted_files_are_rejected_one_by_one_and_the_rest_is_scored(settings, deployed, files):
    task_id = new_task(settings, files["validation"], "hostile files", target="0.999")
    honest_arch = node_id_of(
        cli_ok(settings, "propose", "--task", str(task_id), "--spec", MLP, "--account", "1")
    )
    mallory = market_for(settings, 8)
    spec = load_spec(Path(MLP).read_bytes())

    nested_spec = _propose_raw(mallory, task_id, NESTED)
    # The honest design again under another name and seed: a duplicate architecture.
    duplicate = json.loads(Path(MLP).read_text())
    duplicate["name"], duplicate["training"]["seed"] = "my own MLP", 99
    dup_spec = load_spec(json.dumps(duplicate).encode())
    dup_init = add_bytes(mallory.store, weights.initial_weights(dup_spec))
    duplicate_arch = _propose_raw(mallory, task_id, dup_spec.with_init_weights(dup_init).to_bytes())
    # A recipe whose replay would take days: batch 1, 1000 epochs.
    costly = json.loads(Path(MLP).read_text())
    costly["name"], costly["layers"][2]["out_features"] = "costly", 10
    costly["training"].update(batch_size=1, epochs=1000)
    costly["layers"][0]["out_features"] = costly["layers"][2]["in_features"] = 32
    costly_spec = load_spec(json.dumps(costly).encode())
    costly_init = add_bytes(mallory.store, weights.initial_weights(costly_spec))
    costly_arch = _propose_raw(
        mallory, task_id, costly_spec.with_init_weights(costly_init).to_bytes()
    )
    bomb = _publish_raw(mallory, task_id, _npz_bomb())
    public = _publish_raw(mallory, task_id, load_file(files["public"]).to_npz_bytes())
    cli_ok(settings, "--once", "--task", str(task_id), module="oracle")

    exotic = json.dumps(
        {"0.weight": {"dtype": "F6_E2M3", "shape": [1], "data_offsets": [0, 1]}}
    ).encode()
    exotic = len(exotic).to_bytes(8, "little") + exotic + b"\0"
    bad = {
        mallory.submit(
            task_id, honest_arch, add_bytes(mallory.store, exotic)
        ).node_id: "shape-mismatch",
        mallory.submit(
            task_id, honest_arch, add_bytes(mallory.store, variant(spec, 1)), bomb
        ).node_id: "replay-mismatch",
        mallory.submit(
            task_id, honest_arch, add_bytes(mallory.store, variant(spec, 2)), public
        ).node_id: "replay-mismatch",
        mallory.submit(
            task_id, costly_arch, add_bytes(mallory.store, variant(costly_spec, 3)), public
        ).node_id: "too-costly",
    }
    # The honest design's best node, copied under the duplicate architecture (same tensors).
    alice = node_id_of(
        cli_ok(
            settings,
            "--task",
            str(task_id),
            "--data",
            str(files["owner1"]),
            "--parent",
            str(honest_arch),
            "--account",
            "3",
            "--quiet",
            module="trainer",
        )
    )
    out = cli_ok(settings, "--once", "--task", str(task_id), module="oracle")
    bob = node_id_of(
        cli_ok(
            settings,
            "--task",
            str(task_id),
            "--data",
            str(files["owner2"]),
            "--parent",
            str(honest_arch),
            "--account",
            "4",
            "--quiet",
            module="trainer",
        )
    )
    out += cli_ok(settings, "--once", "--task", str(task_id), module="oracle")

    nodes = mallory.nodes(task_id)
    assert (nodes[nested_spec].status, nodes[nested_spec].reason) == ("rejected", "invalid-spec"), (
        out
    )
    assert nodes[duplicate_arch].status == "rejected" and nodes[duplicate_arch].reason == "copy", (
        out
    )
    assert {i: nodes[i].reason for i in bad} == bad, out
    assert nodes[costly_arch].status == "scored"
    assert nodes[honest_arch].status == nodes[alice].status == nodes[bob].status == "scored"


def test_a_copy_under_a_duplicate_architecture_is_caught_by_its_layout(settings, deployed, files):
    """Even when the duplicate architecture itself survives (it was scored before this check
    existed, say), a copy hung under it is compared with every node of the same tensor layout."""
    task_id = new_task(settings, files["validation"], "layout", target="0.999")
    honest_arch = node_id_of(
        cli_ok(settings, "propose", "--task", str(task_id), "--spec", MLP, "--account", "1")
    )
    mallory = market_for(settings, 8)
    other = json.loads(Path(MLP).read_text())
    other["training"]["lr"] = 0.02  # another recipe: a different design, the same tensors
    other_spec = load_spec(json.dumps(other).encode())
    other_arch = _propose_raw(
        mallory,
        task_id,
        other_spec.with_init_weights(
            add_bytes(mallory.store, weights.initial_weights(other_spec))
        ).to_bytes(),
    )
    cli_ok(settings, "--once", "--task", str(task_id), module="oracle")
    alice = node_id_of(
        cli_ok(
            settings,
            "--task",
            str(task_id),
            "--data",
            str(files["owner1"]),
            "--parent",
            str(honest_arch),
            "--account",
            "3",
            "--quiet",
            module="trainer",
        )
    )
    cli_ok(settings, "--once", "--task", str(task_id), module="oracle")
    spec = load_spec(Path(MLP).read_bytes())
    alice_state = weights.load(get_bytes(mallory.store, mallory.node(alice).cid, 1 << 24), spec)
    init = weights.load(weights.initial_weights(spec), spec)
    dressed = save(nudged(alice_state, init, 0.2, seed=4))
    copy = mallory.submit(task_id, other_arch, add_bytes(mallory.store, dressed)).node_id
    out = cli_ok(settings, "--once", "--task", str(task_id), module="oracle")
    node = mallory.node(copy)
    assert node.status == "rejected" and mallory.nodes(task_id)[copy].reason == "copy", out


def test_a_task_whose_description_crashes_parsers_stops_no_other_task(settings, deployed, files):
    bad_sponsor = market_for(settings, 9)
    info_cid = add_bytes(bad_sponsor.store, NESTED)
    deadline = bad_sponsor.chain.w3.eth.get_block("latest")["timestamp"] + 3600
    sent = bad_sponsor.chain.send(
        bad_sponsor.tree.functions.createTask(
            cid_to_bytes32(info_cid),
            b"\x01" * 32,
            9000,
            deadline,
            6000,
            2000,
            2000,
            0,
            0,
            0,
            0,
            False,
        ),
        value=1,
    )
    bad_task = bad_sponsor.tree.events.TaskCreated().process_receipt(sent.receipt)[0]["args"][
        "taskId"
    ]
    good_task = new_task(settings, files["validation"], "beside a bad one")
    arch = node_id_of(
        cli_ok(settings, "propose", "--task", str(good_task), "--spec", MLP, "--account", "1")
    )
    from tests.conftest import run_cli

    proc = run_cli(
        settings, "--once", "--task", str(bad_task), "--task", str(good_task), module="oracle"
    )
    out = proc.stdout.decode()
    assert f"task {bad_task}: task {bad_task} description" in out and "nested too deeply" in out, (
        out
    )
    assert "Traceback" not in proc.stderr.decode()
    assert market_for(settings).node(arch).status == "scored"


def test_a_rejected_imitation_does_not_shut_out_the_design_it_imitates(settings, deployed, files):
    """Mallory sees an architect's spec coming and proposes its design first, with weights that are
    not the seed's (so it is rejected): the honest proposal after it is still scored, not taken
    for a copy of a node that is itself rejected."""
    task_id = new_task(settings, files["validation"], "imitation")
    mallory = market_for(settings, 8)
    spec = load_spec(Path(MLP).read_bytes())
    fake_init = add_bytes(mallory.store, variant(spec, 5))
    fake = _propose_raw(mallory, task_id, spec.with_init_weights(fake_init).to_bytes())
    honest = node_id_of(
        cli_ok(settings, "propose", "--task", str(task_id), "--spec", MLP, "--account", "1")
    )
    out = cli_ok(settings, "--once", "--task", str(task_id), module="oracle")
    nodes = mallory.nodes(task_id)
    assert (nodes[fake].status, nodes[fake].reason) == ("rejected", "not-initial"), out
    assert nodes[honest].status == "scored", out


def test_weights_whose_logits_leave_the_fixed_point_range_are_rejected(settings, deployed, files):
    """Alice's trained MLP, its last layer multiplied by 10^6, submitted straight to the contract:
    its logits could reach ~10^8 on the task's inputs, where CrypTen's fixed point wraps. It is
    rejected as logit-range before any session; Alice's own node beside it is scored."""
    task_id = new_task(settings, files["validation"], "large logits", target="0.999")
    arch = node_id_of(
        cli_ok(settings, "propose", "--task", str(task_id), "--spec", MLP, "--account", "1")
    )
    cli_ok(settings, "--once", "--task", str(task_id), module="oracle")
    alice = node_id_of(
        cli_ok(
            settings,
            "--task",
            str(task_id),
            "--data",
            str(files["owner1"]),
            "--parent",
            str(arch),
            "--account",
            "3",
            "--quiet",
            module="trainer",
        )
    )
    mallory = market_for(settings, 8)
    spec = load_spec(Path(MLP).read_bytes())
    state = weights.load(get_bytes(mallory.store, mallory.node(alice).cid, 1 << 24), spec)
    loud = dict(state, **{"2.weight": state["2.weight"] * 1e6, "2.bias": state["2.bias"] * 1e6})
    large = mallory.submit(task_id, arch, add_bytes(mallory.store, save(loud))).node_id
    out = cli_ok(settings, "--once", "--task", str(task_id), module="oracle")
    nodes = mallory.nodes(task_id)
    assert (nodes[large].status, nodes[large].reason) == ("rejected", "logit-range"), out
    assert "beyond the" in out and "secure evaluation holds" in out
    assert nodes[alice].status == "scored", out
