"""`bountytree task create` (sponsor) and `bountytree task show TASK_ID`."""

from __future__ import annotations

from ..errors import UserError
from ..localchain import CHAIN_ID
from ..market import open_market, parse_duration, parse_eth, parse_split
from ..render import dev_names, eth, show_task


def register(sub, common) -> None:
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
        "--shares", default="60/20/20", help="payout split data/compute/expertise in percent"
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


def run_create(args, settings) -> int:
    if not 0 < args.target <= 1:
        raise UserError(f"--target: {args.target} is not in (0, 1]")
    market = open_market(settings)
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
    )
    info = out["info"]
    print(f"task {out['task_id']} created  {out['sent']}")
    print(
        f"  description {out['description_cid']}  ({info.num_features} features, {info.num_classes} classes)"
    )
    print(
        f"  bounty {eth(parse_eth(args.bounty, '--bounty'))}  commitment sha256:{out['commitment']}"
    )
    print(f"  validation file kept for the validator at {out['validation']} (never uploaded)")
    if out.get("dataset"):
        d = out["dataset"]
        print(
            f"  published the train part as dataset {d['dataset_id']} ({d['rows']} rows, {d['cid']})  {d['sent']}"
        )
    if out.get("test"):
        print(f"  kept the test part at {out['test']}")
    return 0


def run_show(args, settings) -> int:
    market = open_market(settings)
    local = market.chain.chain_id == CHAIN_ID  # development accounts shown as dev:N
    print(show_task(market, args.task_id, dev_names() if local else None))
    return 0
