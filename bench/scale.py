"""make bench-scale: how cost grows with the tree.

- gas of one more submission (commit + reveal) and of finalize, on tasks of 10, 100 and 1,000
  nodes (the contracts never loop over nodes, so these should stay flat);
- finalize gas for winning paths of depth 1 to MAX_DEPTH (linear in depth, bounded);
- the oracle's two-party session for 1, 10 and 100 pending nodes (MLP, 1,000 rows);
- the app's task page (tree graph, leaderboard, chart) rendered for a 1,000-node task.
Writes bench/scale.md.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

from bountytree.chain.client import deploy, ganache_account
from bountytree.chain.local import start_ganache
from bountytree.config import ROOT, Settings
from bountytree.market.actions import Market, Score, open_market
from bountytree.models.spec import parse_spec
from bountytree.processes import free_port, stop
from demo.sample_data import market_files

CID = "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"


def _task(sponsor: Market, files) -> int:
    return sponsor.create_task(
        files["validation"], name="scale", bounty=10**18, target_bps=10_000, deadline_s=86_400
    ).task_id


def _propose(m: Market, task_id: int) -> int:
    return m.submit(task_id, 0, CID).node_id


def _score(oracle: Market, task_id: int, ids: list[int], acc: int = 5000) -> None:
    for i in range(0, len(ids), 64):
        batch = ids[i : i + 64]
        oracle.record_scores(task_id, [Score(node_id, acc, 0, 0) for node_id in batch])


def chain_part(settings: Settings, lines: list[str]) -> None:
    files = market_files(settings.home / "data")
    sponsor = open_market(settings, ganache_account(1))
    oracle = open_market(settings, ganache_account(0))
    author = open_market(settings, ganache_account(2))
    lines += [
        "## Gas as the tree grows",
        "",
        "| nodes in the task | one more submission (commit + reveal) | finalize |",
        "| --- | --- | --- |",
    ]
    for size in (
        2,
        10,
        100,
        1000,
    ):  # 2: warm-up, not reported (first credits to fresh accounts cost more)
        task_id = _task(sponsor, files)
        ids = [_propose(author, task_id) for _ in range(size - 1)]
        _score(oracle, task_id, ids)
        sub = author.submit(task_id, ids[0], CID)
        _score(oracle, task_id, [sub.node_id], 10_000)
        fin = oracle.finalize(task_id).sent
        if size > 2:
            lines.append(f"| {size} | {sub.gas:,} | {fin.gas_used:,} |")
            print(lines[-1], flush=True)
    lines += [
        "",
        "## Finalize by depth of the winning path",
        "",
        "| depth | finalize gas | per level |",
        "| --- | --- | --- |",
    ]
    for depth in (1, 2, 4, 8, 16, 32):
        task_id = _task(sponsor, files)
        node = _propose(author, task_id)
        _score(oracle, task_id, [node], 100)
        for d in range(1, depth):
            node = author.submit(task_id, node, CID).node_id
            _score(oracle, task_id, [node], 100 + d * 200)
        # The target (100 %) is not reached: let the deadline pass.
        oracle.chain.w3.provider.make_request("evm_increaseTime", [86_401])
        oracle.chain.w3.provider.make_request("evm_mine", [])
        fin = oracle.finalize(task_id).sent
        lines.append(f"| {depth} | {fin.gas_used:,} | {fin.gas_used / depth:,.0f} |")
        print(lines[-1], flush=True)


def page_part(settings: Settings, lines: list[str]) -> None:
    """A 1,000-node task rendered by the app's task page (Streamlit AppTest, in-process)."""
    from streamlit.testing.v1 import AppTest

    files = market_files(settings.home / "data")
    sponsor = open_market(settings, ganache_account(1))
    author = open_market(settings, ganache_account(2))
    oracle = open_market(settings, ganache_account(0))
    task_id = _task(sponsor, files)
    ids = [_propose(author, task_id) for _ in range(1000)]
    _score(oracle, task_id, ids[:500])
    os.environ.update(
        {
            "BOUNTYTREE_RPC": settings.rpc,
            "BOUNTYTREE_STORE": settings.store,
            "BOUNTYTREE_HOME": str(settings.home),
            "BOUNTYTREE_DEPLOYMENTS": str(settings.deployments),
        }
    )
    times = []
    for _ in range(3):
        at = AppTest.from_file(str(ROOT / "app" / "pages" / "2_Task.py"), default_timeout=600)
        at.query_params["task"] = str(task_id)
        start = time.perf_counter()
        at.run()
        times.append(time.perf_counter() - start)
        assert not at.exception, at.exception
    lines += [
        "",
        "## The app's task page for a 1,000-node task",
        "",
        f"Server-side render (reading 1,000 nodes from the chain, the Graphviz tree, leaderboard and chart), "
        f"AppTest, best of 3: **{min(times):.2f} s** (runs: {', '.join(f'{t:.2f}' for t in times)} s).",
    ]
    print(lines[-1], flush=True)


def oracle_part(lines: list[str]) -> None:
    import numpy as np

    from bench.oracle import ROWS, _trained, session
    from bountytree.models.weights import to_bytes
    from demo.sample_data import digits

    ds = digits()
    X, y = ds.X[:ROWS], ds.y[:ROWS]
    job = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    np.savez(job / "rows.npz", X=X, y=y)
    spec = parse_spec(json.loads((ROOT / "examples" / "mlp.json").read_text()))
    weights = to_bytes(_trained(spec, X, y))
    lines += [
        "",
        "## The oracle's session by pending nodes (MLP, 1,000 rows)",
        "",
        "| pending nodes | session wall | per node |",
        "| --- | --- | --- |",
    ]
    for count in (1, 10, 100):
        wall, _ = session(job, spec, weights, count)
        lines.append(f"| {count} | {wall:.1f} s | {wall / count:.2f} s |")
        print(lines[-1], flush=True)


def main() -> None:
    lines = ["# Scale benchmark (make bench-scale)", ""]
    folder = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    port = free_port()
    chain = start_ganache(port)
    try:
        settings = Settings(
            rpc=f"http://127.0.0.1:{port}",
            account="0",
            store=str(folder / "store"),
            home=folder,
            deployments=folder / "deployments",
        )
        deploy(settings)
        chain_part(settings, lines)
        page_part(settings, lines)
    finally:
        stop(chain)
    oracle_part(lines)
    (ROOT / "bench" / "scale.md").write_text("\n".join(lines) + "\n")
    print("wrote bench/scale.md")


if __name__ == "__main__":
    main()
