"""The whole lifecycle through the command lines, on a real Ganache, the embedded store and
two-party CrypTen: a sponsor posts a bounty, an architect proposes, three data owners with
different class mixes take turns building on the best node, the oracle scores each round, the
task is finalized and everyone paid withdraws."""

from __future__ import annotations

import pytest
import torch

from bountytree.models import weights
from bountytree.models.datasets import load_file
from bountytree.storage.store import get_bytes
from tests.conftest import advance_time, cli_ok, created_task_id, market_for, node_id_of

pytestmark = pytest.mark.mpc


def _test_accuracy(market, node_id, test) -> float:
    node = market.node(node_id)
    spec = market.architecture_spec(node)
    model = weights.load_model(get_bytes(market.store, node.weights_cid(spec), 1 << 24), spec)
    with torch.no_grad():
        pred = model(torch.from_numpy(test.X).reshape(len(test), *spec.input_shape)).argmax(1)
    return float((pred.numpy() == test.y).mean())


def test_three_owners_take_turns_and_the_tree_improves(settings, deployed, files):
    out = cli_ok(
        settings,
        "task",
        "create",
        "--validation",
        str(files["validation"]),
        "--name",
        "digits",
        "--bounty",
        "3",
        "--target",
        "0.99",
        "--deadline",
        "20m",
        "--stake",
        "0.01",
        "--account",
        "0",
    )
    task_id = created_task_id(out)
    assert "never uploaded" in out
    arch = node_id_of(
        cli_ok(
            settings,
            "propose",
            "--task",
            str(task_id),
            "--spec",
            "examples/mlp.json",
            "--account",
            "1",
        )
    )
    cli_ok(settings, "--once", "--task", str(task_id), module="oracle")
    market = market_for(settings)
    test = load_file(files["test"])
    accuracies = [_test_accuracy(market, arch, test)]
    best_scores = [market.task(task_id).best_bps]
    # A publisher shares public rows; a compute provider trains on them first (the oracle replays
    # that training and pays its operations), then three data owners train on private data.
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
    turns = [
        ("--dataset", str(dataset), "7"),
        ("--data", str(files["owner1"]), "3"),
        ("--data", str(files["owner2"]), "4"),
        ("--data", str(files["owner3"]), "5"),
    ]
    for flag, source, account in turns:
        best_before = market.task(task_id).best_node
        out = cli_ok(
            settings,
            "--task",
            str(task_id),
            flag,
            source,
            "--account",
            account,
            "--quiet",
            module="trainer",
        )
        node = market.node(node_id_of(out))
        assert node.parent_id == best_before and "local holdout accuracy" in out and "gas" in out
        cli_ok(settings, "--once", "--task", str(task_id), module="oracle")
        node = market.node(node.id)
        assert node.status == "scored"
        assert (node.verified_ops > 0) == (flag == "--dataset"), (
            node
        )  # compute only for replayed public work
        accuracies.append(_test_accuracy(market, node.id, test))
        best_scores.append(market.task(task_id).best_bps)
    # Held-out test accuracy rises with each owner's contribution, and so does the best score.
    assert accuracies == sorted(accuracies) and accuracies[-1] > accuracies[0] + 0.5, accuracies
    assert best_scores == sorted(best_scores) and best_scores[-1] > best_scores[0]

    shown = cli_ok(settings, "task", "show", str(task_id))
    assert "★ best" in shown and "new best +" in shown and shown.count("trained") == 4

    advance_time(settings, 21 * 60)  # past the deadline: anyone may finalize
    out = cli_ok(settings, "finalize", "--task", str(task_id), "--account", "9")
    assert "finalized" in out
    task = market.task(task_id)
    payouts = market.payouts(task_id)
    finalize_pool = sum(p.amount for p in payouts if p.kind != "stake")
    assert finalize_pool == task.bounty + task.forfeited
    for account in {p.account for p in payouts if p.kind != "burned"}:
        index = next(i for i in range(12) if market_for(settings, i).chain.address == account)
        before = market.chain.w3.eth.get_balance(account)
        owed = market.pending(account)
        cli_ok(settings, "withdraw", "--account", str(index))
        assert market.pending(account) == 0
        assert market.chain.w3.eth.get_balance(account) > before + owed - 10**16  # minus gas
    assert {p.kind for p in payouts} >= {"data", "compute", "expertise"}
