"""The Streamlit app, page by page, with Streamlit's AppTest against the real Ganache and store:
post a bounty, propose, train, score, finalize, withdraw, each checked by what the page shows."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from bountytree.config import ROOT
from tests.conftest import advance_time, market_for

pytestmark = pytest.mark.mpc
APP = ROOT / "app"


@pytest.fixture
def app_env(settings, deployed, monkeypatch):
    for name, value in {
        "BOUNTYTREE_RPC": settings.rpc,
        "BOUNTYTREE_STORE": settings.store,
        "BOUNTYTREE_HOME": str(settings.home),
        "BOUNTYTREE_DEPLOYMENTS": str(settings.deployments),
        "BOUNTYTREE_ACCOUNT": "0",
    }.items():
        monkeypatch.setenv(name, value)


def page(name: str, who: int, task: int | None = None) -> AppTest:
    at = AppTest.from_file(str(APP / name), default_timeout=300)
    at.session_state["who"] = who
    if task is not None:
        at.query_params["task"] = str(task)
    at.run()
    assert not at.exception, at.exception
    return at


def test_whole_lifecycle_in_the_app(app_env, settings, files):
    home = page("Home.py", 1)
    assert home.title[0].value == "bountytree"
    assert "Sponsor" in home.sidebar.selectbox(key="who").format_func(1)

    post = page("pages/1_Post_a_bounty.py", 1)
    post.text_input(key="validation_path").input(str(files["validation"])).run()
    assert "400 rows, 64 features" in post.success[0].value
    post.text_input(key="name").input("app digits").run()
    post.slider(key="target").set_value(0.99).run()
    post.number_input(key="hours").set_value(0.05).run()
    post.slider(key="data_share").set_value(70).run()
    assert [m.value for m in post.metric if m.label == "Expertise %"] == [
        "10"
    ]  # the split always sums to 100
    post.button(key="post").click().run()
    assert not post.exception and not post.error, post.error
    message = post.success[-1].value
    assert "posted" in message and "gas" in message
    task_id = int(message.split("Task ")[1].split()[0])
    market = market_for(settings)
    task = market.task(task_id)
    assert (
        task.info.name == "app digits"
        and task.shares_bps[0] == 7000
        and sum(task.shares_bps) == 10_000
    )

    propose = page("pages/3_Propose.py", 2, task_id)
    assert "Valid spec" in propose.success[0].value
    propose.button(
        key="add_layer"
    ).click().run()  # Linear appended after the output: shapes no longer fit
    assert propose.error and "layers" in propose.error[0].value
    propose.button(key="remove3").click().run()
    propose.button(key="propose").click().run()
    assert "proposed" in propose.success[-1].value, [e.value for e in propose.error]

    train = page("pages/4_Train.py", 5, task_id)
    train.text_input(key="data_path").input(str(files["owner1"])).run()
    train.button(key="train").click().run()
    assert "submitted on parent" in train.success[-1].value, [e.value for e in train.error]

    oracle = page("pages/5_Oracle.py", 0, task_id)
    assert "Pending (2)" in [h.value for h in oracle.subheader]
    oracle.button(key="score").click().run()
    assert "2 scored" in oracle.success[-1].value, [e.value for e in oracle.error]

    advance_time(settings, 600)  # past the deadline: the task may be finalized
    view = page("pages/2_Task.py", 4, task_id)
    assert len(view.get("graphviz_chart")) == 1
    view.button(key="finalize").click().run()
    assert "Finalized" in view.success[-1].value, [e.value for e in view.error]
    assert "Payouts" in [h.value for h in view.subheader]
    assert market.task(task_id).finalized

    alice = market_for(settings, 5)
    owed = alice.pending()
    assert owed > 0
    wallet = page("pages/6_Wallet.py", 5)
    wallet.button(key="withdraw").click().run()
    assert "Withdrew" in wallet.success[-1].value and alice.pending() == 0


def test_clear_message_when_nothing_is_deployed(monkeypatch, tmp_path, settings):
    monkeypatch.setenv("BOUNTYTREE_RPC", settings.rpc)
    monkeypatch.setenv("BOUNTYTREE_DEPLOYMENTS", str(tmp_path))
    at = page("Home.py", 1)
    assert "nothing deployed" in at.error[0].value
    monkeypatch.setenv("BOUNTYTREE_RPC", "http://127.0.0.1:9")
    at = page("Home.py", 1)
    assert "cannot reach the chain" in at.error[0].value
