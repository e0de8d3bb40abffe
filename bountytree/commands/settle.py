"""`bountytree finalize --task TASK_ID` (anyone, once the target or the deadline is reached; it
pays what nodes off the winning path hold too; the task's scorer may add `--leaving N`), `bountytree claim --task TASK_ID` (anyone: pays
what a finalize left unclaimed),
`bountytree reveal --task TASK_ID` (finish one's commitments a client left unrevealed),
`bountytree reclaim --task TASK_ID` (the stakes of one's work a finalized task never scored:
a commitment never revealed gets its stake back, not its fee) and `bountytree withdraw` (pull
what was credited to the account)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse

    from bountytree.commands import Subparsers
    from bountytree.config import Settings


def register(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    for name, run, text in (
        ("finalize", run_finalize, "end a task and credit the winning path"),
        (
            "claim",
            run_claim,
            "pay what nodes off a finalized task's winning path hold: raises, compute weights",
        ),
        (
            "reveal",
            run_reveal,
            "reveal your commitments to an open task that a client stopped before revealing",
        ),
        (
            "reclaim",
            run_reclaim,
            "take back the stakes of your work a finalized task never scored",
        ),
    ):
        p = sub.add_parser(name, parents=[common], help=text)
        p.add_argument("--task", type=int, required=True)
        if name == "finalize":
            p.add_argument(
                "--leaving",
                type=int,
                metavar="N",
                help="the task's scorer only: finalize leaving exactly N nodes unscored (the "
                "contract refuses if another count is pending now, so none revealed since is "
                "cut off)",
            )
        p.set_defaults(run=run)
    w = sub.add_parser(
        "withdraw", parents=[common], help="withdraw every payout credited to the account"
    )
    w.set_defaults(run=run_withdraw)


def run_finalize(args: argparse.Namespace, settings: Settings) -> int:
    from bountytree.market.actions import open_market
    from bountytree.market.render import eth, payout_lines

    out = open_market(settings).finalize(args.task, leaving=args.leaving)
    winner = (
        f"winner node {out.winner} at {out.accuracy_bps / 100:.2f}%"
        if out.winner
        else "no scored node"
    )
    print(f"task {args.task} finalized: {winner}, pool {eth(out.pool)}  {out.sent}")
    print("\n".join(payout_lines(out.payouts)))
    return 0


def run_claim(args: argparse.Namespace, settings: Settings) -> int:
    from bountytree.errors import UserError
    from bountytree.market.actions import open_market
    from bountytree.market.render import payout_lines

    market = open_market(settings)
    task = market.task(args.task, with_info=False)
    if not task.finalized:
        raise UserError(
            f"task {args.task} is not finalized: what lies off its path is paid once it is"
        )
    paid = market.claim_off_path(args.task)
    print("\n".join(payout_lines(paid)) if paid else f"task {args.task}: nothing left to claim")
    return 0


def run_reclaim(args: argparse.Namespace, settings: Settings) -> int:
    from bountytree.market.actions import open_market
    from bountytree.market.render import eth

    got = open_market(settings).reclaim(args.task)
    for r in got:
        print(f"reclaimed {eth(r.amount)} for {r.what}  {r.sent}")
    total = sum(r.amount for r in got)
    print(
        f"task {args.task}: {eth(total)} credited back; `bountytree withdraw` pulls it"
        if got
        else f"task {args.task}: nothing of yours to reclaim"
    )
    return 0


def run_reveal(args: argparse.Namespace, settings: Settings) -> int:
    from bountytree.market.actions import open_market

    lines = open_market(settings).reveal_saved(args.task)
    print("\n".join(lines) if lines else f"task {args.task}: no commitment of yours to reveal")
    return 0


def run_withdraw(args: argparse.Namespace, settings: Settings) -> int:
    from bountytree.market.actions import open_market
    from bountytree.market.render import eth

    market = open_market(settings)
    out = market.withdraw()
    print(f"withdrew {eth(out.amount)} to {market.chain.address}  {out.sent}")
    return 0
