"""`bountytree ipfs add|cat|pin|pins` as a user runs them, on the embedded store and on a real
IPFS daemon: results on stdout and nothing on stderr; each kind of failure is one line."""

from __future__ import annotations

import os

import pytest
import store_damage as damage
from conftest import cli_error, run_cli

from bountytree.processes import free_port
from bountytree.storage import daemon as ipfsd
from bountytree.storage.cid import digest_from_cid
from bountytree.storage.embedded import EmbeddedStore
from bountytree.storage.kubo import KuboStore
from bountytree.storage.store import StoreUnavailable, add_bytes

HELLO = "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"
ABSENT = "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG"


@pytest.fixture(params=["embedded", "daemon"])
def env(request, settings) -> dict[str, str]:
    if request.param == "embedded":
        return {"BOUNTYTREE_STORE": settings.store}
    return {"BOUNTYTREE_STORE": request.getfixturevalue("ipfs_daemon").url}


def test_add_cat_pin_pins(settings, env, tmp_path):
    path = tmp_path / "hello.txt"
    path.write_bytes(b"hello world\n")
    added = run_cli(settings, "ipfs", "add", str(path), env=env)
    assert added.returncode == 0 and added.stderr == b"", added.stderr  # no warning either
    assert added.stdout.decode().strip() == HELLO
    cat = run_cli(settings, "ipfs", "cat", HELLO, env=env)
    assert cat.returncode == 0 and cat.stdout == b"hello world\n" and cat.stderr == b""
    pinned = run_cli(settings, "ipfs", "pin", HELLO, env=env)
    assert pinned.returncode == 0 and pinned.stdout.decode().strip() == f"pinned {HELLO}"
    pins = run_cli(settings, "ipfs", "pins", env=env)
    assert pins.returncode == 0 and HELLO in pins.stdout.decode().split()


def test_user_mistakes_and_missing_files_are_one_line(settings, env, tmp_path):
    for args, message in [
        (("ipfs", "add", str(tmp_path / "missing")), "no such file"),
        (("ipfs", "cat", "not-a-cid"), "not a CIDv0"),
        (("ipfs", "cat", ABSENT, "--timeout", "1"), f"{ABSENT} is not in the store"),
        (("ipfs", "pin", ABSENT, "--timeout", "1"), f"{ABSENT} is not in the store"),
    ]:
        assert message in cli_error(settings, *args, env=env)


def test_corrupted_block_is_one_line(settings, env, request, tmp_path):
    data = os.urandom(300_000)  # two leaves
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    added = run_cli(settings, "ipfs", "add", str(path), env=env)
    cid = added.stdout.decode().strip()
    if "embedded" in request.node.callspec.id:
        damage.corrupt(EmbeddedStore(settings.store), digest_from_cid(cid))
    else:
        damage.corrupt(request.getfixturevalue("ipfs_daemon"), digest_from_cid(cid))
    line = cli_error(settings, "ipfs", "cat", cid, env=env)
    assert f"{cid} is corrupted" in line


def test_unreachable_node_is_one_line_for_every_verb(settings, tmp_path):
    path = tmp_path / "hello.txt"
    path.write_bytes(b"hello world\n")
    down = {"BOUNTYTREE_STORE": f"http://127.0.0.1:{free_port()}"}
    for args in (("add", str(path)), ("cat", HELLO), ("pin", HELLO), ("pins",)):
        line = cli_error(settings, "ipfs", *args, env=down)
        assert "cannot reach the IPFS node" in line and "is its daemon running?" in line


def test_up_with_store_ipfs_runs_a_daemon_in_the_home_folder(settings, tmp_path):
    env = {
        "BOUNTYTREE_RPC": f"http://127.0.0.1:{free_port()}",  # up's own chain, not the session's
        "BOUNTYTREE_HOME": str(tmp_path),
        "BOUNTYTREE_DEPLOYMENTS": str(tmp_path / "deployments"),
        "BOUNTYTREE_STORE": "ipfs",
    }
    up = run_cli(settings, "up", "--no-app", "--exit", env=env)
    out = up.stdout.decode()
    assert up.returncode == 0, out + up.stderr.decode()
    url = out.split("store      IPFS daemon at ", 1)[1].split(",")[0]
    assert url.startswith("http://127.0.0.1:") and (tmp_path / "ipfs" / "config").exists()
    with pytest.raises(StoreUnavailable):  # stopped with everything else
        KuboStore(url, timeout=1).pins()
    line = cli_error(settings, "ipfs", "pins", env={"BOUNTYTREE_STORE": "ipfs"})
    assert "bountytree up" in line


def test_the_daemon_keeps_its_files_and_is_reused_while_it_runs(tmp_path):
    repo, log = tmp_path / "ipfs", tmp_path / "ipfs.log"
    first = ipfsd.start(repo, log, port=free_port())
    try:
        cid = add_bytes(KuboStore(first.url), b"kept " + os.urandom(8))
        again = ipfsd.start(repo, log)
        assert again.proc is None and again.url == first.url  # running: reused, not restarted
    finally:
        ipfsd.stop_daemon(first)
    second = ipfsd.start(repo, log)
    try:
        assert second.url == first.url and KuboStore(second.url).has(cid)
    finally:
        ipfsd.stop_daemon(second)
