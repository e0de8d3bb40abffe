"""`bountytree model export` on a real finalized task (real chain, store, trained nodes and
oracle): each format reloads and predicts exactly what the stored weights predict, the model card
tells the task, lineage, payouts and chain, and every refusal is one line that writes nothing."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from markdown_it import MarkdownIt

from bountytree.delivery import export
from bountytree.delivery.model_card import read_market, resolve
from bountytree.errors import UserError
from bountytree.models.datasets import load_file
from bountytree.models.inference import Predictor
from bountytree.models.spec import load_spec
from bountytree.storage.embedded import EmbeddedStore
from bountytree.storage.store import add_bytes
from tests.conftest import cli_error, cli_ok, market_for
from tests.delivery.finalized import finalized_task, in_process

pytestmark = pytest.mark.mpc


@pytest.fixture(scope="module")
def task(settings, deployed, files):
    return finalized_task(settings, files)


@pytest.fixture(scope="module")
def rows(files) -> np.ndarray:
    return load_file(files["test"]).X


@pytest.fixture
def run(settings, monkeypatch, capsys):
    return in_process(settings, monkeypatch, capsys)


def _stored_predictor(settings, node_id: int) -> Predictor:
    """The node as the oracle loads it: its spec and weights straight from the chain and store."""
    source = resolve(read_market(settings), *_task_and_node(settings, node_id))
    return Predictor.from_weights(source.weights, source.spec)


def _task_and_node(settings, node_id: int) -> tuple[int, int]:
    return market_for(settings).node(node_id).task_id, node_id


def _front_matter(readme: str) -> dict:
    assert readme.startswith("---\n")
    return yaml.safe_load(readme.split("---\n", 2)[1])


@pytest.mark.parametrize("fmt", ["safetensors", "onnx", "torchscript"])
def test_export_reloads_with_identical_predictions(settings, task, rows, tmp_path, run, fmt):
    out = tmp_path / "model"
    status, shown, _ = run(
        "model", "export", "--task", str(task.task_id), "--out", str(out), "--format", fmt
    )
    assert status == 0
    assert f"exported node {task.winner} (winner of task {task.task_id}" in shown
    expected = {"model.safetensors", "config.json", "README.md"}
    expected |= {"onnx": {"model.onnx"}, "torchscript": {"model.pt"}}.get(fmt, set())
    assert {p.name for p in out.iterdir()} == expected
    reference = _stored_predictor(settings, task.winner).predict(rows)

    spec = load_spec((out / "config.json").read_bytes())
    market = market_for(settings)
    assert spec == market.architecture_spec(market.node(task.winner))
    weights = (out / "model.safetensors").read_bytes()
    card = _front_matter((out / "README.md").read_text())["bountytree"]
    # The file is the stored weights byte for byte: adding it anywhere gives the on-chain CID.
    assert add_bytes(EmbeddedStore(tmp_path / "elsewhere"), weights) == card["weights_cid"]
    reloaded = Predictor.from_weights(weights, spec).predict(rows)
    assert np.array_equal(reloaded.logits, reference.logits)
    assert np.array_equal(reloaded.classes, reference.classes)

    X = rows.reshape(len(rows), *spec.input_shape)
    if fmt == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
        logits = session.run(["logits"], {"input": X})[0]
    elif fmt == "torchscript":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            loaded = torch.jit.load(str(out / "model.pt"))
        logits = loaded(torch.from_numpy(X)).detach().numpy()
    if fmt != "safetensors":
        assert np.allclose(logits, reference.logits, rtol=1e-5, atol=1e-5)
        assert np.array_equal(logits.argmax(1), reference.classes)
        assert f"checked {export.CONVERTED[fmt]}" in shown
        assert "dataset" in card["checked"][0]["source"]  # the task's published rows


def test_model_card_tells_task_lineage_payouts_and_chain(settings, task, tmp_path):
    out = tmp_path / "card"
    cli_ok(settings, "model", "export", "--task", str(task.task_id), "--out", str(out))
    readme = (out / "README.md").read_text()
    meta = _front_matter(readme)
    card = meta["bountytree"]
    market = market_for(settings)
    winner = market.node(task.winner)
    chain = market.chain
    assert card["chain_id"] == chain.chain_id and card["contract"] == chain.tree.address
    assert card["task"] == task.task_id and card["node"] == task.winner and card["winner"] is True
    assert card["validation_accuracy"] == winner.accuracy_bps / 10_000
    assert card["test_accuracy"] is None and "test accuracy | none" in readme
    # The rows' schema: every feature in column order with the range the sponsor's rows span.
    assert len(card["features"]) == winner_spec_features(market, winner) and "## Input" in readme
    assert all(f["min"] <= f["max"] for f in card["features"])
    assert (
        meta["model-index"][0]["results"][0]["metrics"][0]["value"] == card["validation_accuracy"]
    )
    path = [n.id for n in market.path_to(task.winner)]
    assert [s["node"] for s in card["lineage"]] == path
    assert [s["author"] for s in card["lineage"]] == [market.node(i).author for i in path]
    # What the card attributes to the lineage's nodes is what finalize credited the path (what
    # nodes off the path claimed after it is not theirs).
    paid = sum(sum(s["paid_wei"].values()) for s in card["lineage"])
    finalized = market.logs("TaskFinalized", taskId=task.task_id)[0]["transactionHash"]
    credited = sum(
        e["args"]["amount"]
        for e in market.logs("PayoutCredited", taskId=task.task_id)
        if e["transactionHash"] == finalized and e["args"]["kind"] in (0, 1, 2)  # data … expertise
    )
    assert paid == credited > 0
    assert "expertise" in card["lineage"][0]["paid_wei"]
    assert "## Lineage" in readme and "## Payouts" in readme and card["spec_cid"] in readme
    # The task's description is shown as text: no heading, image, link or HTML of its own.
    html = MarkdownIt("commonmark").render(readme.split("---", 2)[2])
    assert "<img" not in html and 'phish.example/"' not in html and "<b>" not in html
    assert html.count("<h1>") == 1 and "Independently audited" in html


def test_export_of_a_chosen_node_of_the_other_architecture(settings, task, rows, tmp_path, run):
    other = task.cnn_child if task.winner != task.cnn_child else task.mlp_child
    out = tmp_path / "other"
    status, shown, _ = run(
        "model",
        "export",
        "--task",
        str(task.task_id),
        "--node",
        str(other),
        "--out",
        str(out),
        "--format",
        "onnx",
    )
    assert status == 0 and f"exported node {other} (scored node of task" in shown
    card = _front_matter((out / "README.md").read_text())["bountytree"]
    assert card["winner"] is False and card["node"] == other
    import onnxruntime as ort

    spec = load_spec((out / "config.json").read_bytes())
    X = rows.reshape(len(rows), *spec.input_shape)
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    reference = _stored_predictor(settings, other).predict(rows)
    assert np.array_equal(session.run(None, {"input": X})[0].argmax(1), reference.classes)


def test_refusals_are_one_line_and_write_nothing(settings, task, tmp_path, run):
    out = tmp_path / "never"
    # As a user sees it: exit 2 and one line on stderr.
    line = cli_error(settings, "model", "export", "--task", "999", "--out", str(out))
    assert "unknown task 999" in line and not out.exists()
    cases = {
        "is not finalized": ["--task", str(task.open_task_id)],
        f"node {task.cnn_pending} is pending, not scored": [
            "--task",
            str(task.open_task_id),
            "--node",
            str(task.cnn_pending),
        ],
        f"node {task.mlp_open} is not in task {task.task_id}": [
            "--task",
            str(task.task_id),
            "--node",
            str(task.mlp_open),
        ],
    }
    for message, args in cases.items():
        status, _, err = run("model", "export", *args, "--out", str(out))
        assert status == 2 and err.startswith("error: ") and err.count("\n") == 1, err
        assert message in err and not out.exists(), err
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    status, _, err = run("model", "export", "--task", str(task.task_id), "--out", str(full))
    assert (
        status == 2 and "is not empty" in err and [p.name for p in full.iterdir()] == ["keep.txt"]
    )
    assert list(tmp_path.iterdir()) == [full]  # no temporary folder left behind
    # An empty folder is fine: it is filled in one rename.
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run("model", "export", "--task", str(task.task_id), "--out", str(empty))[0] == 0
    assert (empty / "model.safetensors").exists()


def test_a_conversion_that_disagrees_with_pytorch_leaves_nothing(
    settings, task, tmp_path, monkeypatch
):
    market = read_market(settings)
    source = resolve(market, task.task_id)
    rows = export.check_rows(market, source)
    monkeypatch.setattr(export, "_run_onnx", lambda path, X: np.zeros((len(X), 10), np.float32))
    with pytest.raises(UserError, match="does not reproduce PyTorch"):
        export.export_model(source, tmp_path / "bad", "onnx", rows)
    assert list(tmp_path.iterdir()) == []


def test_zip_of_an_export_holds_the_folder(settings, task):
    import zipfile

    market = read_market(settings)
    source = resolve(market, task.task_id)
    raw = export.export_zip(source, "safetensors", export.check_rows(market, source))
    names = zipfile.ZipFile(io.BytesIO(raw)).namelist()
    assert sorted(Path(n).name for n in names) == ["README.md", "config.json", "model.safetensors"]


def test_check_data_given_by_the_user(settings, task, files, tmp_path, run):
    out = tmp_path / "checked"
    status, shown, err = run(
        "model",
        "export",
        "--task",
        str(task.task_id),
        "--out",
        str(out),
        "--format",
        "torchscript",
        "--check-data",
        str(files["test"]),
    )
    assert status == 0, err
    assert f"rows of {files['test']}" in shown
    card = _front_matter((out / "README.md").read_text())["bountytree"]
    assert card["checked"] == [{"file": "model.pt", "rows": 256, "source": str(files["test"])}]


def winner_spec_features(market, node) -> int:
    return market.architecture_spec(node).num_features
