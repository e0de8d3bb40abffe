"""`bountytree audit publish --task N` (the sponsor, after finalize) and `bountytree audit --task N`
(anyone).

A task's validation file stays private while the task runs; its commitment is
SHA-256(salt ‖ cid). Once the task is finalized the sponsor publishes the file to the store and
opens the commitment on-chain (`publishValidation`, which checks it). Then anyone can audit the
scores: fetch the file by its CID, check it opens the commitment, recompute every scored node's
accuracy in plaintext from the file and the node's stored weights, apply the Ladder exactly as
the oracle must have (bountytree/market/ladder.py: in the order the scores were recorded, from
the exact score of the node that set the best before each), and compare with what the chain holds. A sponsor whose validator shifted
a count, or an oracle that recorded something else, shows up as one line per node; the exit
status is 1 if any node does not match.

A public task records the validator's plaintext counts, made by the same code as the audit's
(bountytree/models/counting.py), so a count may differ only on rows a node leaves undecided (its
best logits closer than float32's rounding can move them), which another machine may decide the
other way: an audit accepts any score the Ladder would record within the node's undecided rows
(and the best's, within its release's band, for the exact best), and no more. A node that leaves
more than 0.5 % of the rows undecided cannot be checked, and is reported as such.

A private task's nodes have no public weights to recompute, but what they were scored on is
checked: the sponsor's two sealed validation shares are made from the file and the salt alone
(`bountytree/private/rows.validation_seed`), so the audit makes them again from the published
file and compares their CIDs with those the sponsor gave the custodians. Shares of any other
rows than the committed file's show as a mismatch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from bountytree.errors import UserError

if TYPE_CHECKING:
    import argparse

    from bountytree.commands import Subparsers
    from bountytree.config import Settings
    from bountytree.market.actions import Market, NodeView
    from bountytree.models.counting import Counted
    from bountytree.models.datasets import Dataset


def register(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    a = sub.add_parser(
        "audit",
        parents=[common],
        help="check a finalized task's scores against its published validation file",
    )
    a.add_argument("--task", type=int, default=None)
    a.set_defaults(run=run_audit)
    verbs = a.add_subparsers(dest="verb")
    p = verbs.add_parser(
        "publish",
        parents=[common],
        help="the sponsor: publish the validation file and open its commitment on-chain",
    )
    p.add_argument("--task", type=int, required=True)
    p.set_defaults(run=run_publish)


@dataclass(frozen=True)
class Finding:
    """One scored node as the audit sees it."""

    node_id: int
    recorded_bps: int
    plain_bps: int
    expected: frozenset[int]  # what the Ladder could record for the plaintext count
    best_before_bps: int
    unreadable: str = ""  # why the node could not be checked (its weights, or its near-ties)

    @property
    def matches(self) -> bool:
        return self.recorded_bps in self.expected


@dataclass(frozen=True)
class Report:
    """What an audit found: each scored node, the published file's row count, and for a private
    task whether its validation shares are that file's (None: a public task)."""

    findings: list[Finding]
    rows: int
    shares_match: bool | None = None


def run_publish(args: argparse.Namespace, settings: Settings) -> int:
    from bountytree.market.actions import open_market
    from bountytree.market.validation import check_commitment, registered, registered_salt
    from bountytree.storage.store import add_file

    market = open_market(settings)
    task = market.task(args.task, with_info=False)
    if not task.finalized:
        raise UserError(f"task {args.task} is not finalized: its validation file stays private")
    home, chain_id = settings.home, market.chain.chain_id
    path, salt = registered(home, chain_id, args.task), registered_salt(home, chain_id, args.task)
    if path is None or salt is None:
        raise UserError(
            f"task {args.task}: no validation file and salt kept on this machine "
            "(run it where `bountytree task create` ran)"
        )
    check_commitment(path, salt, task.commitment)
    cid = add_file(market.store, path)
    market.store.pin(cid)
    sent = market.publish_validation(args.task, cid, salt)
    print(f"task {args.task}: validation file published as {cid}, salt {salt.hex()}  {sent}")
    return 0


def run_audit(args: argparse.Namespace, settings: Settings) -> int:
    from bountytree.market.actions import open_market

    if args.task is None:
        raise UserError("audit: --task is required")
    market = open_market(settings)
    report = audit(market, args.task)
    findings, rows = report.findings, report.rows
    bad = [f for f in findings if not f.matches]
    for f in bad:
        if f.unreadable:
            print(
                f"node {f.node_id}: recorded {f.recorded_bps / 100:.2f}%, unchecked: {f.unreadable}"
            )
            continue
        allowed = " or ".join(f"{v / 100:.2f}%" for v in sorted(f.expected))
        print(
            f"node {f.node_id}: recorded {f.recorded_bps / 100:.2f}%, but its plaintext score "
            f"{f.plain_bps / 100:.2f}% records {allowed} (best before it "
            f"{f.best_before_bps / 100:.2f}%)"
        )
    if report.shares_match is False:
        print(
            f"task {args.task}: the validation shares the sponsor gave the custodians are not "
            "the published file's: its private nodes were scored on other rows"
        )
    elif report.shares_match:
        print(f"task {args.task}: the custodians' validation shares are the published file's")
    print(
        f"task {args.task}: the published file ({rows} rows) opens the commitment; "
        f"{len(findings)} scored node(s) checked, {len(bad)} mismatch(es)"
    )
    return 1 if bad or report.shares_match is False else 0


def audit(market: Market, task_id: int) -> Report:
    """Every scored node of a finalized task, in the order its score was recorded, against the
    published validation file; the file's row count; a private task's validation shares."""
    from bountytree.market.ladder import bps, near_scores, possible_records
    from bountytree.models.counting import checkable
    from bountytree.reasons import Rejected
    from bountytree.storage.store import StoreError, StoreUnavailable

    task = market.task(task_id)
    assert task.info is not None
    rows = published_rows(market, task_id, task.commitment, task.info.label_column)
    if task.custodied:  # private: no node's weights are public to recompute
        return Report([], len(rows), _private_shares_match(market, task_id, rows))
    nodes = market.nodes(task_id)
    events = sorted(
        market.logs("NodeScored", taskId=task_id),
        key=lambda e: (e["blockNumber"], e["logIndex"]),
    )
    # The Ladder's best is exact: the count of the node that set the best recorded score, as
    # this audit counts it (within its undecided rows), and always within the band its release
    # allows (a release is its exact score rounded down); a best this audit cannot count leaves
    # the whole band.
    margin = task.info.margin_bps
    best, bests, out = 0, {0}, []
    for e in events:
        node = nodes[e["args"]["nodeId"]]
        recorded = int(e["args"]["accuracyBps"])
        band = set(range(recorded, recorded + margin))
        try:
            counted = _plain_correct(market, node, rows)
        except StoreUnavailable:
            raise  # the store is down: nobody's fault, and nothing is audited
        except (StoreError, Rejected) as exc:  # a file gone from the store, or unreadable
            out.append(Finding(node.id, recorded, 0, frozenset(), best, str(exc)))
            if recorded > best:
                best, bests = recorded, band
            continue
        plain = bps(counted.correct, len(rows))
        if not checkable(counted, len(rows)):
            why = (
                f"it decides {counted.undecided} of {len(rows)} rows by a near-tie, which another "
                "machine's arithmetic may decide otherwise: its count cannot be checked"
            )
            out.append(Finding(node.id, recorded, plain, frozenset(), best, why))
            if recorded > best:
                best, bests = recorded, band
            continue
        parent = nodes[node.parent_id].accuracy_bps if node.parent_id else 0
        expected = possible_records(
            counted.correct,
            len(rows),
            counted.undecided,
            bests_bps=bests,
            margin_bps=margin,
            parent_bps=parent,
        )
        out.append(Finding(node.id, recorded, plain, frozenset(expected), best))
        if recorded > best:
            best = recorded
            bests = (near_scores(counted.correct, len(rows), counted.undecided) & band) or band
    return Report(out, len(rows))


def _private_shares_match(market: Market, task_id: int, rows: Dataset) -> bool:
    """Whether a private task's validation shares, as the sponsor gave them, are the published
    file's."""
    from bountytree.market.custody import Custody

    opening = market.validation_opening(task_id)
    assert opening is not None  # published_rows read it
    return Custody(market).validation_shares_match(task_id, rows, opening[1])


def published_rows(market: Market, task_id: int, commitment: bytes, label_column: str) -> Dataset:
    """The validation file the sponsor published, checked against the task's commitment."""
    from bountytree.market.validation import data_digest, opening
    from bountytree.models.datasets import MAX_DATASET_BYTES, load_bytes
    from bountytree.storage.cid import digest_from_cid
    from bountytree.storage.store import get_bytes

    published = market.validation_opening(task_id)
    if published is None:
        raise UserError(
            f"task {task_id}: the sponsor has not published its validation file "
            f"(`bountytree audit publish --task {task_id}`, after finalize)"
        )
    cid, salt = published
    raw = get_bytes(market.store, cid, MAX_DATASET_BYTES)
    if data_digest(raw) != digest_from_cid(cid) or opening(salt, digest_from_cid(cid)) != bytes(
        commitment
    ):
        raise UserError(f"task {task_id}: the published file {cid} does not open the commitment")
    return load_bytes(raw, f"validation file {cid}", label_column)


def _plain_correct(market: Market, node: NodeView, rows: Dataset) -> Counted:
    """The node's correct rows, in plaintext, from its stored weights (argmax ties to the
    first class, as in PyTorch and in the secure evaluation), and its undecided rows."""
    from bountytree.models.counting import count_correct
    from bountytree.models.weights import load, max_bytes
    from bountytree.storage.store import get_bytes

    spec = market.architecture_spec(node)
    raw = get_bytes(market.store, node.weights_cid(spec), max_bytes(spec))
    return count_correct(load(raw, spec, f"weights of node {node.id}"), spec, rows.X, rows.y)
