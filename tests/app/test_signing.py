"""Transactions the app prepares and someone else signs (bountytree/chain/unsigned.py), and the jobs
that wait for the browser wallet (app/jobs.py), against the session's real chain. The wallet is
played by the test: the node holds its account unlocked and signs eth_sendTransaction, as a
wallet would; the AppTest session is the app's real pages."""

from __future__ import annotations

import re

import pytest
from streamlit.testing.v1 import AppTest

from app import jobs
from bountytree.chain.client import LOCAL_CHAIN_IDS, Chain, connect, ganache_account
from bountytree.chain.unsigned import KeySigner, SignerChain, follow, prepare
from bountytree.config import ROOT
from bountytree.errors import UserError
from bountytree.storage.connect import open_store
from tests.conftest import advance_time, market_for, shown

WALLET = 14  # the account the test's "wallet" holds (unlocked on the test chain)


@pytest.fixture
def app_env(settings, deployed, monkeypatch):
    for name, value in {
        "BOUNTYTREE_RPC": settings.rpc,
        "BOUNTYTREE_STORE": settings.store,
        "BOUNTYTREE_HOME": str(settings.home),
        "BOUNTYTREE_DEPLOYMENTS": str(settings.deployments),
    }.items():
        monkeypatch.setenv(name, value)


def key_chain(settings, index: int) -> SignerChain:
    return SignerChain(settings, KeySigner(ganache_account(index)))


def due_task(settings, files, sponsor: int) -> int:
    """A task nobody worked on, past its deadline: anyone may finalize it."""
    out = market_for(settings, sponsor).create_task(
        files["validation"], name="due", bounty=10**15, target_bps=9000, deadline_s=60
    )
    advance_time(settings, 120)
    return out.task_id


def node_sends(settings, tx) -> str:
    """The test's wallet: the node signs with the unlocked account."""
    return connect(settings.rpc).eth.send_transaction(tx.to_rpc()).to_0x_hex()


def test_prepare_refuses_in_one_line_and_sends_nothing(settings, deployed):
    chain = key_chain(settings, 15)
    before = chain.w3.eth.get_transaction_count(chain.address)
    with pytest.raises(UserError, match=r"refused by the contract: NothingToWithdraw\(account="):
        prepare(chain, chain.tree.functions.withdraw())
    with pytest.raises(UserError, match=r"refused by the contract: UnknownTask\(taskId=999\)"):
        prepare(chain, chain.tree.functions.finalize(999))
    assert chain.w3.eth.get_transaction_count(chain.address) == before


def test_prepared_for_an_address_without_its_key(settings, deployed, files):
    """Prepared for the wallet's address (no key here), sent by the wallet, followed here."""
    task_id = due_task(settings, files, 1)
    chain = SignerChain(settings, jobs.BrowserSigner(ganache_account(WALLET).address))
    tx = prepare(chain, chain.tree.functions.finalize(task_id))
    assert tx.sender == ganache_account(WALLET).address and tx.to == chain.tree.address
    assert set(tx.to_rpc()) == {"from", "to", "data", "value", "gas"}
    assert tx.chain_id in LOCAL_CHAIN_IDS and tx.gas > tx.quote.gas
    sent = follow(chain, node_sends(settings, tx), tx, chain.tree.abi)
    assert sent.receipt["status"] == 1 and market_for(settings).task(task_id).finalized


def test_a_revert_on_chain_is_decoded(settings, deployed, files):
    """Both simulated before either was sent; the second reverts in its block."""
    task_id = due_task(settings, files, 1)
    chain = SignerChain(settings, jobs.BrowserSigner(ganache_account(WALLET).address))
    first = prepare(chain, chain.tree.functions.finalize(task_id))
    second = prepare(chain, chain.tree.functions.finalize(task_id))
    follow(chain, node_sends(settings, first), first, chain.tree.abi)
    late = node_sends(settings, second)
    with pytest.raises(UserError, match=rf"{late} reverted on-chain: TaskIsFinalized\(taskId="):
        follow(chain, late, second, chain.tree.abi)


def test_a_hash_of_another_transaction_is_refused(settings, deployed, files):
    task_id = due_task(settings, files, 1)
    chain = SignerChain(settings, jobs.BrowserSigner(ganache_account(WALLET).address))
    tx = prepare(chain, chain.tree.functions.finalize(task_id))
    other = (
        connect(settings.rpc)
        .eth.send_transaction({"from": tx.sender, "to": ganache_account(3).address, "value": 1})
        .to_0x_hex()
    )
    with pytest.raises(UserError) as refused:
        follow(chain, other, tx, chain.tree.abi)
    # which fields differ, and what did happen on-chain (1 wei went out, and was mined)
    assert "not the one prepared (its contract, call, value differ)" in str(refused.value)
    assert re.search(
        r"it sends 0\.000000000000000001 ETH from 0x\w+ to 0x\w+ and is mined in block \d+",
        str(refused.value),
    ), refused.value
    assert not market_for(settings).task(task_id).finalized


def test_the_hash_of_an_earlier_identical_transaction_is_refused(settings, deployed, files):
    """The same call prepared again (a second withdraw, say): a hash sent before it was prepared
    names the first one, and its receipt is not this action's outcome."""
    import dataclasses

    task_id = due_task(settings, files, 1)
    chain = SignerChain(settings, jobs.BrowserSigner(ganache_account(WALLET).address))
    first = prepare(chain, chain.tree.functions.finalize(task_id))
    earlier = node_sends(settings, first)
    again = dataclasses.replace(first, first_nonce=first.first_nonce + 1)
    with pytest.raises(UserError, match=r"not the one prepared \(its nonce"):
        follow(chain, earlier, again, chain.tree.abi)
    assert follow(chain, earlier, first, chain.tree.abi).receipt["status"] == 1


def test_a_key_signer_runs_market_actions(settings, deployed, files):
    """A development key through the same path: the Market runs unchanged on a SignerChain."""
    from bountytree.market.actions import Market

    market = Market(key_chain(settings, 16), open_store(settings.store))
    assert isinstance(market.chain, Chain)
    out = market.create_task(
        files["validation"], name="signed here", bounty=10**15, target_bps=9000, deadline_s=3600
    )
    task = market_for(settings).task(out.task_id)
    assert task.sponsor == ganache_account(16).address and task.bounty == 10**15
    assert out.sent.receipt["status"] == 1


def test_a_job_waits_for_the_wallet_and_matches_answers_by_id():
    seen = []
    job = jobs.Job(lambda: seen.append(signer.submit(None, tx)) or "done", "testing")
    signer = jobs.BrowserSigner(ganache_account(WALLET).address)
    tx = object()
    job.start()
    assert job.wait(30) and job.request is not None and not job.done
    assert not job.answer(jobs.WalletAnswer("not-this-one", tx_hash="0x01"))
    assert job.answer(jobs.WalletAnswer(job.request.id, tx_hash="0xabc"))
    assert job.wait(30) and job.done and job.result == "done" and seen == ["0xabc"]


def test_a_declined_transaction_is_one_line():
    signer = jobs.BrowserSigner(ganache_account(WALLET).address)
    job = jobs.Job(lambda: signer.submit(None, object()), "testing").start()
    assert job.wait(30) and job.request is not None
    job.answer(jobs.WalletAnswer(job.request.id, error="declined in the wallet", code=4001))
    assert job.wait(30) and job.done
    assert job.error == "not sent: declined in the wallet" and job.crash is None


def test_a_wallet_that_never_answers_ends_the_job(monkeypatch):
    monkeypatch.setattr(jobs, "WALLET_TIMEOUT_S", 0.2)
    signer = jobs.BrowserSigner(ganache_account(WALLET).address)
    job = jobs.Job(lambda: signer.submit(None, object()), "testing").start()
    while not job.done:
        job.wait(5)
    assert "did not answer" in job.error


def test_the_wallet_signs_only_inside_a_page_action():
    with pytest.raises(UserError, match="only be sent from a page action"):
        jobs.BrowserSigner(ganache_account(WALLET).address).submit(None, object())


def wallet_page(page: str, chain_id: int = 1337, **state) -> AppTest:
    """A page of the app for a user whose browser wallet is connected (to the test chain)."""
    at = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=300)
    at.session_state["who"] = "wallet"
    at.session_state["wallet"] = {"address": ganache_account(WALLET).address, "chainId": chain_id}
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def pending_request(at: AppTest) -> dict:
    """The transaction the page handed to the wallet component."""
    import json

    sends = [
        json.loads(c.proto.json_args)
        for c in at.get("component_instance")
        if json.loads(c.proto.json_args).get("mode") == "send"
    ]
    assert len(sends) == 1, sends
    return sends[0]["request"]


def test_a_wallet_user_posts_a_bounty_in_the_app(app_env, settings, files):
    account = ganache_account(WALLET).address
    w3 = connect(settings.rpc)
    nonce = w3.eth.get_transaction_count(account)
    post = wallet_page(
        "pages/1_Post_a_bounty.py",
        validation_path=str(files["validation"]),
        name="wallet bounty",
    )
    assert account in " ".join(c.value for c in post.sidebar.caption)
    post.button(key="post").click().run()
    prompt = post.info[-1].value
    assert "confirm the transaction in your wallet" in prompt and "createTask" in prompt
    request = pending_request(post)
    assert request["tx"]["from"] == account and int(request["tx"]["value"], 16) == 5 * 10**18

    # The user declines: nothing is sent, one line says so.
    post.session_state["wallet-send-post"] = {
        "id": request["id"],
        "error": "declined",
        "code": 4001,
    }
    post.run()
    assert [shown(e.value) for e in post.error] == ["not sent: declined"]
    assert w3.eth.get_transaction_count(account) == nonce

    # Again, and the wallet signs: the page follows the receipt to the new task.
    post.button(key="post").click().run()
    request = pending_request(post)
    tx_hash = w3.eth.send_transaction(request["tx"]).to_0x_hex()
    post.session_state["wallet-send-post"] = {"id": request["id"], "hash": tx_hash}
    post.run()
    assert not post.error, [e.value for e in post.error]
    message = post.success[-1].value
    assert "posted" in message and tx_hash in message
    task = market_for(settings).task(int(message.split("Task ")[1].split()[0]))
    assert task.sponsor == account and task.info.name == "wallet bounty"


def test_a_wallet_on_another_chain_cannot_act(app_env, settings, files):
    account = ganache_account(WALLET).address
    nonce = connect(settings.rpc).eth.get_transaction_count(account)
    post = wallet_page(
        "pages/1_Post_a_bounty.py", chain_id=1, validation_path=str(files["validation"]), name="x"
    )
    assert "switch it to chain 1337" in post.sidebar.warning[0].value
    post.button(key="post").click().run()
    assert [shown(e.value) for e in post.error] == [
        "connect a wallet on chain 1337 first (sidebar)"
    ]
    assert not post.get("component_instance")[1:], "nothing handed to the wallet"
    assert connect(settings.rpc).eth.get_transaction_count(account) == nonce


def test_a_chain_lost_mid_action_is_one_line(settings, deployed):
    """A chain that stops answering is named as such, not shown as a traceback."""
    from bountytree.config import Settings

    dead = Settings(rpc=settings.rpc, deployments=settings.deployments)
    chain = SignerChain(dead, KeySigner(ganache_account(15)))
    chain.w3.provider.endpoint_uri = "http://127.0.0.1:9"  # the node goes away
    job = jobs.Job(lambda: chain.w3.eth.get_balance(chain.address), "testing").start()
    while not job.done:
        job.wait(5)
    assert job.crash is None and job.error.startswith("lost the connection to the chain")
