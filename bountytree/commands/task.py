"""`bountytree task create` (sponsor) and `bountytree task show TASK_ID`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from bountytree.errors import UserError

if TYPE_CHECKING:
    import argparse

    from bountytree.commands import Subparsers
    from bountytree.config import Settings
    from bountytree.market.custody import CustodyTerms


def register(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("task", parents=[common], help="post a bounty, or show a task's tree")
    verbs = p.add_subparsers(dest="verb", required=True)
    c = verbs.add_parser(
        "create", parents=[common], help="post a bounty (the validation file stays here)"
    )
    c.add_argument("--validation", required=True, help="the private validation file (CSV or .npz)")
    c.add_argument("--name", required=True)
    c.add_argument("--description", default="")
    c.add_argument("--bounty", required=True, help="ETH escrowed for the winning path")
    c.add_argument("--target", required=True, type=float, help="target accuracy, 0..1 (e.g. 0.90)")
    c.add_argument("--deadline", required=True, help="from now: 90s, 30m, 2h, 7d")
    c.add_argument("--label-column", default="label")
    c.add_argument(
        "--split",
        help="train/validation/test percentages of the file, e.g. 60/20/20: publish the "
        "train part, commit to the validation part, keep the test part",
    )
    c.add_argument("--stake", default="0", help="ETH each submission escrows (default 0)")
    c.add_argument(
        "--scoring-fee",
        default="0",
        help="ETH each proposal and commitment pays into the pool once its node is scored or "
        "rejected; burned if never (an unrevealed commitment gets it back) (default 0)",
    )
    c.add_argument(
        "--max-submissions",
        default="0",
        help="proposals + commitments allowed per account (default 0: no cap)",
    )
    c.add_argument(
        "--audit-bond",
        default="0",
        help="ETH escrowed apart from the bounty, returned only if the validation file is "
        "published within 7 days of finalize (`bountytree audit publish`); default 0",
    )
    c.add_argument(
        "--margin",
        type=float,
        default=0.01,
        help="the leaderboard's margin, 0..1 (default 0.01): a score is recorded only when it "
        "beats the best by this much, rounded down to it",
    )
    c.add_argument(
        "--shares", default="60/20/20", help="payout split data/compute/expertise in percent"
    )
    c.add_argument(
        "--private-models",
        action="store_true",
        help="no trained node's weights are ever public: custodians hold them as secret shares "
        "(docs/private-models.md). With --custodians, --dealer, --key-file, --custody-stake and "
        "--custody-fee, registers the custody too; without them, `custody register` does later. The task takes "
        "nothing until its custody is ready and holds the validation rows",
    )
    c.add_argument("--custodians", help="private models: the two custodians' addresses, A,B")
    c.add_argument("--dealer", help="private models: the dealer's address")
    c.add_argument("--key-file", help="private models: your key file (custody keygen)")
    c.add_argument("--custody-stake", help="private models: ETH each of the three stakes")
    c.add_argument("--custody-fee", help="private models: ETH paid now to the three, in thirds")
    c.add_argument(
        "--custody-window", default="2d", help="private models: hand-over time (default 2d)"
    )
    c.set_defaults(run=run_create)
    s = verbs.add_parser("show", parents=[common], help="the model tree with scores, as text")
    s.add_argument("task_id", type=int)
    s.set_defaults(run=run_show)


def _shares(text: str) -> tuple[int, int, int]:
    try:
        parts = [round(float(p) * 100) for p in text.split("/")]
    except ValueError:
        parts = []
    if len(parts) != 3 or sum(parts) != 10_000 or min(parts) < 0:
        raise UserError(
            f"--shares: {text!r} is not data/compute/expertise percentages summing to 100"
        )
    return tuple(parts)  # type: ignore[return-value]


def _count(text: str, flag: str) -> int:
    if not text.isdigit() or int(text) > 0xFFFF:
        raise UserError(f"{flag}: {text!r} is not a whole number in 0..65535")
    return int(text)


def _private_terms(args: argparse.Namespace) -> CustodyTerms | None:
    """The custody terms of `--private-models`, checked before anything is sent: all of them,
    or none (`custody register` names them later)."""
    from bountytree.commands.custody import custodian_pair
    from bountytree.market.custody import custody_terms
    from bountytree.units import parse_duration, parse_eth

    needed = ("custodians", "dealer", "key_file", "custody_stake", "custody_fee")
    if not args.private_models:
        given = [f"--{n.replace('_', '-')}" for n in needed if getattr(args, n)]
        if given:
            raise UserError(f"{', '.join(given)}: only with --private-models")
        return None
    missing = [f"--{n.replace('_', '-')}" for n in needed if not getattr(args, n)]
    if len(missing) == len(needed):
        return None
    if missing:
        raise UserError(
            f"--private-models needs {', '.join(missing)} (or none of the custody terms)"
        )
    return custody_terms(
        custodian_pair(args.custodians),
        args.dealer,
        Path(args.key_file),
        stake=parse_eth(args.custody_stake, "--custody-stake"),
        fee=parse_eth(args.custody_fee, "--custody-fee"),
        window_s=parse_duration(args.custody_window),
    )


def run_create(args: argparse.Namespace, settings: Settings) -> int:
    from bountytree.market.actions import open_market
    from bountytree.market.render import eth
    from bountytree.units import parse_duration, parse_eth, parse_split

    if not 0 < args.target <= 1:
        raise UserError(f"--target: {args.target} is not in (0, 1]")
    terms = _private_terms(args)
    fee = parse_eth(args.scoring_fee, "--scoring-fee")
    cap = _count(args.max_submissions, "--max-submissions")
    bond = parse_eth(args.audit_bond, "--audit-bond")
    market = open_market(settings)
    if terms is not None:
        from bountytree.market.custody import Custody

        custody = Custody(market)  # refuses a deployment without PrivateCustody, before posting
        custody.check(terms)
    out = market.create_task(
        args.validation,
        name=args.name,
        description=args.description,
        bounty=parse_eth(args.bounty, "--bounty"),
        target_bps=round(args.target * 10_000),
        deadline_s=parse_duration(args.deadline),
        shares_bps=_shares(args.shares),
        stake=parse_eth(args.stake, "--stake"),
        label_column=args.label_column,
        split=parse_split(args.split) if args.split else None,
        margin_bps=round(args.margin * 10_000),
        scoring_fee=fee,
        max_submissions=cap,
        audit_bond=bond,
        private_models=args.private_models,
    )
    info = out.info
    print(f"task {out.task_id} created  {out.sent}")
    print(
        f"  description {out.description_cid}  ({info.num_features} features, {info.num_classes} classes)"
    )
    print(f"  bounty {eth(parse_eth(args.bounty, '--bounty'))}  commitment sha256:{out.commitment}")
    print(f"  validation file kept for the validator at {out.validation} (never uploaded)")
    if fee or cap or bond:
        print(
            f"  scoring fee {eth(fee)} per submission  cap {cap or 'none'} per account  "
            f"audit bond {eth(bond)}"
        )
    if out.dataset:
        d = out.dataset
        print(
            f"  published the train part as dataset {d.dataset_id} ({d.rows} rows, {d.cid})  {d.sent}"
        )
    if out.test:
        print(f"  kept the test part at {out.test}")
    if terms is not None:
        try:
            made = custody.register(out.task_id, terms)
        except UserError as exc:
            raise UserError(
                f"task {out.task_id} was created private, its custody not registered ({exc}); it "
                f"takes nothing until then: retry with `bountytree custody register --task "
                f"{out.task_id} …`"
            ) from None
        print(
            f"  private models: custodians {', '.join(made.view.custodians)}, dealer "
            f"{made.view.dealer}; custody fee {eth(made.view.fee)}  {made.sent}"
        )
        print(
            "  the task takes work once the three accept (`bountytree custody accept`) and you "
            f"share the validation rows (`bountytree custody share-validation --task {out.task_id}`)"
        )
    elif args.private_models:
        print(
            f"  private models: the task takes nothing until you register its custody "
            f"(`bountytree custody register --task {out.task_id} …`), the three accept, and you "
            "share the validation rows (`bountytree custody share-validation`)"
        )
    return 0


def run_show(args: argparse.Namespace, settings: Settings) -> int:
    from bountytree.chain.addressbook import AddressBook
    from bountytree.market.actions import open_market
    from bountytree.market.render import show_task

    market = open_market(settings)
    # The address book's names, and dev:N for development accounts on a local chain.
    names = AddressBook(settings.home, market.chain.chain_id).names()
    print(show_task(market, args.task_id, names or None))
    return 0
