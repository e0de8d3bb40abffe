"""make bench-e2e: wall time of the scripted market (`bountytree up --demo`), and where it goes.

Runs the real thing (Ganache, contracts, the oracle process, two-party CrypTen) on a fresh
chain in a temporary home, without the app. Writes bench/e2e.md. Goal: under 5 minutes.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time

from bountytree.config import ROOT
from bountytree.processes import free_port


def main() -> None:
    home = tempfile.mkdtemp(prefix="bench-e2e-")
    env = {
        **os.environ,
        "BOUNTYTREE_HOME": home,
        "BOUNTYTREE_RPC": f"http://127.0.0.1:{free_port()}",
        "BOUNTYTREE_DEPLOYMENTS": os.path.join(home, "deployments"),
        "BOUNTYTREE_STORE": os.path.join(home, "store"),
    }
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "bountytree", "up", "--demo", "--exit", "--no-app"],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0 or "demo complete" not in proc.stdout:
        raise SystemExit(f"the demo failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    took = re.search(r"scripted market took (\d+) s \((.*)\)", proc.stdout)
    nodes = len(re.findall(r"#\d+ (?:architecture|trained)", proc.stdout))
    lines = [
        "# End-to-end benchmark (make bench-e2e)",
        "",
        "`bountytree up --demo --exit --no-app` on a fresh chain: Ganache, deploy, the oracle process, the "
        "scripted market on digits with two-party CrypTen scoring, finalize, withdrawals.",
        "",
        "| figure | value | goal |",
        "| --- | --- | --- |",
        f"| whole command (start chain, deploy, market, stop) | {wall:.0f} s | |",
        f"| scripted market | {took.group(1)} s | < 300 s |",
        f"| nodes in the final tree | {nodes} | |",
        "",
        "Where the scripted market's time goes: " + took.group(2) + ".",
    ]
    (ROOT / "bench" / "e2e.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
