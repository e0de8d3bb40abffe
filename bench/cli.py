"""`make bench-cli`: how long the command line takes to start, for the commands a person types
most (help, `ipfs add` of one byte, `ipfs cat`), beside a bare `python -c pass` in the same run.
Goal: each at most 0.3 s. The commands import web3 and torch only when they need them
(bountytree/commands/__init__.py)."""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bountytree.config import ROOT

GOAL_S = 0.3
RUNS = 15


def _median_s(argv: list[str], env: dict[str, str] | None = None) -> float:
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True, env=env)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


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
        ]
    lines = [
        "# Command-line start-up",
        "",
        f"Median of {RUNS} runs each; goal: each command at most {GOAL_S} s.",
        "",
        "| command | seconds | × bare python | goal |",
        "| --- | ---: | ---: | --- |",
    ]
    base = rows[0][1]
    for name, seconds in rows:
        goal = "" if name.startswith("python") else ("met" if seconds <= GOAL_S else "not met")
        lines.append(f"| {name} | {seconds:.3f} | {seconds / base:.1f} | {goal} |")
    text = "\n".join(lines) + "\n"
    (ROOT / "bench" / "cli.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
