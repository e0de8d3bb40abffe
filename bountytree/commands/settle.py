"""`bountytree finalize --task TASK_ID` (anyone, once the target or the deadline is reached) and
`bountytree withdraw` (pull what was credited to the account)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse

    from bountytree.commands import Subparsers
    from bountytree.config import Settings


def register(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    f = sub.add_parser("finalize", parents=[common], help="end a task and credit the winning path")
    f.add_argument("--task", type=int, required=True)
    f.set_defaults(run=run_finalize)
    w = sub.add_parser(
        "withdraw", parents=[common], help="withdraw every payout credited to the account"
    )
    w.set_defaults(run=run_withdraw)


def run_finalize(args: argparse.Namespace, settings: Settings) -> int:
    from bountytree.market.actions import open_market
    from bountytree.market.render import eth, payout_lines

    out = open_market(settings).finalize(args.task)
    winner = (
        f"winner node {out.winner} at {out.accuracy_bps / 100:.2f}%"
        if out.winner
        else "no scored node"
    )
    print(f"task {args.task} finalized: {winner}, pool {eth(out.pool)}  {out.sent}")
    print("\n".join(payout_lines(out.payouts)))
    return 0


def run_withdraw(args: argparse.Namespace, settings: Settings) -> int:
    from bountytree.market.actions import open_market
    from bountytree.market.render import eth

    market = open_market(settings)
    out = market.withdraw()
    print(f"withdrew {eth(out.amount)} to {market.chain.address}  {out.sent}")
    return 0
