"""`bountytree up` on a chain that is not a local development chain refuses before it deploys or
starts an oracle with a public development key; `--chain-only` starts no role."""

from __future__ import annotations

import json

from bountytree.chain.local import start_chain
from bountytree.processes import free_port
from tests.conftest import run_cli


def _env(tmp_path, rpc: str) -> dict[str, str]:
    return {
        "BOUNTYTREE_RPC": rpc,
        "BOUNTYTREE_HOME": str(tmp_path),
        "BOUNTYTREE_DEPLOYMENTS": str(tmp_path / "deployments"),
        "BOUNTYTREE_STORE": str(tmp_path / "store"),
    }


def test_up_refuses_a_chain_that_is_not_local_before_anything(settings, tmp_path):
    public = start_chain("ganache", free_port(), chain_id=1)  # plays a public chain here
    try:
        before = _nonce(public.rpc)
        up = run_cli(settings, "up", "--no-app", "--exit", env=_env(tmp_path, public.rpc))
        err = up.stderr.decode()
        assert up.returncode != 0 and "chain id 1, not a local development chain" in err, err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1
        assert not (tmp_path / "deployments").exists()  # nothing deployed
        assert _nonce(public.rpc) == before  # nothing sent from dev:0
        assert not (tmp_path / "logs" / "oracle.log").exists()  # no oracle started
    finally:
        public.stop()


def test_up_chain_only_starts_no_role(settings, tmp_path):
    env = _env(tmp_path, f"http://127.0.0.1:{free_port()}")
    up = run_cli(settings, "up", "--chain-only", "--exit", env=env)
    out = up.stdout.decode()
    assert up.returncode == 0, out + up.stderr.decode()
    assert "contracts  deployed" in out and "oracle" not in out and "app " not in out
    assert json.loads(next((tmp_path / "deployments").glob("*.json")).read_text())["BountyTree"]
    assert not (tmp_path / "logs" / "oracle.log").exists()


def _nonce(rpc: str) -> int:
    from bountytree.chain.client import connect, ganache_account

    return int(connect(rpc).eth.get_transaction_count(ganache_account(0).address))


PARENT = """
import subprocess, sys, time
from bountytree.processes import die_with_parent
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"],
                         preexec_fn=die_with_parent())
print(child.pid, flush=True)
time.sleep(120)
"""


def test_a_child_started_with_die_with_parent_ends_when_its_parent_is_killed():
    """What the validator's sessions, the oracle's parties and `up`'s roles are started with: a
    parent killed outright (SIGKILL, no cleanup) leaves no child holding a port."""
    import os
    import signal
    import subprocess
    import sys
    import time

    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(child):
        time.sleep(0.05)
    assert not _alive(child)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"  # a zombie has ended
    except FileNotFoundError:
        return False
