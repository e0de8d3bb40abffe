"""`bountytree dataset publish --task TASK_ID --data FILE`: public data anyone may train on."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse

    from bountytree.commands import Subparsers
    from bountytree.config import Settings


def register(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("dataset", parents=[common], help="publish a public dataset to a task")
    verbs = p.add_subparsers(dest="verb", required=True)
    pub = verbs.add_parser(
        "publish", parents=[common], help="upload a dataset and record it on the task"
    )
    pub.add_argument("--task", type=int, required=True)
    pub.add_argument("--data", required=True, help="CSV with a label column, or .npz with X and y")
    pub.set_defaults(run=run_publish)


def run_publish(args: argparse.Namespace, settings: Settings) -> int:
    from bountytree.market.actions import open_market

    out = open_market(settings).publish_dataset(args.task, args.data)
    print(
        f"dataset {out.dataset_id} published on task {args.task}: {out.rows} rows, {out.cid}  {out.sent}"
    )
    return 0
