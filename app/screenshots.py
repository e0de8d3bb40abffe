"""`make screenshots`: runs the demo market with the app, then saves the task page (tree drawn)
and its payout breakdown from headless Chromium into docs/."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from bountytree.config import ROOT
from bountytree.processes import free_port

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=40000",
    "--hide-scrollbars",
]


def shoot(url: str, target: Path, size: str) -> None:
    # A load may catch the page before its script has finished (a grey skeleton, a small PNG):
    # load again, as a user would reload.
    for _ in range(8):
        profile = tempfile.mkdtemp(prefix="bountytree-chromium-")
        subprocess.run(
            [
                shutil.which("chromium") or "chromium",
                *FLAGS,
                f"--window-size={size}",
                f"--user-data-dir={profile}",
                f"--screenshot={target}",
                url,
            ],
            capture_output=True,
            timeout=180,
        )
        if target.exists() and target.stat().st_size > 40_000:
            break
    print(f"wrote {target.relative_to(ROOT)} ({target.stat().st_size // 1024} KiB)")


def main() -> None:
    home = tempfile.mkdtemp(prefix="bountytree-shots-")
    port = free_port()
    env = {
        **os.environ,
        "BOUNTYTREE_HOME": home,
        "BOUNTYTREE_RPC": f"http://127.0.0.1:{free_port()}",
        "BOUNTYTREE_DEPLOYMENTS": os.path.join(home, "deployments"),
        "BOUNTYTREE_STORE": os.path.join(home, "store"),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "bountytree", "up", "--demo", "--app-port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None  # stdout=PIPE
    try:
        for line in proc.stdout:
            if line.strip() == "demo complete":
                break
        else:
            raise SystemExit("the demo did not complete")
        docs = ROOT / "docs"
        docs.mkdir(exist_ok=True)
        url = f"http://localhost:{port}/Task?task=1"
        shoot(url, docs / "task-tree.png", "1400,1250")
        shoot(url, docs / "task-payouts.png", "1400,2900")
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=60)


if __name__ == "__main__":
    main()
