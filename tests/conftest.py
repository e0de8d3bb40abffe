"""Python tests: one real local chain per test session (per xdist worker), the real contracts
deployed once on it, and an embedded store in a temporary directory.

The chain is Ganache unless BOUNTYTREE_TEST_CHAIN names another local chain (`anvil`, or
`hardhat` when it is installed: see docs/environment.md)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from ipfs_daemon import ipfs_daemon  # noqa: F401 (a real IPFS daemon per session, on demand)

from bountytree.chain.client import deploy
from bountytree.chain.local import DEFAULT_KIND, start_chain
from bountytree.config import ROOT, Settings
from bountytree.processes import free_port

TEST_CHAIN = os.environ.get("BOUNTYTREE_TEST_CHAIN", DEFAULT_KIND)


@pytest.fixture(scope="session")
def local_chain():
    chain = start_chain(TEST_CHAIN, free_port())
    yield chain
    chain.stop()


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("bountytree")


@pytest.fixture(scope="session")
def settings(local_chain, session_dir) -> Settings:
    return Settings(
        rpc=local_chain.rpc,
        account="0",
        store=str(session_dir / "store"),
        home=session_dir,
        deployments=session_dir / "deployments",
        build=ROOT / "build" / "contracts",
    )


@pytest.fixture(scope="session")
def deployed(settings):
    return deploy(settings)["record"]


def run_cli(
    settings: Settings,
    *args: str,
    module: str = "bountytree",
    input: bytes | None = None,
    env: dict | None = None,
) -> subprocess.CompletedProcess:
    """Runs a command line as a user would, in a child process, pointed at the test chain."""
    environment = {
        **os.environ,
        "BOUNTYTREE_RPC": settings.rpc,
        "BOUNTYTREE_STORE": settings.store,
        "BOUNTYTREE_HOME": str(settings.home),
        "BOUNTYTREE_DEPLOYMENTS": str(settings.deployments),
        **(env or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        input=input,
        env=environment,
        timeout=600,
    )


@pytest.fixture(scope="session")
def files(session_dir) -> dict[str, Path]:
    """Digits cut for a market: validation/test/public CSVs and three owners' non-IID shares."""
    from demo.sample_data import market_files

    return market_files(session_dir / "data")


def validator_process(
    settings: Settings,
    task_id: int,
    validation: Path,
    address: str,
    *args: str,
    hostile: tuple[str, ...] | None = None,
) -> subprocess.Popen:
    """The sponsor's validator (`python -m oracle validator`) for one task, listening at
    `address`, as a process of its own (its output piped); with `hostile`, the arguments of
    tests/oracle/hostile_validator.py, which runs the same code with one deviation."""
    script = (
        [str(ROOT / "tests" / "oracle" / "hostile_validator.py"), *hostile]
        if hostile is not None
        else ["-m", "oracle"]
    )
    return subprocess.Popen(
        [sys.executable, *script, "validator", "--task", str(task_id),
         "--validation", str(validation), "--address", address, *args],
        env={**os.environ, **settings.to_env(), "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip


def custody_terms(settings: Settings, task_id: int) -> str:
    """The terms a custody party reviews before it accepts, as `custody show` prints them."""
    shown = cli_ok(settings, "custody", "show", "--task", str(task_id))
    return shown.split("terms", 1)[1].split()[0]


def cli_ok(
    settings: Settings, *args: str, module: str = "bountytree", env: dict | None = None
) -> str:
    """Runs a command that must succeed; returns its stdout."""
    proc = run_cli(settings, *args, module=module, env=env)
    assert proc.returncode == 0, (
        f"{module} {' '.join(args)} failed:\n{proc.stdout.decode()}\n{proc.stderr.decode()}"
    )
    return proc.stdout.decode()


def cli_error(
    settings: Settings, *args: str, module: str = "bountytree", env: dict | None = None
) -> str:
    """Runs a command that must fail as a user mistake: exit 2 and one line on stderr, no traceback."""
    proc = run_cli(settings, *args, module=module, env=env)
    err = proc.stderr.decode()
    lines = [line for line in err.splitlines() if line.strip()]
    assert proc.returncode == 2, f"expected exit 2, got {proc.returncode}:\n{err}"
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def market_for(settings: Settings, account: int = 0):
    from bountytree.chain.client import ganache_account
    from bountytree.market.actions import open_market

    return open_market(settings, ganache_account(account))


def advance_time(settings: Settings, seconds: int) -> None:
    """Moves the chain's clock on and mines a block (test only; Ganache, anvil and Hardhat all
    take these two calls)."""
    from bountytree.chain.client import connect

    w3 = connect(settings.rpc)
    for method, params in (("evm_increaseTime", [seconds]), ("evm_mine", [])):
        reply = w3.provider.make_request(method, params)
        assert "error" not in reply, (method, reply)


def new_task(
    settings: Settings,
    validation: Path,
    name: str,
    *,
    bounty: str = "1",
    target: str = "0.99",
    deadline: str = "2h",
    stake: str = "0.01",
) -> int:
    """Posts a bounty with `bountytree task create` (the sponsor is account 0); returns its id."""
    return created_task_id(
        cli_ok(
            settings,
            "task",
            "create",
            "--validation",
            str(validation),
            "--name",
            name,
            "--bounty",
            bounty,
            "--target",
            target,
            "--deadline",
            deadline,
            "--stake",
            stake,
        )
    )


def created_task_id(stdout: str) -> int:
    return int(stdout.split("task ", 1)[1].split()[0])


def node_id_of(stdout: str) -> int:
    return int(stdout.split("node ", 1)[1].split()[0])


def variant(spec, seed: int, scale: float = 0.05) -> bytes:
    """The spec's initial weights moved by seeded noise: a distinct node that is no copy of any
    other (each variant is as far from its siblings as from the initialisation, times √2)."""
    import torch

    from bountytree.models import weights

    state = weights.load(weights.initial_weights(spec), spec)
    g = torch.Generator().manual_seed(seed)
    moved = {
        k: (v + scale * torch.randn(v.shape, generator=g) if v.is_floating_point() else v)
        for k, v in state.items()
    }
    from safetensors.torch import save

    return save(moved)


def nudged(state, base, scale: float, seed: int):
    """`state` plus seeded noise whose norm is `scale` × ‖state − base‖, tensor by tensor: a copy
    of `state` dressed up as a node of its own."""
    import torch

    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, v in state.items():
        if not v.is_floating_point():
            out[k] = v
            continue
        noise = torch.randn(v.shape, generator=g)
        out[k] = v + scale * float((v - base[k]).norm()) * noise / float(noise.norm())
    return out


def shown(markdown_text: str) -> str:
    """What a person reads of Markdown source whose text was escaped (`bountytree.text.markdown`):
    the backslashes gone."""
    import re

    return re.sub(r"\\(.)", r"\1", markdown_text)
