"""One nonce per transaction, whatever the local chain's block clock is doing.

Many sends from one account, in threads of this process and in other processes at once, while
the chain's block clock mines: every send must land, each with its own nonce, none refused. On a
client that took the node's `pending` count as the next nonce, Ganache answered a send made
while it was still mining the previous one with "transaction can't be replaced, mining has
already started" (the count did not yet include the transaction being mined).
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from bountytree.chain.client import Chain, ganache_account
from bountytree.chain.local import start_chain
from bountytree.config import Settings
from bountytree.processes import free_port

SENDER, RECEIVER = 15, 16
THREADS, PROCESSES, EACH = 4, 2, 8

CHILD = f"""
import sys
from bountytree.chain.client import Chain, ganache_account
from bountytree.config import Settings
from pathlib import Path
settings = Settings(rpc=sys.argv[1], home=Path(sys.argv[2]), account="dev:{SENDER}")
chain = Chain(settings, need_contracts=False)
for _ in range({EACH}):
    sent = chain.transfer(ganache_account({RECEIVER}).address, 1)
    print(sent.receipt["transactionHash"].hex(), flush=True)
"""


@pytest.fixture
def home(tmp_path, settings) -> Settings:
    return Settings(rpc=settings.rpc, home=tmp_path, account=f"dev:{SENDER}")


def _mine_constantly(rpc: str, stop: threading.Event) -> None:
    """A block clock at its busiest: a block mined as soon as the last one is, so that sends
    keep arriving while the node is mining."""
    from bountytree.chain.local import _rpc

    while not stop.is_set():
        with contextlib.suppress(OSError, ValueError, RuntimeError):
            _rpc(rpc, "evm_mine", [])


@pytest.fixture
def clocked(tmp_path):
    """A Ganache that mines a block every second, as a public chain does: a transaction waits in
    the pool for its block, and the node's `pending` count does not include it."""
    chain = start_chain("ganache", free_port(), block_time=1)
    yield Settings(rpc=chain.rpc, home=tmp_path, account=f"dev:{SENDER}")
    chain.stop()


def test_two_sends_within_one_block_take_two_nonces(clocked):
    """Two transfers from one account before a block: the second used to take the first's
    nonce (Ganache's pending count is its mined count) and was refused as a replacement."""
    first, second = Chain(clocked, need_contracts=False), Chain(clocked, need_contracts=False)
    to = ganache_account(RECEIVER).address
    start = first.w3.eth.get_transaction_count(first.address)
    with ThreadPoolExecutor(2) as pool:
        sends = [
            pool.submit(chain.transfer, to, value) for chain, value in ((first, 1), (second, 2))
        ]
        receipts = [s.result().receipt for s in sends]
    assert all(r["status"] == 1 for r in receipts)
    nonces = sorted(first.w3.eth.get_transaction(r["transactionHash"])["nonce"] for r in receipts)
    assert nonces == [start, start + 1]


def test_sends_from_one_account_in_threads_and_processes_never_share_a_nonce(home):
    stop = threading.Event()
    clock = threading.Thread(target=_mine_constantly, args=(home.rpc, stop), daemon=True)
    clock.start()
    try:
        _sends_in_threads_and_processes(home)
    finally:
        stop.set()
        clock.join()


def _sends_in_threads_and_processes(home: Settings) -> None:
    chain = Chain(home, need_contracts=False)
    to = ganache_account(RECEIVER).address
    start = chain.w3.eth.get_transaction_count(chain.address)
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, home.rpc, str(home.home)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    errors: list[str] = []
    lock = threading.Lock()

    def burst(_: int) -> list[str]:
        mine = Chain(home, need_contracts=False)  # a client per thread, as the app's jobs have
        hashes = []
        for _ in range(EACH):
            try:
                hashes.append(mine.transfer(to, 1).receipt["transactionHash"].hex())
            except Exception as exc:  # counted, not raised: every failure is reported
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}")
        return hashes

    with ThreadPoolExecutor(THREADS) as pool:
        ours = [h for hashes in pool.map(burst, range(THREADS)) for h in hashes]
    theirs = []
    for child in children:
        out, err = child.communicate(timeout=300)
        if child.returncode != 0:
            errors.append(
                err.strip().splitlines()[-1] if err.strip() else f"exit {child.returncode}"
            )
        theirs += out.split()
    assert errors == []
    total = THREADS * EACH + PROCESSES * EACH
    assert len(set(ours + theirs)) == total
    nonces = sorted(
        chain.w3.eth.get_transaction("0x" + h.removeprefix("0x"))["nonce"] for h in ours + theirs
    )
    assert nonces == list(range(start, start + total))
    assert chain.w3.eth.get_transaction_count(chain.address) == start + total


def test_a_forged_or_damaged_cursor_changes_nothing(home):
    """The cursor is believed only for this account's own transaction with the nonce before it,
    and at most a few ahead of the node: a cursor file naming someone else's transaction, a
    nonce far ahead, or garbage, is ignored (the send takes the node's count and lands)."""
    import json

    chain = Chain(home, need_contracts=False)
    other = Chain(
        Settings(rpc=home.rpc, home=home.home / "other", account="dev:17"), need_contracts=False
    )
    theirs = other.transfer(chain.address, 1).receipt["transactionHash"]
    path = home.home / "nonces" / f"{chain.chain_id}-{chain.address}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    start = chain.w3.eth.get_transaction_count(chain.address)
    for forged in (
        {"next": start + 10**9, "last": bytes(theirs).hex()},  # far ahead, another's transaction
        {"next": start + 1, "last": bytes(theirs).hex()},  # close, but not this account's
        {"next": "x", "last": "zz"},  # garbage
    ):
        path.write_text(json.dumps(forged))
        sent = chain.transfer(ganache_account(RECEIVER).address, 1)
        assert sent.receipt["status"] == 1
        nonce = chain.w3.eth.get_transaction(sent.receipt["transactionHash"])["nonce"]
        assert nonce == start
        start += 1
    path.write_text("{not json")
    assert chain.transfer(ganache_account(RECEIVER).address, 1).receipt["status"] == 1


def test_a_node_that_refuses_the_transaction_it_mines_gets_it_once(home):
    """Ganache can answer "mining has already started" for the very transaction it is mining
    (seen in full suite runs: a reveal refused, or sent again under the next nonce and then
    reverted as UnknownCommitment). A node in front of the chain that forwards a transaction and
    then answers that error: the client finds its transaction known and sends nothing more."""
    import json
    import urllib.request
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Lying(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            request = urllib.request.Request(home.rpc, body, {"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=30) as r:
                answer = r.read()
            call = json.loads(body)
            if isinstance(call, dict) and call.get("method") == "eth_sendRawTransaction":
                answer = json.dumps(
                    {
                        "jsonrpc": "2.0",
                        "id": call["id"],
                        "error": {
                            "code": -32003,
                            "message": "transaction can't be replaced, mining has already started.",
                        },
                    }
                ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Lying)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        lying = Settings(
            rpc=f"http://127.0.0.1:{server.server_address[1]}",
            home=home.home,
            account=f"dev:{SENDER}",
        )
        chain = Chain(lying, need_contracts=False)
        start = chain.w3.eth.get_transaction_count(chain.address)
        sent = chain.transfer(ganache_account(RECEIVER).address, 1)
        assert sent.receipt["status"] == 1
        assert chain.w3.eth.get_transaction_count(chain.address) == start + 1  # sent once
    finally:
        server.shutdown()
        server.server_close()


def test_a_transaction_the_node_holds_unmined_is_mined_by_the_block_clock(tmp_path, monkeypatch):
    """Ganache 7.9 can leave a transaction pending in its pool that nothing mines: one that
    arrives while an `evm_mine` finishes its block (the block clock's last trailing block, when
    a reveal is sent the moment that block appears). The send then never returned, web3 sent it
    again after 60 s, and the suite failed with "mining has already started" or a reveal "not
    mined within 120 s". The same state is made on purpose here on anvil with its automine off:
    the block clock must mine what the node holds. A chain with nothing to mine does not grow."""
    from bountytree.chain import client
    from bountytree.chain.local import _rpc

    monkeypatch.setitem(client.RECEIPT_TIMEOUT_S, True, 15.0)
    chain = start_chain("anvil", free_port())
    try:
        idle = int(_rpc(chain.rpc, "eth_blockNumber", []), 16)
        time.sleep(4 * chain.clock.interval_s)
        assert int(_rpc(chain.rpc, "eth_blockNumber", []), 16) == idle
        _rpc(chain.rpc, "evm_setAutomine", [False])
        sender = Chain(
            Settings(rpc=chain.rpc, home=tmp_path, account=f"dev:{SENDER}"), need_contracts=False
        )
        sent = sender.transfer(ganache_account(RECEIVER).address, 1)
        assert sent.receipt["status"] == 1
    finally:
        chain.stop()
