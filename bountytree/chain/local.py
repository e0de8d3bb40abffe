"""The local development chains: Ganache (the default), anvil, and Hardhat when it is installed.

All of them run the same hardfork as the compiler's evm_version (brownie-config.yaml), derive
the same deterministic accounts from Ganache's mnemonic (so `dev:N` is one key everywhere), and
listen on 127.0.0.1. `bountytree up` keeps a chain's state on disk so that a restart resumes it;
the tests start one without state per session.

Local chains mine a block only when a transaction arrives, while a public chain produces one
every few seconds. A reveal must land in a block after its commit, and the client waits for
that block (`Chain.wait_for_block_after`) instead of asking the node to mine. So every chain
started here has a `BlockClock`: shortly after a block that carries transactions it mines one
more, empty block, as a real network would. A chain nobody uses does not grow.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from bountytree.config import ROOT
from bountytree.errors import UserError
from bountytree.processes import stop, wait_for_port

HARDFORK = "shanghai"
# Ganache's own phrase (`ganache --wallet.deterministic`); anvil and Hardhat are given it too.
MNEMONIC = "myth like bonus scare over problem client lizard pioneer submit female collect"
KINDS = ("ganache", "anvil", "hardhat")
CHAIN_IDS = {"ganache": 1337, "anvil": 31337, "hardhat": 31337}
CHAIN_ID = CHAIN_IDS["ganache"]
BALANCE_ETH = 100_000
GAS_LIMIT = 30_000_000
# The chain a test session or `bountytree up` starts unless told otherwise.
DEFAULT_KIND = "ganache"
# Where `bountytree up` keeps each chain's state, under the home folder.
STATE_FOLDERS = {"ganache": "chain", "anvil": "anvil"}


def tool(name: str) -> str:
    """A node tool from the project's node_modules (`npm ci` installs it), else from PATH."""
    local = ROOT / "node_modules" / ".bin" / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if not found:
        raise UserError(f"{name} not found: run `make setup` (npm ci installs it)")
    return found


def ganache_command() -> str:
    return tool("ganache")


def _rpc(url: str, method: str, params: list[Any], timeout: float = 5) -> Any:
    """One JSON-RPC call with the standard library (the clock runs beside web3, not through it)."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        reply = json.loads(response.read())
    if "error" in reply:
        raise RuntimeError(reply["error"].get("message", str(reply["error"])))
    return reply["result"]


class BlockClock(threading.Thread):
    """Follows every block that carries transactions with `TRAIL` empty blocks, one each
    `interval_s`, as a real network keeps producing them; and mines a block whenever the node
    still holds, one tick later, a transaction that it could have mined.

    Code waiting for "a block after my transaction" (a reveal after its commit, a transaction's
    confirmations: up to TRAIL + 1 of them) then behaves the same on a local chain and a public
    one. A chain nobody uses does not grow. `evm_mine` is the one development RPC all three
    local chains share; only this launcher uses it, never a client. The thread ends with the
    chain's process (`proc`), or with this process for a chain started elsewhere.

    Why the pool is watched: Ganache 7.9 (archived, unfixed) drops a transaction that arrives
    while an `evm_mine` is finishing its block. The transaction stays "pending" in the pool,
    and in instamine mode nothing mines it until some other transaction or `evm_mine` comes,
    so a reveal sent the moment the commit's trailing block appeared could wait forever (its
    send never returned; web3 re-sent it after 60 s and the node answered "mining has already
    started"). docs/environment.md says more.
    """

    TRAIL = 2

    def __init__(
        self,
        url: str,
        proc: subprocess.Popen[bytes] | None = None,
        interval_s: float = 0.25,
        watch_pool: bool = True,  # False only for `make bench-chain`'s baseline
    ):
        super().__init__(name=f"block-clock {url}", daemon=True)
        self.url, self.proc, self.interval_s = url, proc, interval_s
        self._stop_event = threading.Event()
        self._pool = watch_pool  # whether the node answers txpool_content

    def _alive(self) -> bool:
        return self.proc is None or self.proc.poll() is None

    def run(self) -> None:
        followed = -1  # the last block with transactions seen
        owed = 0  # empty blocks still to follow it
        waiting: set[str] = set()  # transactions the node held unmined at the last tick
        while self._alive() and not self._stop_event.wait(self.interval_s):
            try:
                block = _rpc(self.url, "eth_getBlockByNumber", ["latest", False])
                number = int(block["number"], 16)
                if block["transactions"] and number != followed:
                    followed, owed = number, self.TRAIL
                held, waiting = waiting, self._pending()
                if owed > 0 or held & waiting:
                    _rpc(self.url, "evm_mine", [])
                    owed = max(0, owed - 1)
            except (OSError, ValueError, RuntimeError, KeyError, TypeError, AttributeError):
                continue  # starting, stopping or busy: try again at the next tick

    def _pending(self) -> set[str]:
        """The hashes of the transactions the node could mine now (`txpool_content`'s
        "pending"; a gap in an account's nonces keeps the later ones "queued", rightly unmined).
        A node without the method has no pool to watch."""
        if not self._pool:
            return set()
        try:
            pool = _rpc(self.url, "txpool_content", [])
        except RuntimeError as exc:
            if re.search(r"not (found|supported|available)|does not exist|unknown", str(exc), re.I):
                self._pool = False  # a node without the method (Hardhat): nothing to watch
            return set()  # anything else: look again at the next tick
        return {
            str(tx.get("hash"))
            for txs in (pool.get("pending") or {}).values()
            for tx in txs.values()
        }

    def stop(self) -> None:
        self._stop_event.set()


@dataclass
class LocalChain:
    """A local chain this process started: its kind, where it listens, its process and clock."""

    kind: str
    port: int
    chain_id: int
    proc: subprocess.Popen[bytes]
    clock: BlockClock
    state: Path | None

    @property
    def rpc(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.clock.stop()
        stop(self.proc)


def _ganache_args(port: int, state: Path | None, accounts: int, chain_id: int) -> list[str]:
    cmd = [
        tool("ganache"),
        "--wallet.deterministic",
        "--hardfork",
        HARDFORK,
        "--chain.chainId",
        str(chain_id),
        "--server.host",
        "127.0.0.1",
        "--server.port",
        str(port),
        "--wallet.totalAccounts",
        str(accounts),
        "--wallet.defaultBalance",
        str(BALANCE_ETH),
        "--miner.blockGasLimit",
        str(GAS_LIMIT),
        "--logging.quiet",
    ]
    if state is not None:
        state.mkdir(parents=True, exist_ok=True)
        cmd += ["--database.dbPath", str(state)]
    return cmd


def anvil_state_files(state: Path) -> tuple[Path, Path]:
    """The snapshot anvil loads and the one it dumps to (see `_settle_anvil_state`)."""
    return state / "state.json", state / "state.next.json"


def _settle_anvil_state(state: Path) -> Path | None:
    """anvil rewrites its dump in place (truncate, then write), so a process killed mid-write
    leaves half a file. It therefore dumps to `state.next.json`; here, before each start, a
    complete dump replaces `state.json` by a rename and a torn one is dropped. Returns the
    snapshot to load, if any."""
    current, following = anvil_state_files(state)
    state.mkdir(parents=True, exist_ok=True)
    if following.exists():
        try:
            json.loads(following.read_bytes())
            os.replace(following, current)
        except ValueError:
            following.unlink()  # torn by a kill during a dump: the previous snapshot stands
    return current if current.exists() else None


def _anvil_args(port: int, state: Path | None, accounts: int, chain_id: int) -> list[str]:
    cmd = [
        tool("anvil"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--chain-id",
        str(chain_id),
        "--hardfork",
        HARDFORK,
        "--mnemonic",
        MNEMONIC,
        "--accounts",
        str(accounts),
        "--balance",
        str(BALANCE_ETH),
        "--gas-limit",
        str(GAS_LIMIT),
        "--quiet",
    ]
    if state is not None:
        load = _settle_anvil_state(state)
        if load is not None:
            cmd += ["--load-state", str(load)]
        # Dumped every 5 s and on a clean exit; a kill loses at most those 5 s.
        cmd += ["--dump-state", str(anvil_state_files(state)[1]), "--state-interval", "5"]
    return cmd


HARDHAT_CONFIG = """module.exports = {{
  networks: {{
    hardhat: {{
      chainId: {chain_id},
      hardfork: "{hardfork}",
      blockGasLimit: {gas_limit},
      accounts: {{ mnemonic: "{mnemonic}", count: {accounts}, accountsBalance: "{balance}" }},
    }},
  }},
}};
"""


def _hardhat_args(
    port: int, state: Path | None, accounts: int, chain_id: int
) -> tuple[list[str], Path]:
    """Hardhat is not a dependency (`npm install hardhat@2` in a folder of one's own, named by
    BOUNTYTREE_HARDHAT; see docs/environment.md). It runs from that folder, since it refuses to
    start outside the project that installed it, with a config file written here; it keeps no
    state on disk."""
    if state is not None:
        raise UserError("hardhat keeps no state on disk: use --chain ganache or anvil")
    project = Path(os.environ.get("BOUNTYTREE_HARDHAT") or ROOT)
    binary = project / "node_modules" / ".bin" / "hardhat"
    if not binary.exists():
        raise UserError(f"hardhat not found in {project}: set BOUNTYTREE_HARDHAT to its folder")
    config = Path(tempfile.mkdtemp(prefix="bountytree-hardhat-")) / "hardhat.config.js"
    config.write_text(
        HARDHAT_CONFIG.format(
            chain_id=chain_id,
            hardfork=HARDFORK,
            gas_limit=GAS_LIMIT,
            mnemonic=MNEMONIC,
            accounts=accounts,
            balance=BALANCE_ETH * 10**18,
        )
    )
    cmd = [str(binary), "--config", str(config), "node", "--hostname", "127.0.0.1"]
    return [*cmd, "--port", str(port)], project


def start_chain(
    kind: str,
    port: int,
    state: Path | None = None,
    accounts: int = 20,
    log: IO[bytes] | None = None,
    chain_id: int | None = None,
    block_time: int | None = None,
) -> LocalChain:
    """Starts a local chain of `kind` on 127.0.0.1:`port`, with its block clock; with `state`,
    its state persists in that folder (a later start resumes it). `chain_id` replaces the
    kind's own (the tests use it to play a public chain on this machine). `block_time` (Ganache
    and anvil) mines a block every so many seconds instead of one per transaction, as a public
    chain does: a transaction then waits in the node's pool for its block."""
    if kind not in KINDS:
        raise UserError(f"unknown local chain {kind!r}: choose one of {', '.join(KINDS)}")
    cid = chain_id if chain_id is not None else CHAIN_IDS[kind]
    cwd: Path | None = None
    env = None
    if kind == "ganache":
        cmd = _ganache_args(port, state, accounts, cid)
        cmd += ["--miner.blockTime", str(block_time)] if block_time else []
    elif kind == "anvil":
        cmd = _anvil_args(port, state, accounts, cid)
        cmd += ["--block-time", str(block_time)] if block_time else []
    else:
        cmd, cwd = _hardhat_args(port, state, accounts, cid)
        env = {**os.environ, "HARDHAT_DISABLE_TELEMETRY_PROMPT": "true"}
    out = log or subprocess.DEVNULL
    proc = subprocess.Popen(cmd, stdout=out, stderr=out, cwd=cwd, env=env)
    try:
        wait_for_port(port, proc, name=kind)
    except BaseException:
        stop(proc)
        raise
    # A chain that mines on its own block time holds transactions for their block on purpose.
    clock = BlockClock(f"http://127.0.0.1:{port}", proc, watch_pool=not block_time)
    clock.start()
    return LocalChain(kind, port, cid, proc, clock, state)


def start_ganache(
    port: int, db_path: Path | None = None, accounts: int = 20, log: IO[bytes] | None = None
) -> subprocess.Popen[bytes]:
    """Starts Ganache on 127.0.0.1:`port` (with its block clock); with `db_path`, chain state
    persists there. `stop(proc)` stops both."""
    return start_chain("ganache", port, db_path, accounts, log).proc
