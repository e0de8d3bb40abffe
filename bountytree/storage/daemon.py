"""An IPFS daemon on this machine: js-ipfs from node_modules, offline, its RPC API on 127.0.0.1.

`bountytree up --store ipfs` keeps one whose repo lives under `.bountytree/ipfs` (a second
`up` reuses the repo, or the daemon already running on it); the tests start a fresh one per
session in a temporary directory. js-ipfs speaks kubo's RPC API and adds with kubo's defaults,
so a file gets the CID the embedded store gives it. It runs offline (no swarm, bootstrap,
discovery, gateway or gRPC port): it serves this machine's participants, over an API that has
no authentication, hence 127.0.0.1 only. The daemon gets a minimal environment, never the
user's (which may hold a key).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bountytree.config import ROOT
from bountytree.errors import UserError
from bountytree.processes import free_port, stop
from bountytree.storage.store import StoreUnavailable

DEFAULT_PORT = 5001  # kubo's, taken when a new repo is made and the port is free
_LOCKED = "Lock already being held"  # js-ipfs, for up to ~10 s after a daemon was killed


@dataclass(frozen=True)
class IpfsDaemon:
    url: str  # its RPC API, e.g. http://127.0.0.1:5001
    repo: Path
    proc: subprocess.Popen[bytes] | None  # None: it was already running; not ours to stop


def jsipfs_command() -> str:
    local = ROOT / "node_modules" / ".bin" / "jsipfs"
    if local.exists():
        return str(local)
    found = shutil.which("jsipfs")
    if not found:
        raise UserError("jsipfs not found: run `make setup` (npm ci installs js-ipfs)")
    return found


def _env(repo: Path) -> dict[str, str]:
    kept = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    return {**kept, "IPFS_PATH": str(repo), "NO_UPDATE_NOTIFIER": "1"}


def _port_is_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def init_repo(repo: Path, port: int) -> None:
    """A new repo, no files in it, its API on 127.0.0.1:`port` and every network part off."""
    config = {
        "Addresses": {
            "API": f"/ip4/127.0.0.1/tcp/{port}",
            "Gateway": "",
            "RPC": "",
            "Swarm": [],
            "Delegates": [],
        },
        "Bootstrap": [],
        "Discovery": {"MDNS": {"Enabled": False}, "webRTCStar": {"Enabled": False}},
    }
    repo.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".json", dir=repo.parent, delete=False) as f:
        json.dump(config, f)
    try:
        done = subprocess.run(
            [jsipfs_command(), "init", "--emptyRepo", "--defaultConfig", f.name],
            env=_env(repo),
            capture_output=True,
            timeout=120,
        )
    finally:
        os.unlink(f.name)
    if done.returncode != 0 or not (repo / "config").exists():
        last = (done.stderr or done.stdout).decode(errors="replace").strip().splitlines()
        raise UserError(f"jsipfs init {repo} failed: {last[-1] if last else done.returncode}")
    repo.chmod(0o700)  # the config holds the node's identity key


def api_url(repo: Path) -> str:
    """The RPC URL a repo's config names."""
    address = json.loads((repo / "config").read_text())["Addresses"]["API"]
    parts = address.strip("/").split("/")  # ip4 127.0.0.1 tcp PORT
    return f"http://{parts[1]}:{parts[3]}"


def _answers(url: str) -> bool:
    from bountytree.storage.kubo import KuboStore

    try:
        KuboStore(url, timeout=2.0).version()
    except StoreUnavailable:
        return False
    return True


def start(repo: Path, log_path: Path, port: int | None = None, timeout: float = 60.0) -> IpfsDaemon:
    """Starts a daemon on `repo` (made first if new, its API on `port`, else 5001 if free, else
    any free port); a daemon already answering on the repo's API is reused, not restarted."""
    if (repo / "config").exists():
        url = api_url(repo)
        if (repo / "api").exists() and _answers(url):  # js-ipfs writes `api` while it runs
            return IpfsDaemon(url, repo, None)
    else:
        if port is None:
            port = DEFAULT_PORT if _port_is_free(DEFAULT_PORT) else free_port()
        init_repo(repo, port)
        url = api_url(repo)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    while True:
        offset = log_path.stat().st_size if log_path.exists() else 0
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                [jsipfs_command(), "daemon", "--offline"],
                env=_env(repo),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        while proc.poll() is None and time.monotonic() < deadline:
            if _answers(url):
                return IpfsDaemon(url, repo, proc)
            time.sleep(0.2)
        if proc.poll() is None:
            stop(proc)
            raise UserError(f"the IPFS daemon did not answer at {url} within {timeout:.0f} s")
        said = log_path.read_bytes()[offset:].decode(errors="replace")
        if _LOCKED in said and time.monotonic() < deadline:
            time.sleep(1)  # the lock of a daemon that was killed goes stale after ~10 s
            continue
        last = [line for line in said.splitlines() if line.strip()]
        raise UserError(
            f"the IPFS daemon on {repo} exited (status {proc.returncode}): "
            f"{last[-1] if last else 'no output'} (log: {log_path})"
        )


def stop_daemon(daemon: IpfsDaemon) -> None:
    """Stops the daemon if this process started it (SIGTERM, then SIGKILL after 10 s)."""
    if daemon.proc is not None:
        stop(daemon.proc)


__all__ = ["IpfsDaemon", "api_url", "init_repo", "jsipfs_command", "start", "stop_daemon"]
