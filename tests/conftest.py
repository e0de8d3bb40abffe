"""Python tests: one real Ganache per test session (per xdist worker), the real contracts
deployed once on it, and an embedded store in a temporary directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bountytree.chain import deploy
from bountytree.config import ROOT, Settings
from bountytree.localchain import free_port, start_ganache, stop


@pytest.fixture(scope="session")
def ganache():
    port = free_port()
    proc = start_ganache(port)
    yield f"http://127.0.0.1:{port}"
    stop(proc)


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("bountytree")


@pytest.fixture(scope="session")
def settings(ganache, session_dir) -> Settings:
    return Settings(rpc=ganache, account="0", store=str(session_dir / "store"), home=session_dir,
                    deployments=session_dir / "deployments", build=ROOT / "build" / "contracts")


@pytest.fixture(scope="session")
def deployed(settings):
    return deploy(settings)["record"]


def run_cli(settings: Settings, *args: str, module: str = "bountytree", input: bytes | None = None,
            env: dict | None = None) -> subprocess.CompletedProcess:
    """Runs a command line as a user would, in a child process, pointed at the test chain."""
    environment = {**os.environ, "BOUNTYTREE_RPC": settings.rpc, "BOUNTYTREE_STORE": settings.store,
                   "BOUNTYTREE_HOME": str(settings.home), "BOUNTYTREE_DEPLOYMENTS": str(settings.deployments),
                   **(env or {})}
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, input=input,
                          env=environment, timeout=600)
