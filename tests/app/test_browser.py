"""The running app in a real headless Chromium: a task created from the command line appears on
the home page, and the task page renders its tree (saved as a screenshot)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request

import pytest

from bountytree.config import ROOT
from bountytree.localchain import free_port, stop, wait_for_port
from tests.conftest import cli_ok, new_task

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1100",
    "--virtual-time-budget=30000",
]


def chromium(tmp_path, url: str, *args: str) -> subprocess.CompletedProcess:
    binary = shutil.which("chromium")
    assert binary, "Debian's chromium is missing: `make setup` installs it"
    profile = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"
    return subprocess.run(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args, url],
        capture_output=True,
        timeout=180,
    )


@pytest.fixture
def app_url(settings, deployed):
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
            str(ROOT / "app" / "Home.py"),
            "--server.headless",
            "true",
            "--server.port",
            str(port),
            "--browser.gatherUsageStats",
            "false",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, proc, timeout=60)
        urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=30).read()
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


def test_task_from_the_cli_appears_in_the_browser(settings, files, app_url, tmp_path):
    task_id = new_task(
        settings, files["validation"], "seen in chromium", bounty="2", target="0.9", stake="0"
    )
    cli_ok(settings, "propose", "--task", str(task_id), "--spec", "examples/cnn.json")
    # The server's first run imports the whole stack and a loaded machine runs it slowly; a page
    # caught before its script ends is loaded again, as a user pressing reload would.
    for _ in range(10):
        dom = chromium(tmp_path, app_url + "/", "--dump-dom").stdout.decode()
        if f"#{task_id} seen in chromium" in dom:
            break
        time.sleep(2)
    assert f"#{task_id} seen in chromium" in dom, dom[-2000:]
    shot = tmp_path / "task.png"
    for _ in range(10):  # a grey skeleton of a page still loading is a small PNG
        chromium(tmp_path, f"{app_url}/Task?task={task_id}", f"--screenshot={shot}")
        if shot.exists() and shot.stat().st_size > 25_000:
            break
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 25_000
