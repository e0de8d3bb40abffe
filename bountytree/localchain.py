"""The local development chain: Ganache from node_modules, deterministic accounts.

Used by `bountytree up` (state kept on disk so a restart resumes) and by the tests (one chain
per test session). Its hardfork matches the compiler's evm_version in brownie-config.yaml.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from .config import ROOT
from .errors import UserError

HARDFORK = "shanghai"
CHAIN_ID = 1337


def ganache_command() -> str:
    local = ROOT / "node_modules" / ".bin" / "ganache"
    if local.exists():
        return str(local)
    found = shutil.which("ganache")
    if not found:
        raise UserError("ganache not found: run `make setup` (npm ci installs it)")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_ganache(
    port: int, db_path: Path | None = None, accounts: int = 20, log=None
) -> subprocess.Popen:
    """Starts Ganache on 127.0.0.1:`port`; with `db_path`, chain state persists there."""
    cmd = [
        ganache_command(),
        "--wallet.deterministic",
        "--hardfork",
        HARDFORK,
        "--chain.chainId",
        str(CHAIN_ID),
        "--server.host",
        "127.0.0.1",
        "--server.port",
        str(port),
        "--wallet.totalAccounts",
        str(accounts),
        "--wallet.defaultBalance",
        "100000",
        "--miner.blockGasLimit",
        "30000000",
        "--logging.quiet",
    ]
    if db_path is not None:
        Path(db_path).mkdir(parents=True, exist_ok=True)
        cmd += ["--database.dbPath", str(db_path)]
    proc = subprocess.Popen(cmd, stdout=log or subprocess.DEVNULL, stderr=log or subprocess.DEVNULL)
    wait_for_port(port, proc)
    return proc


def wait_for_port(port: int, proc: subprocess.Popen | None = None, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise UserError(
                f"ganache exited with status {proc.returncode} before listening on {port}"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise UserError(f"ganache did not listen on port {port} within {timeout:.0f} s")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
