"""`make bench-cli`: how long the command line takes, for the commands a person types most
(help, `ipfs add` of one byte, `ipfs cat`, and `task show` of a task on a local chain), beside
a bare `python -c pass` in the same run. Goals: each at most 0.3 s, `task show` (which reads
the chain) at most 1 s. The commands import web3 and torch only when they need them
(bountytree/commands/__init__.py)."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bountytree.config import ROOT

GOAL_S = 0.3
CHAIN_GOAL_S = 1.0  # a command that reads the chain
RUNS = 15


def _median_s(argv: list[str], env: dict[str, str] | None = None) -> float:
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True, env=env)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _task_show_s(tmp: Path, cli: list[str]) -> float:
    """`task show` of a task with an architecture, on a fresh local chain (started here)."""
    from bountytree.chain.client import deploy, ganache_account
    from bountytree.chain.local import start_chain
    from bountytree.config import Settings
    from bountytree.market.actions import open_market
    from bountytree.models.spec import load_spec
    from bountytree.processes import free_port
    from demo.sample_data import market_files

    chain = start_chain("ganache", free_port())
    try:
        settings = Settings(
            rpc=chain.rpc,
            account="0",
            store=str(tmp / "chain-store"),
            home=tmp / "home",
            deployments=tmp / "deployments",
        )
        deploy(settings)
        files = market_files(tmp / "data")
        sponsor = open_market(settings, ganache_account(0))
        task_id = sponsor.create_task(
            files["validation"], name="bench", bounty=10**18, target_bps=9000, deadline_s=86400
        ).task_id
        spec = load_spec((ROOT / "examples" / "mlp.json").read_bytes())
        open_market(settings, ganache_account(1)).propose(task_id, spec)
        env = {**os.environ, **settings.to_env()}
        return _median_s([*cli, "task", "show", str(task_id)], env)
    finally:
        chain.stop()


def main() -> None:
    cli = [sys.executable, "-m", "bountytree"]
    with tempfile.TemporaryDirectory() as tmp:
        one = Path(tmp) / "one"
        one.write_bytes(b"x")
        store = ["--store", str(Path(tmp) / "store")]
        cid = subprocess.run(
            [*cli, *store, "ipfs", "add", str(one)], check=True, capture_output=True, text=True
        ).stdout.strip()
        rows = [
            ("python -c pass (baseline)", _median_s([sys.executable, "-c", "pass"])),
            ("bountytree --help", _median_s([*cli, "--help"])),
            ("bountytree ipfs add (1 byte)", _median_s([*cli, *store, "ipfs", "add", str(one)])),
            ("bountytree ipfs cat (1 byte)", _median_s([*cli, *store, "ipfs", "cat", cid])),
            ("bountytree task show (local chain)", _task_show_s(Path(tmp), cli)),
        ]
    lines = [
        "# Command-line start-up",
        "",
        f"Median of {RUNS} runs each; goal: each command at most {GOAL_S} s, a command that "
        f"reads the chain at most {CHAIN_GOAL_S} s.",
        "",
        "| command | seconds | × bare python | goal |",
        "| --- | ---: | ---: | --- |",
    ]
    base = rows[0][1]
    for name, seconds in rows:
        limit = CHAIN_GOAL_S if "task show" in name else GOAL_S
        goal = "" if name.startswith("python") else ("met" if seconds <= limit else "not met")
        lines.append(f"| {name} | {seconds:.3f} | {seconds / base:.1f} | {goal} |")
    text = "\n".join(lines) + "\n"
    (ROOT / "bench" / "cli.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
