"""The running app in a real headless Chromium (playwright-core, chromium.mjs): a task created
from the command line appears on the home page and the task page renders its tree (saved as a
screenshot), a score the Ladder carried marked as carried; a user with a browser wallet posts a
bounty, finalizes it and withdraws, from the browser alone; the app listens on 127.0.0.1 only and
shows no "Deploy" button."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from web3 import Web3

from bountytree.chain.client import connect, ganache_account
from bountytree.config import ROOT
from bountytree.market.actions import Score
from bountytree.models.spec import load_spec
from bountytree.processes import free_port, stop, wait_for_port
from tests.conftest import market_for, new_task

FRONTEND = ROOT / "app" / "wallet" / "frontend"
WALLET_ACCOUNT = 13  # unlocked on the test chain; used by no other test


def page_once(url: str, text: str, shot: Path | None = None) -> str:
    """The HTML of the app's page at `url` once it shows `text` (page_once.mjs; one browser
    session that waits for it: the server's first run imports the whole stack, and the Tasks
    page reads every task of the worker's chain, which a loaded machine does slowly)."""
    config = {"url": url, "text": text, "frontend": str(FRONTEND), "wait_ms": 300_000}
    if shot is not None:
        config["shot"] = str(shot)
    run = subprocess.run(
        ["node", str(Path(__file__).with_name("page_once.mjs"))],
        env={**os.environ, "BOUNTYTREE_BROWSER_TEST": json.dumps(config)},
        capture_output=True,
        text=True,
        timeout=420,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return run.stdout


def listening_addresses(port: int) -> set[str]:
    """The local addresses with a listening TCP socket on `port` (from /proc/net/tcp{,6})."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found


@pytest.fixture
def app_url(settings, deployed, tmp_path):
    """The app as `bountytree up` starts it (its settings from app/.streamlit/config.toml, found
    from any directory: this one runs in a temporary one)."""
    port = free_port()
    env = {
        **os.environ,
        "BOUNTYTREE_RPC": settings.rpc,
        "BOUNTYTREE_STORE": settings.store,
        "BOUNTYTREE_HOME": str(settings.home),
        "BOUNTYTREE_DEPLOYMENTS": str(settings.deployments),
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(ROOT / "app" / "main.py"),
            "--server.port",
            str(port),
        ],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, proc, timeout=60)
        urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=30).read()
        assert listening_addresses(port) == {"0100007F"}, "127.0.0.1 only"
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


def _node_label(dom: str, node_id: int) -> str:
    """The text of node `node_id`'s box in the tree's SVG (one <text> element per line)."""
    boxes = [g.split("</g>")[0] for g in dom.split('class="node"')[1:]]
    box = [b for b in boxes if f">#{node_id} arch<" in b]
    assert len(box) == 1, f"node #{node_id} is not once in the tree"
    return " | ".join(re.findall(r"<text[^>]*>([^<]*)</text>", box[0]))


def test_task_from_the_cli_appears_in_the_browser(settings, files, app_url, tmp_path):
    task_id = new_task(
        settings, files["validation"], "seen in chromium", bounty="2", target="0.9", stake="0"
    )
    architect = market_for(settings, 1)
    cnn, mlp = (
        architect.propose(task_id, load_spec((ROOT / "examples" / name).read_bytes())).node_id
        for name in ("cnn.json", "mlp.json")
    )
    # The oracle (account 0) records the CNN's score as the Ladder carries it (no new best: the
    # task's 0) and the MLP's own released score.
    market_for(settings, 0).record_scores(task_id, [Score(cnn, 0, 0, 0), Score(mlp, 6300, 0, 0)])
    dom = page_once(app_url + "/", f"#{task_id} seen in chromium")
    assert f"#{task_id} seen in chromium" in dom, dom[-2000:]
    # The tree, drawn as SVG in the page: the carried score says so, the released one does not.
    shot = tmp_path / "task.png"
    dom = page_once(f"{app_url}/Task?task={task_id}", f"#{mlp} arch", shot)
    labels = {node: _node_label(dom, node) for node in (cnn, mlp)}
    assert "0.00% (carried)" in labels[cnn], labels
    assert "63.00%" in labels[mlp] and "carried" not in labels[mlp], labels
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 25_000


def test_a_browser_wallet_posts_finalizes_and_withdraws(settings, files, app_url, tmp_path):
    account = ganache_account(WALLET_ACCOUNT).address
    w3 = connect(settings.rpc)
    market = market_for(settings)
    tasks_before = len(market.task_ids())
    contract_before = w3.eth.get_balance(market.tree.address)
    before = w3.eth.get_balance(account)
    bounty = Web3.to_wei("2.5", "ether")
    config = {
        "url": app_url,
        "rpc": settings.rpc,
        "account": account,
        "validation": str(files["validation"]),
        "name": "from the wallet",
        "bounty": "2.5",
        "shots": str(tmp_path),
        "frontend": str(FRONTEND),
    }
    # A chain nobody uses mines no block, and a deadline counts from the latest one: a fresh
    # block (test only) keeps a short deadline in the future.
    assert "error" not in w3.provider.make_request("evm_mine", [])
    run = subprocess.run(
        ["node", str(Path(__file__).with_name("browser_wallet.mjs"))],
        env={**os.environ, "BOUNTYTREE_BROWSER_TEST": json.dumps(config)},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout)
    assert "error" not in out, (out["error"], out.get("text", "")[-3000:])
    assert out["deploy_button"] == 0
    assert account in out["sidebar"] and "Balance" in out["sidebar"], out["sidebar"]

    # Three transactions, each sent by the wallet exactly once, each from its account.
    sent = [r for r in out["seen"] if r["method"] == "eth_sendTransaction"]
    assert len(sent) == 3, out["seen"]
    assert all(r["params"][0]["from"] == account and "result" in r for r in sent)
    hashes = [r["result"] for r in sent]
    for tx_hash, step in zip(hashes, ("posted", "finalized", "withdrew"), strict=True):
        assert tx_hash in out[step], (tx_hash, out[step])

    # The chain: the task exists, its sponsor is the wallet, the bounty was escrowed and is
    # back with the wallet, less the fees of three transactions.
    task_id = out["task_id"]
    assert len(market.task_ids()) == tasks_before + 1
    task = market.task(task_id)
    assert task.sponsor == account and task.bounty == bounty and task.finalized
    assert task.info.name == "from the wallet"
    receipts = [w3.eth.get_transaction_receipt(h) for h in hashes]
    assert all(r["status"] == 1 for r in receipts)
    create = w3.eth.get_transaction(hashes[0])
    assert create["value"] == bounty and create["to"] == market.tree.address
    # Right after the post, the bounty sat in escrow, paid from the wallet's account.
    posted_in = receipts[0]["blockNumber"]
    escrowed = w3.eth.get_balance(market.tree.address, block_identifier=posted_in)
    assert escrowed == contract_before + bounty
    fee = receipts[0]["gasUsed"] * receipts[0]["effectiveGasPrice"]
    assert w3.eth.get_balance(account, block_identifier=posted_in) == before - bounty - fee
    fees = sum(r["gasUsed"] * r["effectiveGasPrice"] for r in receipts)
    assert w3.eth.get_balance(account) == before - fees
    assert market.pending(account) == 0
    assert w3.eth.get_balance(market.tree.address) == contract_before
    # No second bounty from a second click, and who and which task survive pages and a reload.
    assert (
        out["post_again_disabled"] and "posted with exactly these terms" in out["post_again_reason"]
    )
    assert f"#{task_id} from the wallet" in out["task_on_propose"], out["task_on_propose"]
    assert f"#{task_id} from the wallet" in out["task_after_reload"], out["task_after_reload"]
    assert "Browser wallet" in out["who_after_reload"], out["who_after_reload"]
