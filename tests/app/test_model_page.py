"""The app's Model page under Streamlit's AppTest, against the real chain and store: the winner
of a finalized task with its model card and downloads, and the "try it" box predicting an
uploaded CSV exactly as the server's code does."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from bountytree.config import ROOT
from bountytree.delivery.model_card import read_market, resolve
from bountytree.market.render import pct
from bountytree.models.datasets import load_file
from bountytree.models.inference import Predictor, accuracy
from tests.delivery.finalized import finalized_task

pytestmark = pytest.mark.mpc
PAGE = ROOT / "app" / "pages" / "7_Model.py"


@pytest.fixture
def app_env(settings, deployed, monkeypatch):
    for name, value in {
        "BOUNTYTREE_RPC": settings.rpc,
        "BOUNTYTREE_STORE": settings.store,
        "BOUNTYTREE_HOME": str(settings.home),
        "BOUNTYTREE_DEPLOYMENTS": str(settings.deployments),
    }.items():
        monkeypatch.setenv(name, value)


def _page(task_id: int) -> AppTest:
    at = AppTest.from_file(str(PAGE), default_timeout=300)
    at.query_params["task"] = str(task_id)
    at.run()
    assert not at.exception, at.exception
    return at


def test_model_page_shows_the_winner_and_predicts_a_csv(app_env, settings, files):
    task = finalized_task(settings, files)
    source = resolve(read_market(settings), task.task_id)
    at = _page(task.task_id)
    assert at.title[0].value == "Model"
    assert at.selectbox(key="model_node").value == task.winner
    shown = {m.label: m.value for m in at.metric}
    assert shown["Validation accuracy"] == pct(source.node.accuracy_bps)
    assert shown["Role"] == "winner"
    card = "\n".join(m.value for m in at.markdown)
    assert "## Lineage" in card and source.weights_cid in card and "test accuracy" in card
    assert {b.key for b in at.get("download_button")} == {
        "model_download_safetensors",
        "model_download_onnx",
        "model_download_torchscript",
    }

    # What the ONNX button hands over when clicked: the export folder, converted and checked.
    from app.model_page import _download

    archive = zipfile.ZipFile(io.BytesIO(_download(read_market(settings), source, "onnx")()))
    assert sorted(Path(n).name for n in archive.namelist()) == [
        "README.md",
        "config.json",
        "model.onnx",
        "model.safetensors",
    ]

    raw = files["test"].read_bytes()
    at.file_uploader(key="model_rows").set_value(("test.csv", raw, "text/csv")).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    rows = load_file(files["test"])
    want = Predictor.from_weights(source.weights, source.spec).predict(rows.X)
    table = at.dataframe[0].value
    assert np.array_equal(table["predicted class"].to_numpy(), want.classes[: len(table)])
    shown = {m.label: m.value for m in at.metric}
    assert shown["Rows"] == f"{len(rows):,}"
    assert shown["Accuracy on these rows"] == f"{accuracy(want, rows.y):.2%}"

    at.file_uploader(key="model_rows").set_value(("bad.csv", b"a,b\n1,2\n", "text/csv")).run()
    assert not at.exception
    assert "2 feature columns, the model takes 64" in at.error[0].value


def test_model_page_of_an_open_task_says_it_has_no_winner(app_env, settings, files):
    task = finalized_task(settings, files)
    at = _page(task.open_task_id)
    assert "not finalized" in at.info[0].value
    assert at.selectbox(key="model_node").value == task.mlp_open
    assert {m.label: m.value for m in at.metric}["Role"] == "scored node"
