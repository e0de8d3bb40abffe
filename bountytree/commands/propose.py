"""`bountytree propose --task TASK_ID --spec SPEC.json` (architect)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse

    from bountytree.commands import Subparsers
    from bountytree.config import Settings

from pathlib import Path

from bountytree.errors import UserError


def register(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "propose", parents=[common], help="propose a model architecture (bountytree/model@1 spec)"
    )
    p.add_argument("--task", type=int, required=True)
    p.add_argument("--spec", required=True, help="the model spec (JSON)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from bountytree.market.actions import open_market
    from bountytree.models.spec import load_spec

    path = Path(args.spec)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror})") from None
    spec = load_spec(raw, str(path))
    out = open_market(settings).propose(args.task, spec)
    print(f"node {out.node_id} proposed on task {args.task}  {out.sent}")
    print(
        f"  spec {out.spec_cid}  initial weights {out.weights_cid}  ({spec.num_params:,} parameters)"
    )
    return 0
