"""The Streamlit app, page by page, with Streamlit's AppTest against the real Ganache and store:
post a bounty, propose, train, score, finalize, withdraw, each checked by what the page shows;
no page asks for a key; development accounts only on a local chain."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from bountytree.chain.addressbook import DEV_ACCOUNTS, AddressBook
from bountytree.chain.client import connect, ganache_account
from bountytree.chain.local import start_chain
from bountytree.config import ROOT
from bountytree.models.spec import load_spec
from bountytree.processes import free_port
from tests.conftest import advance_time, market_for, new_task, shown

pytestmark = pytest.mark.mpc
MAIN = ROOT / "app" / "main.py"
PAGES = [
    "pages/0_Home.py",
    "pages/1_Post_a_bounty.py",
    "pages/2_Task.py",
    "pages/3_Propose.py",
    "pages/4_Train.py",
    "pages/5_Oracle.py",
    "pages/6_Wallet.py",
]
# Listed by the entry as a function (app/model_page.py's render); AppTest switches only to
# files, so it is run through its wrapper file, alone (it draws the sidebar itself then).
ALONE = ["pages/7_Model.py"]


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


def page(name: str, who: int | str, task: int | None = None, **state) -> AppTest:
    """The app from its entry, as `who`, switched to page `name` (a path under app/)."""
    at = AppTest.from_file(str(MAIN), default_timeout=300)
    at.session_state["who"] = who
    for key, value in state.items():
        at.session_state[key] = value
    if task is not None:
        at.query_params["task"] = str(task)
    at.run()
    assert not at.exception, at.exception
    if name != "pages/0_Home.py":
        at.switch_page(name).run()
        assert not at.exception, at.exception
    return at


def alone(name: str, who: int | str) -> AppTest:
    """One page file run by itself, without the entry."""
    at = AppTest.from_file(str(ROOT / "app" / name), default_timeout=300)
    at.session_state["who"] = who
    at.run()
    assert not at.exception, at.exception
    return at


def test_whole_lifecycle_in_the_app(app_env, settings, files):
    home = page("pages/0_Home.py", 1)
    assert home.title[0].value == "bountytree"
    assert home.sidebar.selectbox(key="who").format_func(1) == "dev:1"
    # Names come from the product's address book (the demo writes its cast there), not the demo.
    book = AddressBook(settings.home, int(connect(settings.rpc).eth.chain_id))
    book.save(ganache_account(1).address, "Sponsor", "posts the bounty")
    home = page("pages/0_Home.py", 1)
    assert home.sidebar.selectbox(key="who").format_func(1) == "Sponsor — posts the bounty (dev:1)"

    post = page("pages/1_Post_a_bounty.py", 1)
    post.text_input(key="validation_path").input(str(files["validation"])).run()
    assert "400 rows, 64 features" in post.success[0].value
    post.text_input(key="name").input("app digits").run()
    post.slider(key="target").set_value(0.99).run()
    post.number_input(key="hours").set_value(0.05).run()
    post.slider(key="data_share").set_value(70).run()
    # the split always sums to 100
    assert [m.value for m in post.metric if m.label == "Expertise %"] == ["10"]
    post.button(key="post").click().run()
    assert not post.exception and not post.error, [e.value for e in post.error]
    message = post.success[-1].value
    assert "posted" in message and "gas" in message
    task_id = int(message.split("Task ")[1].split()[0])
    # The same terms cannot be posted twice by a second click: the button is off, and says why.
    post.run()
    assert post.button(key="post").disabled
    assert any("posted with exactly these terms" in c.value for c in post.caption)
    market = market_for(settings)
    task = market.task(task_id)
    assert (
        task.info.name == "app digits"
        and task.shares_bps[0] == 7000
        and sum(task.shares_bps) == 10_000
    )

    propose = page("pages/3_Propose.py", 2, task_id)
    assert "Valid spec" in propose.success[0].value
    # Linear appended after the output: shapes no longer fit
    propose.button(key="add_layer").click().run()
    assert propose.error and "layers" in propose.error[0].value
    propose.button(key="remove3").click().run()
    propose.button(key="propose").click().run()
    assert "proposed" in propose.success[-1].value, [e.value for e in propose.error]

    train = page("pages/4_Train.py", 5, task_id)
    train.text_input(key="data_path").input(str(files["owner1"])).run()
    train.button(key="train").click().run()
    assert "submitted on parent" in train.success[-1].value, [e.value for e in train.error]

    publish = page("pages/4_Train.py", 4, task_id)
    publish.text_input(key="public_path").input(str(files["public"])).run()
    publish.button(key="publish").click().run()
    assert "published" in publish.success[-1].value, [e.value for e in publish.error]
    assert market.datasets_of(task_id)

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


def test_refusals_are_one_line_and_send_nothing(app_env, settings, files):
    """The core's own refusals, through the page: one line, no transaction, no traceback."""
    sponsor = ganache_account(1).address
    w3 = connect(settings.rpc)
    nonce = w3.eth.get_transaction_count(sponsor)
    post = page("pages/1_Post_a_bounty.py", 1)
    post.text_input(key="validation_path").input(str(files["validation"])).run()
    post.text_input(key="name").input("free").run()
    post.number_input(key="bounty").set_value(0.0).run()
    post.button(key="post").click().run()
    assert [shown(e.value) for e in post.error] == ["bounty: must be more than 0 ETH"]
    assert w3.eth.get_transaction_count(sponsor) == nonce

    # Past its deadline with a node unscored: the page offers Finalize, the contract refuses
    # anyone but the oracle until the grace period is over; the simulation says so.
    market = market_for(settings, 1)
    task_id = market.create_task(
        files["validation"], name="pending", bounty=10**15, target_bps=9000, deadline_s=60
    ).task_id
    market_for(settings, 2).propose(task_id, load_spec((ROOT / "examples/mlp.json").read_bytes()))
    advance_time(settings, 120)
    finalizer = ganache_account(4).address
    nonce = w3.eth.get_transaction_count(finalizer)
    view = page("pages/2_Task.py", 4, task_id)
    view.button(key="finalize").click().run()
    assert len(view.error) == 1 and shown(view.error[0].value).startswith(
        f"refused by the contract: WorkPending(taskId={task_id}, pendingNodes=1"
    )
    assert w3.eth.get_transaction_count(finalizer) == nonce


def test_clear_message_when_nothing_is_deployed(monkeypatch, tmp_path, settings):
    monkeypatch.setenv("BOUNTYTREE_RPC", settings.rpc)
    monkeypatch.setenv("BOUNTYTREE_DEPLOYMENTS", str(tmp_path))
    at = page("pages/0_Home.py", 1)
    assert "nothing deployed" in shown(at.error[0].value)
    monkeypatch.setenv("BOUNTYTREE_RPC", "http://127.0.0.1:9")
    at = page("pages/0_Home.py", 1)
    assert "cannot reach the chain" in at.error[0].value


@pytest.mark.parametrize("who", [1, 5, "wallet"])
def test_no_page_asks_for_a_private_key(app_env, settings, who):
    """Whoever one is, no page has a password field or anything that asks for a key."""
    for name in PAGES + ALONE:
        at = page(name, who) if name in PAGES else alone(name, who)
        for field in at.text_input:
            assert field.proto.type != field.proto.PASSWORD, (name, field.label)
            assert "key" not in field.label.lower(), (name, field.label)
        for area in at.text_area:
            assert "key" not in area.label.lower(), (name, area.label)
        options = at.sidebar.selectbox(key="who").options
        assert not any("key" in option.lower() for option in options), options


def test_dev_accounts_are_offered_only_on_a_local_chain(app_env, monkeypatch, tmp_path):
    local = page("pages/0_Home.py", 1)
    who = local.sidebar.selectbox(key="who")
    assert who.options[:2] == [who.format_func(0), who.format_func(1)]
    assert "dev:1" in who.format_func(1) and who.options[-1] == "Browser wallet"

    # A chain whose id is not a development chain's: a public one, as far as the app can tell.
    public = start_chain("ganache", free_port(), chain_id=8453)
    try:
        monkeypatch.setenv("BOUNTYTREE_RPC", public.rpc)
        monkeypatch.setenv("BOUNTYTREE_DEPLOYMENTS", str(tmp_path))
        remote = page("pages/0_Home.py", 1)  # a development account asked for: not offered
        who = remote.sidebar.selectbox(key="who")
        assert who.options == ["Browser wallet"] and who.value == "wallet"
        assert remote.get("component_instance"), "the wallet's connect button is drawn"
        assert not remote.sidebar.metric, "no balance: nobody is connected"
    finally:
        public.stop()


def test_who_am_i_survives_a_reload(app_env):
    """The identity is in the page's address (?who=): a reload, with a fresh session, acts as the
    same account, never as a default one."""
    reloaded = AppTest.from_file(str(MAIN), default_timeout=300)
    reloaded.query_params["who"] = "5"
    reloaded.run()
    assert not reloaded.exception
    assert reloaded.sidebar.selectbox(key="who").value == 5
    fresh = AppTest.from_file(str(MAIN), default_timeout=300)
    fresh.run()  # nobody chosen yet: the wallet, which signs nothing until connected
    assert fresh.sidebar.selectbox(key="who").value == "wallet"


def test_the_post_form_sets_every_term_the_command_line_offers(app_env, settings, files):
    """Scoring fee, margin, cap per account and audit bond, as `task create` takes them."""
    post = page("pages/1_Post_a_bounty.py", 1)
    post.text_input(key="validation_path").input(str(files["validation"])).run()
    post.text_input(key="name").input("every term").run()
    post.number_input(key="bounty").set_value(1.0).run()
    post.number_input(key="scoring_fee").set_value(0.002).run()
    post.number_input(key="margin").set_value(2.5).run()
    post.number_input(key="cap").set_value(3).run()
    post.number_input(key="audit_bond").set_value(0.5).run()
    post.button(key="post").click().run()
    assert not post.exception and not post.error, [e.value for e in post.error]
    task_id = int(post.success[-1].value.split("Task ")[1].split()[0])
    task = market_for(settings).task(task_id)
    assert (task.scoring_fee, task.max_submissions, task.audit_bond, task.bond_state) == (
        2 * 10**15,
        3,
        5 * 10**17,
        "held",
    )
    assert task.info.margin_bps == 250


def test_the_task_chosen_on_one_page_is_the_one_every_page_opens_on(app_env, settings, files):
    """Propose, Train, Oracle and Model used to preselect the newest task whatever the user had
    chosen on the page before; a reload kept neither."""
    older = new_task(settings, files["validation"], "chosen first", stake="0")
    newer = new_task(settings, files["validation"], "posted later", stake="0")
    at = page("pages/2_Task.py", 1)
    assert at.selectbox(key="task").value == newer  # nothing chosen yet: the newest
    at.selectbox(key="task").select(older).run()
    for name in ("pages/3_Propose.py", "pages/4_Train.py", "pages/5_Oracle.py", "pages/2_Task.py"):
        at.switch_page(name).run()
        assert not at.exception, (name, at.exception)
        assert at.selectbox(key="task").value == older, name
    reloaded = page("pages/4_Train.py", 1, task=older)  # a fresh session from the same address
    assert reloaded.selectbox(key="task").value == older


def test_a_button_that_cannot_be_pressed_says_why_in_text(app_env, settings, files):
    """The reason used to be a tooltip only (or nothing): now a line of text beside the button."""
    task_id = new_task(settings, files["validation"], "not due yet", stake="0")
    at = page("pages/2_Task.py", 1, task=task_id)
    assert at.button(key="finalize").disabled
    assert any("Finalize: anyone may finalize once" in c.value for c in at.caption), at.caption
    wallet = page("pages/6_Wallet.py", 9)  # an account nothing was ever credited to
    assert wallet.button(key="withdraw").disabled
    assert any("Withdraw: nothing is waiting" in c.value for c in wallet.caption)


def test_the_reputation_table_lists_the_chain_s_accounts(app_env, settings, files):
    """The table used to list the accounts this machine had names for (the development ones),
    not the chain's: on a public chain, nobody who had actually earned reputation. An account
    the address book does not name, rejected once, is in it with its score."""
    from bountytree.chain.client import ganache_account
    from bountytree.market.actions import open_market
    from bountytree.reasons import Reason

    stranger = ganache_account(DEV_ACCOUNTS + 3)  # beyond the named development accounts
    oracle = market_for(settings)
    oracle.chain.transfer(stranger.address, 10**18)
    task_id = new_task(settings, files["validation"], "reputation from the chain", stake="0")
    spec = load_spec((ROOT / "examples/mlp.json").read_bytes())
    node = open_market(settings, stranger).propose(task_id, spec)
    oracle.reject_nodes(task_id, [(node.node_id, Reason.UNFIT_SPEC)])
    board = oracle.reputation_board()
    assert board[stranger.address] == oracle.reputation(stranger.address) < 0
    wallet = page("pages/6_Wallet.py", 1)
    table = wallet.dataframe[0].value
    assert set(table["address"]) == set(board)
    row = table[table["address"] == stranger.address].iloc[0]
    assert row["reputation"] == board[stranger.address] and row["who"].startswith(
        stranger.address[:8]
    )


def test_a_bounty_posted_from_an_uploaded_file_is_not_posted_twice(app_env, settings, files):
    """An upload was written to a fresh temporary folder on every run of the page, so the terms
    (its path among them) never matched what was posted: no confirmation, and the button was on
    again for a second bounty. Now an upload is written once, owner-only, named by its content."""
    post = page("pages/1_Post_a_bounty.py", 1)
    data = files["validation"].read_bytes()
    post.file_uploader(key="validation_path_upload").set_value(("val.csv", data, "text/csv")).run()
    post.text_input(key="name").input("from an upload").run()
    post.number_input(key="hours").set_value(0.05).run()
    before = len(market_for(settings).task_ids())
    post.button(key="post").click().run()
    assert not post.exception and not post.error, [e.value for e in post.error]
    assert "posted" in post.success[-1].value
    post.run()  # drawn again, as any interaction does
    assert post.button(key="post").disabled
    assert any("posted with exactly these terms" in c.value for c in post.caption)
    assert "posted" in post.success[-1].value
    assert len(market_for(settings).task_ids()) == before + 1
    kept = list((settings.home / "uploads").glob("*/val.csv"))
    assert [p.read_bytes() for p in kept] == [data]
    assert kept[0].stat().st_mode & 0o077 == 0


def test_a_private_task_is_posted_from_the_form(app_env, settings, files, tmp_path):
    """Private models from the app: custodians and dealer named, the sponsor's key read from its
    file on this machine (the form takes a path, never a key); one click posts the task and makes
    it private. A dealer the admin never approved is refused before anything is sent."""
    from bountytree.market.custody import Custody
    from bountytree.private.sealing import public_key, read_private_key, write_private_key

    admin = Custody(market_for(settings, 0))
    parties = [ganache_account(i).address for i in (5, 6, 7)]
    for account in parties:
        if not admin.is_approved(account):
            admin.approve(account)
    key_file = tmp_path / "sponsor.key"
    write_private_key(key_file)
    market = market_for(settings, 1)
    tasks_before = market.task_ids()

    post = page("pages/1_Post_a_bounty.py", 1)
    post.text_input(key="validation_path").input(str(files["validation"])).run()
    post.text_input(key="name").input("app private digits").run()
    post.checkbox(key="private_models").check().run()
    assert post.button(key="post").disabled  # not before its custody is named
    post.text_input(key="custodian_a").input(parties[0]).run()
    post.text_input(key="custodian_b").input(parties[1]).run()
    stranger = ganache_account(9).address
    post.text_input(key="dealer").input(stranger).run()
    post.text_input(key="custody_key_file").input(str(key_file)).run()
    post.button(key="post").click().run()
    assert post.error and "not approved for custody" in post.error[-1].value
    assert market.task_ids() == tasks_before  # nothing sent

    post.text_input(key="dealer").input(parties[2]).run()
    post.button(key="post").click().run()
    assert not post.exception and not post.error, [e.value for e in post.error]
    message = post.success[-1].value
    assert "Private models" in message, message
    task_id = int(message.split("Task ")[1].split()[0])
    view = Custody(market).require(task_id)
    assert [*view.custodians, view.dealer] == parties
    assert view.sponsor_key == public_key(read_private_key(key_file))
    assert market.task(task_id, with_info=False).custodied

    # Posted, but custody refused by the contract (a stake beyond what it holds): said so, and a
    # second click on the same terms posts no second bounty.
    post.text_input(key="name").input("app private, refused").run()
    post.number_input(key="custody_stake").set_value(1e12).run()
    before = market.task_ids()
    post.button(key="post").click().run()
    assert not post.exception, post.exception
    assert post.error and "its custody not registered" in post.error[-1].value, post.error
    assert len(market.task_ids()) == len(before) + 1
    assert market.task(market.task_ids()[-1], with_info=False).custodied  # private all the same
    assert post.button(key="post").disabled  # (AppTest refuses a click on it, as a browser does)
