"""`bountytree custody …`: private tasks' custody on-chain (contracts/PrivateCustody.sol).

  keygen --out FILE                      an X25519 key pair (sponsor or custodian); prints the
                                         public key
  approve ADDRESS [--revoke]             the admin approves a custodian or dealer
  register --task T --custodians A,B --dealer D --key-file FILE --stake ETH --fee ETH
                                         the sponsor names the custody of a task created private
  cancel --task T                        the sponsor withdraws a custody not ready yet
  accept --task T --key-file FILE --terms HASH
                                         a custodian or the dealer stakes, with its key, on the
                                         terms `show` printed
  show --task T                          who holds the task's models and what was handed over
  share-validation --task T [--validation FILE]
                                         the sponsor shares its validation rows with the
                                         custodians (two shares, each sealed to its custodian)
  submit --task T --parent N --data FILE a data owner's rows, sealed to the custodians, to train
                                         a child of node N
  commit --node N --holding FILE --key-file FILE
                                         a custodian commits to its share of a node
  hand-over --task T --holding FILE --key-file FILE
                                         a custodian seals its share of the winner to the
                                         sponsor's key, stores it and posts its CID
  settle --task T / withdraw             close a custody; pull what it credited

A holding is a custodian's share of one node at rest: the share and the salt of its commitment,
sealed to the custodian's own key (`bountytree/private/handover.py`), so a copied disk or store
yields nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse

    from bountytree.commands import Subparsers
    from bountytree.config import Settings
    from bountytree.market.custody import Custody
    from bountytree.private.handover import Opened

DEFAULT_WINDOW = "2d"


def register(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("custody", parents=[common], help="private tasks: custodians and hand-over")
    verbs = p.add_subparsers(dest="verb", required=True)
    k = verbs.add_parser("keygen", parents=[common], help="write an X25519 key file")
    k.add_argument("--out", required=True, help="a new file (owner-only)")
    k.set_defaults(run=run_keygen)
    p_ = verbs.add_parser("approve", parents=[common], help="approve a custodian or dealer")
    p_.add_argument("address")
    p_.add_argument("--revoke", action="store_true", help="withdraw the approval")
    p_.set_defaults(run=run_approve)
    r = verbs.add_parser(
        "register",
        parents=[common],
        help="register the custody of a task created with --private-models (its sponsor)",
    )
    r.add_argument("--task", type=int, required=True)
    r.add_argument("--custodians", required=True, help="two addresses, comma-separated")
    r.add_argument("--dealer", required=True, help="the dealer's address")
    r.add_argument("--key-file", required=True, help="the sponsor's key file (custody keygen)")
    r.add_argument("--stake", required=True, help="ETH each of the three stakes")
    r.add_argument("--fee", required=True, help="ETH paid now, in thirds at the hand-over")
    r.add_argument(
        "--window",
        default=DEFAULT_WINDOW,
        help="how long the custodians have to hand over once the task is finalized (2d)",
    )
    r.set_defaults(run=run_register)
    c = verbs.add_parser(
        "cancel",
        parents=[common],
        help="withdraw a custody not ready yet, to register another (its sponsor)",
    )
    c.add_argument("--task", type=int, required=True)
    c.set_defaults(run=run_cancel)
    a = verbs.add_parser("accept", parents=[common], help="accept custody by staking")
    a.add_argument("--task", type=int, required=True)
    a.add_argument(
        "--key-file",
        required=True,
        help="this party's key file (custody keygen): shares are sealed to it, links prove it",
    )
    a.add_argument(
        "--terms",
        required=True,
        help="the terms you accept, as `custody show` printed them (0x…): the sponsor may "
        "withdraw a custody not ready and register others, and an accept binds only to these",
    )
    a.set_defaults(run=run_accept)
    s = verbs.add_parser("show", parents=[common], help="a task's custody")
    s.add_argument("--task", type=int, required=True)
    s.set_defaults(run=run_show)
    v = verbs.add_parser(
        "share-validation", parents=[common], help="give the custodians the validation rows"
    )
    v.add_argument("--task", type=int, required=True)
    v.add_argument(
        "--validation", help="the validation file (default: the one task create registered)"
    )
    v.set_defaults(run=run_share_validation)
    b = verbs.add_parser("submit", parents=[common], help="rows for a private child of a node")
    b.add_argument("--task", type=int, required=True)
    b.add_argument("--parent", type=int, required=True)
    b.add_argument("--data", required=True, help="rows (CSV or .npz); they leave as shares")
    b.set_defaults(run=run_submit)
    c = verbs.add_parser("commit", parents=[common], help="commit to a share of a node")
    c.add_argument("--node", type=int, required=True)
    c.add_argument("--holding", required=True)
    c.add_argument("--key-file", required=True)
    c.set_defaults(run=run_commit)
    h = verbs.add_parser("hand-over", parents=[common], help="hand the winner's share over")
    h.add_argument("--task", type=int, required=True)
    h.add_argument("--holding", required=True)
    h.add_argument("--key-file", required=True)
    h.set_defaults(run=run_hand_over)
    t = verbs.add_parser("settle", parents=[common], help="settle a custody")
    t.add_argument("--task", type=int, required=True)
    t.set_defaults(run=run_settle)
    w = verbs.add_parser("withdraw", parents=[common], help="withdraw custody credits")
    w.set_defaults(run=run_withdraw)


def _custody(settings: Settings) -> Custody:
    from bountytree.market.actions import open_market
    from bountytree.market.custody import Custody

    return Custody(open_market(settings))


def run_keygen(args: argparse.Namespace, settings: Settings) -> int:
    from bountytree.private.sealing import write_private_key

    public = write_private_key(Path(args.out))
    print(f"wrote {args.out} (owner-only); public key {public.hex()}")
    return 0


def run_approve(args: argparse.Namespace, settings: Settings) -> int:
    sent = _custody(settings).approve(args.address, not args.revoke)
    print(f"{'withdrew approval of' if args.revoke else 'approved'} {args.address}  {sent}")
    return 0


def custodian_pair(text: str) -> tuple[str, str]:
    """`--custodians A,B` as two addresses (checked by `custody_terms`)."""
    from bountytree.errors import UserError

    named = [a.strip() for a in text.split(",")]
    if len(named) != 2:
        raise UserError(f"--custodians {text!r}: give two addresses, A,B")
    return named[0], named[1]


def run_register(args: argparse.Namespace, settings: Settings) -> int:
    from bountytree.market.custody import custody_terms
    from bountytree.market.render import eth
    from bountytree.units import parse_duration, parse_eth

    terms = custody_terms(
        custodian_pair(args.custodians),
        args.dealer,
        Path(args.key_file),
        stake=parse_eth(args.stake, "--stake"),
        fee=parse_eth(args.fee, "--fee"),
        window_s=parse_duration(args.window),
    )
    out = _custody(settings).register(args.task, terms)
    print(
        f"task {args.task} is private: custodians {', '.join(out.view.custodians)}, dealer "
        f"{out.view.dealer}; fee {eth(out.view.fee)}, stake {eth(out.view.stake)} each  {out.sent}"
    )
    return 0


def run_accept(args: argparse.Namespace, settings: Settings) -> int:
    from bountytree.errors import UserError
    from bountytree.market.custody import PARTIES
    from bountytree.market.render import eth
    from bountytree.private.sealing import public_key, read_private_key

    key = public_key(read_private_key(Path(args.key_file)))
    try:
        terms = bytes.fromhex(args.terms.removeprefix("0x"))
        if len(terms) != 32:
            raise ValueError
    except ValueError:
        raise UserError(
            f"--terms {args.terms[:80]!r}: 32 bytes in hex, as `custody show` prints them"
        ) from None
    out = _custody(settings).accept(args.task, key, terms)
    print(
        f"accepted custody of task {args.task} as {PARTIES[out.party]}: staked "
        f"{eth(out.view.stake)}, a third of the {eth(out.view.fee)} fee at settlement  {out.sent}"
    )
    return 0


def run_cancel(args: argparse.Namespace, settings: Settings) -> int:
    sent = _custody(settings).withdraw_custody(args.task)
    print(
        f"withdrew task {args.task}'s custody: the fee back to you, each stake to its party; "
        f"register another with `bountytree custody register --task {args.task} …`  {sent}"
    )
    return 0


def run_show(args: argparse.Namespace, settings: Settings) -> int:
    from bountytree.market.custody import PARTIES
    from bountytree.market.render import eth

    custody = _custody(settings)
    view = custody.require(args.task)
    taking = not custody.market.task(args.task, with_info=False).awaiting_custody
    print(
        f"task {args.task}: fee {eth(view.fee)}, stake {eth(view.stake)} each; "
        + (
            "takes work"
            if taking
            else "takes nothing until the three accept and the rows are shared"
        )
    )
    for i, (who, party) in enumerate(zip(view.parties, PARTIES, strict=True)):
        accepted = "accepted" if view.accepted >> i & 1 else "not accepted"
        delivered = ""
        if i < 2:
            sealed = view.sealed[i]
            delivered = f", handed over {sealed}" if sealed else ""
        print(f"  {party:<12} {who}  {accepted}{delivered}")
    print(f"  sponsor key  {view.sponsor_key.hex()}")
    print(f"  window       {view.handover_window} s to hand over once the task is finalized")
    print(f"  terms        0x{view.terms.hex()}  (what `custody accept --terms` names)")
    print(
        f"  hand-over by {view.handover_deadline} (unix time){'; settled' if view.settled else ''}"
    )
    return 0


def run_share_validation(args: argparse.Namespace, settings: Settings) -> int:
    rows = _custody(settings).share_validation_file(args.task, args.validation)
    print(f"shared {rows} validation rows with task {args.task}'s custodians")
    return 0


def run_submit(args: argparse.Namespace, settings: Settings) -> int:
    from bountytree.models.datasets import load_file

    custody = _custody(settings)
    info = custody.market.task(args.task).info
    data = load_file(args.data, info.label_column)
    out = custody.submit_rows(args.task, args.parent, data)
    print(
        f"node {out.node_id} submitted on task {args.task} (parent {args.parent}): {len(data)} "
        "rows, each custodian holds one sealed share of them; they train it on shares"
    )
    return 0


def _holding(args: argparse.Namespace) -> Opened:
    from bountytree.errors import UserError
    from bountytree.private.handover import open_share
    from bountytree.private.sealing import read_private_key

    path = Path(args.holding)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UserError(f"{path}: {exc.strerror}") from None
    return open_share(raw, read_private_key(Path(args.key_file)), str(path))


def run_commit(args: argparse.Namespace, settings: Settings) -> int:
    from bountytree.private.shares import commitment

    held = _holding(args)
    value = commitment(held.share, held.salt)
    sent = _custody(settings).commit_share(args.node, value)
    print(f"committed to share {held.share.party} of node {args.node}: {value.hex()}  {sent}")
    return 0


def run_hand_over(args: argparse.Namespace, settings: Settings) -> int:
    import io

    from bountytree.errors import UserError
    from bountytree.private.handover import seal_share
    from bountytree.private.shares import commitment

    custody = _custody(settings)
    view = custody.require(args.task)
    task = custody.market.task(args.task, with_info=False)
    if not task.finalized or not task.winner:
        raise UserError(f"task {args.task} has no winner yet: nothing to hand over")
    held = _holding(args)
    committed = custody.commitment(task.winner, held.share.party)
    if committed != commitment(held.share, held.salt):
        raise UserError(
            f"{args.holding} is not the share custodian {held.share.party} committed to for "
            f"the winner, node {task.winner}"
        )
    sealed = seal_share(held.share, held.salt, view.sponsor_key)
    cid = custody.market.store.add(io.BytesIO(sealed))
    sent = custody.hand_over(args.task, cid)
    print(f"handed share {held.share.party} of node {task.winner} over as {cid}  {sent}")
    return 0


def run_settle(args: argparse.Namespace, settings: Settings) -> int:
    sent = _custody(settings).settle(args.task)
    print(f"settled the custody of task {args.task}  {sent}")
    return 0


def run_withdraw(args: argparse.Namespace, settings: Settings) -> int:
    from bountytree.market.render import eth

    custody = _custody(settings)
    amount, sent = custody.withdraw()
    print(f"withdrew {eth(amount)} of custody credits to {custody.market.chain.address}  {sent}")
    return 0
