"""`python -m trainer --task TASK_ID --data FILE [--parent NODE_ID|best] [--dataset DATASET_ID]`"""

from __future__ import annotations

import argparse
import sys

from bountytree.cli import common_options, run
from bountytree.market.actions import open_market
from bountytree.market.render import pct

from .client import Trainer


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m trainer",
        parents=[common_options()],
        description="train a node of a task on local data and submit it",
    )
    p.add_argument("--task", type=int, required=True)
    p.add_argument("--data", help="private data file (CSV or .npz); it never leaves this machine")
    p.add_argument(
        "--parent", default="best", help="node to build on (default: the task's best node)"
    )
    p.add_argument(
        "--dataset", type=int, default=0, help="train on a dataset published to the task instead"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=main_run)
    return p


def main_run(args, settings) -> int:
    from tqdm import tqdm

    trainer = Trainer(open_market(settings))
    bar = None

    def progress(step: int, total: int, loss: float) -> None:
        nonlocal bar
        if args.quiet:
            return
        if bar is None:
            bar = tqdm(total=total, desc="training", unit="step", file=sys.stderr, leave=False)
        bar.update(1)
        if step % 20 == 0 or step == total:
            bar.set_postfix(loss=f"{loss:.4f}")

    try:
        sub = trainer.run(args.task, args.data, args.parent, args.dataset, progress)
    finally:
        if bar is not None:
            bar.close()
    t = sub.timings
    print(
        f"node {sub.node_id} submitted on task {sub.task_id} (parent {sub.parent_id}), gas {sub.gas}"
    )
    print(
        f"  weights {sub.weights_cid}  rows {sub.rows}  training {sub.ops:,} ops (paid only when replayed on "
        "published data)"
    )
    print(
        f"  local holdout accuracy {pct(round(sub.holdout_accuracy * 10000))} "
        f"(parent {pct(round(sub.parent_holdout_accuracy * 10000))})"
    )
    print(
        f"  time: download {t['download']:.2f}s  train {t['train']:.2f}s  hash {t['hash']:.2f}s  "
        f"chain (commit, upload, reveal) {t['chain']:.2f}s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(run(build_parser()))
