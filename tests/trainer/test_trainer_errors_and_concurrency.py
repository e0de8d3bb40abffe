"""Every bad input to the participants' commands ends in one line and sends nothing; two trainers
submitting at the same moment both land."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bountytree.chain.client import ganache_account
from bountytree.models.datasets import Dataset, load_file
from demo.sample_data import write_csv
from tests.conftest import advance_time, cli_error, cli_ok, market_for, new_task, node_id_of


@pytest.fixture(scope="module")
def task(settings, deployed, files):
    task_id = new_task(settings, files["validation"], "errors", target="0.95")
    cli_ok(
        settings, "propose", "--task", str(task_id), "--spec", "examples/mlp.json", "--account", "1"
    )
    return task_id


@pytest.fixture(scope="module")
def finalized_task(settings, deployed, files):
    task_id = new_task(
        settings, files["validation"], "short", target="0.95", deadline="30s", stake="0"
    )
    cli_ok(
        settings, "propose", "--task", str(task_id), "--spec", "examples/mlp.json", "--account", "1"
    )
    advance_time(settings, 60)
    # the oracle's account leaves the proposal unscored, naming it
    cli_ok(settings, "finalize", "--task", str(task_id), "--leaving", "1")
    return task_id


def _nonce(settings, account: int) -> int:
    market = market_for(settings, account)
    return market.chain.w3.eth.get_transaction_count(market.chain.address)


def _bad_files(tmp_path, files):
    ds = load_file(files["owner1"])
    wrong_shape = write_csv(Dataset(ds.X[:, :10], ds.y), tmp_path / "ten_features.csv")
    wrong_classes = write_csv(Dataset(ds.X, np.where(ds.y == 0, 12, ds.y)), tmp_path / "twelve.csv")
    bad_spec = tmp_path / "bad_spec.json"
    spec = json.loads(Path("examples/mlp.json").read_text())
    spec["layers"][0]["in_features"] = 63
    bad_spec.write_text(json.dumps(spec))
    wrong_task_spec = tmp_path / "three_classes.json"
    spec = json.loads(Path("examples/mlp.json").read_text())
    spec["num_classes"] = 3
    spec["layers"][2]["out_features"] = 3
    wrong_task_spec.write_text(json.dumps(spec))
    return wrong_shape, wrong_classes, bad_spec, wrong_task_spec


def test_bad_inputs_fail_in_one_line_and_send_nothing(
    settings, task, finalized_task, files, tmp_path
):
    wrong_shape, wrong_classes, bad_spec, wrong_task_spec = _bad_files(tmp_path, files)
    t, f = str(task), str(finalized_task)
    poor = "0x" + "11" * 32  # a key whose account holds no ETH
    cases = [
        (
            "trainer",
            ["--task", t, "--data", str(wrong_shape)],
            "10 features per row, the task expects 64",
        ),
        (
            "trainer",
            ["--task", t, "--data", str(wrong_classes)],
            "label 12 is outside the task's classes 0..9",
        ),
        ("trainer", ["--task", "999", "--data", str(files["owner1"])], "unknown task 999"),
        ("trainer", ["--task", f, "--data", str(files["owner1"])], f"task {f} is finalized"),
        ("trainer", ["--task", t, "--data", str(tmp_path / "missing.csv")], "cannot read"),
        (
            "trainer",
            ["--task", t, "--data", str(files["owner1"]), "--parent", "9999"],
            "unknown node 9999",
        ),
        (
            "trainer",
            ["--task", t, "--data", str(files["owner1"]), "--parent", "x"],
            "neither a node id",
        ),
        ("trainer", ["--task", t], "give either --data"),
        ("trainer", ["--task", t, "--dataset", "999"], "dataset 999 is not published to task"),
        (
            "bountytree",
            ["propose", "--task", t, "--spec", str(bad_spec)],
            "layers[0] (Linear).in_features",
        ),
        ("bountytree", ["propose", "--task", t, "--spec", str(wrong_task_spec)], "do not fit task"),
        (
            "bountytree",
            ["propose", "--task", "999", "--spec", "examples/mlp.json"],
            "unknown task 999",
        ),
        ("bountytree", ["propose", "--task", f, "--spec", "examples/mlp.json"], "is finalized"),
        (
            "bountytree",
            [
                "task",
                "create",
                "--validation",
                str(files["validation"]),
                "--name",
                "x",
                "--bounty",
                "2",
                "--target",
                "1.5",
                "--deadline",
                "1h",
            ],
            "--target",
        ),
        (
            "bountytree",
            [
                "task",
                "create",
                "--validation",
                str(files["validation"]),
                "--name",
                "x",
                "--bounty",
                "2",
                "--target",
                "0.9",
                "--deadline",
                "soon",
            ],
            "not a duration",
        ),
        (
            "bountytree",
            [
                "task",
                "create",
                "--validation",
                str(files["validation"]),
                "--name",
                "x",
                "--bounty",
                "lots",
                "--target",
                "0.9",
                "--deadline",
                "1h",
            ],
            "not an amount of ETH",
        ),
        (
            "bountytree",
            [
                "task",
                "create",
                "--validation",
                str(wrong_shape.with_name("nope.csv")),
                "--name",
                "x",
                "--bounty",
                "1",
                "--target",
                "0.9",
                "--deadline",
                "1h",
            ],
            "cannot read",
        ),
        ("bountytree", ["task", "show", "999"], "unknown task 999"),
        ("bountytree", ["finalize", "--task", t], "NotFinalizable"),
        ("bountytree", ["finalize", "--task", f], "TaskIsFinalized"),
        (
            "bountytree",
            ["dataset", "publish", "--task", t, "--data", str(wrong_classes)],
            "outside the task's classes",
        ),
        ("bountytree", ["withdraw", "--account", "11"], "nothing to withdraw"),
    ]
    before = _nonce(settings, 0)
    for module, args, message in cases:
        line = cli_error(settings, *args, module=module, env={"BOUNTYTREE_ACCOUNT": "0"})
        assert message in line, (args, line)
    assert _nonce(settings, 0) == before, "a refused command sent a transaction"
    line = cli_error(
        settings,
        "task",
        "create",
        "--validation",
        str(files["validation"]),
        "--name",
        "x",
        "--bounty",
        "2",
        "--target",
        "0.9",
        "--deadline",
        "1h",
        env={"BOUNTYTREE_PRIVATE_KEY": poor},
    )
    assert "insufficient funds" in line


def test_two_trainers_at_once_both_land(settings, task, files):
    market = market_for(settings)
    best = market.best_parent(market.task(task))
    env_base = {
        "BOUNTYTREE_RPC": settings.rpc,
        "BOUNTYTREE_STORE": settings.store,
        "BOUNTYTREE_HOME": str(settings.home),
        "BOUNTYTREE_DEPLOYMENTS": str(settings.deployments),
    }
    import os

    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "trainer",
                "--task",
                str(task),
                "--data",
                str(files[owner]),
                "--account",
                account,
                "--quiet",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, **env_base},
        )
        for owner, account in (("owner2", "6"), ("owner3", "7"))
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1].decode()[-500:] for o in outs]
    ids = [node_id_of(o[0].decode()) for o in outs]
    nodes = market.nodes(task)
    assert len(set(ids)) == 2 and all(nodes[i].parent_id == best for i in ids)
    authors = {nodes[i].author for i in ids}
    assert authors == {ganache_account(6).address, ganache_account(7).address}
