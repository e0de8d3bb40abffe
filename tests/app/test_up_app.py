"""`bountytree up` serves the app as it should be served: from app/main.py, on 127.0.0.1 only,
and without the key variables of the environment it was started from (every session of a web
app shares its process)."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from bountytree.processes import free_port
from tests.app.test_browser import listening_addresses

SECRETS = {"BOUNTYTREE_PRIVATE_KEY": "0x" + "11" * 32, "BOUNTYTREE_KEYSTORE_PASSWORD": "hunter2"}


def _lines_until(proc: subprocess.Popen, last: str, timeout: float) -> list[str]:
    """`proc`'s output lines up to the one starting with `last` (read by a thread: a buffered
    pipe may hold lines that select() does not see)."""
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            seen.append(lines.get(timeout=1).rstrip())
        except queue.Empty:
            continue
        if seen[-1].startswith(last):
            return seen
    raise AssertionError(f"no {last!r} within {timeout:.0f} s: {seen}")


def _app_process(port: int) -> int:
    """The pid of the Streamlit server `up` started on `port`."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"streamlit" in argv and str(port).encode() in argv:
            return int(entry.name)
    raise AssertionError(f"no Streamlit server on port {port}")


def test_up_serves_the_app_without_keys(tmp_path):
    app_port = free_port()
    env = {
        **os.environ,
        "BOUNTYTREE_HOME": str(tmp_path),
        "BOUNTYTREE_RPC": f"http://127.0.0.1:{free_port()}",
        "BOUNTYTREE_DEPLOYMENTS": str(tmp_path / "deployments"),
        "BOUNTYTREE_STORE": str(tmp_path / "store"),
        "BOUNTYTREE_ACCOUNT": "0",
        **SECRETS,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "bountytree", "up", "--app-port", str(app_port)],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        lines = _lines_until(proc, "Ctrl-C stops everything", timeout=240)
        assert any(line.startswith("app") for line in lines), lines
        for _ in range(120):  # the server's first start imports the whole stack
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{app_port}/_stcore/health", timeout=5)
                break
            except OSError:
                time.sleep(1)
        assert listening_addresses(app_port) == {"0100007F"}, "127.0.0.1 only"
        pid = _app_process(app_port)
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        assert any(arg.endswith(b"app/main.py") for arg in argv), argv
        environ = dict(
            item.split(b"=", 1)
            for item in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            if b"=" in item
        )
        assert not {name.encode() for name in SECRETS} & set(environ), "no key in the app"
        assert environ[b"BOUNTYTREE_RPC"] == env["BOUNTYTREE_RPC"].encode()
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=60)
