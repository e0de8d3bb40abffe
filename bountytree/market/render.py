"""Text views of the market: the task tree, payouts and reputation, as `task show`, the trainer
and the demo print them."""

from __future__ import annotations

from dataclasses import replace

from web3 import Web3

from bountytree.market.actions import AWAITING, Market, NodeView, TaskView
from bountytree.market.ladder import shown_score
from bountytree.market.records import Payout
from bountytree.text import terminal


def eth(wei: int) -> str:
    """Up to six decimals, as a person reads an amount (the exact wei are on-chain)."""
    if 0 < wei < 10**12:
        return "<0.000001 ETH"
    text = f"{Web3.from_wei(wei, 'ether'):.6f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text + " ETH"


def pct(bps: int | None) -> str:
    return "—" if bps is None else f"{bps / 100:.2f}%"


def short(address: str) -> str:
    return address[:6] + "…" + address[-4:]


def task_header(task: TaskView) -> list[str]:
    info = task.description
    left = task.seconds_left
    when = f"in {left // 3600}h{left % 3600 // 60:02d}m" if left > 0 else "passed"
    d, c, e = (s / 100 for s in task.shares_bps)
    lines = [
        f"task {task.id}: {terminal(info.name) if info else '?'}  [{task.status}]",
        f"  sponsor {task.sponsor}  bounty {eth(task.bounty)}  stake {eth(task.stake)}",
        f"  target {pct(task.target_bps)}  deadline {when}  split data {d:g}% / compute {c:g}% / "
        f"expertise {e:g}%",
    ]
    if info:
        lines.append(
            f"  rows of {list(info.input_shape)} features, {info.num_classes} classes, "
            f"{info.validation_rows} validation rows (kept by the sponsor)"
        )
        lines.append(
            f"  scores recorded only as a new best by {info.margin_bps / 100:g} point(s), "
            "rounded down to it (the Ladder)"
        )
    if task.awaiting_custody:
        lines.append("  private models: " + AWAITING.format(task=task.id))
    elif task.custodied:
        lines.append("  private models: trained weights held as shares by two custodians")
    best = f"node {task.best_node} at {pct(task.best_bps)}" if task.best_node else "none scored yet"
    lines.append(
        f"  best {best}"
        + (f"  winner node {task.winner}" if task.finalized else "")
        + (
            f"  {task.pending_nodes} node(s) awaiting the "
            + ("custodians" if task.custodied else "oracle")
            if task.pending_nodes
            else ""
        )
        + (f"  {task.open_commitments} commitment(s) to reveal" if task.reveals_open else "")
    )
    if task.finalized and task.unclaimed_raise_bps:
        lines.append(
            f"  raises off the winning path not paid yet ({task.unclaimed_raise_bps / 100:g} pts): "
            f"`bountytree claim --task {task.id}` pays them"
        )
    return lines


def _node_line(n: NodeView, best: int, names: dict[str, str], parent_bps: int | None) -> str:
    score = (
        shown_score(n.accuracy_bps, parent_bps)
        if n.status == "scored"
        else n.status + (f" ({n.reason})" if n.reason else "")
    )
    gain = f"  new best +{n.raise_bps / 100:.2f}" if n.raise_bps else ""
    data = f"  dataset {n.dataset_id}" if n.dataset_id else ""
    star = "  ★ best" if n.id == best else ""
    who = names.get(n.author, short(n.author))
    return f"#{n.id} {n.kind:<12} {who:<14} {score}{gain}{data}{star}"


def tree_lines(
    nodes: dict[int, NodeView], best: int, names: dict[str, str] | None = None
) -> list[str]:
    names = names or {}
    lines: list[str] = []

    def walk(n: NodeView, prefix: str, last: bool, root: bool) -> None:
        branch = "" if root else ("└─ " if last else "├─ ")
        parent = nodes.get(n.parent_id)
        parent_bps = None if parent is None else parent.accuracy_bps
        lines.append(prefix + branch + _node_line(n, best, names, parent_bps))
        kids = [nodes[c] for c in n.children]
        for i, child in enumerate(kids):
            walk(
                child,
                prefix + ("" if root else ("   " if last else "│  ")),
                i == len(kids) - 1,
                False,
            )

    roots = [n for n in nodes.values() if n.parent_id == 0]
    for r in roots:
        walk(r, "  ", True, True)
    return lines or ["  (no nodes yet)"]


def summed(payouts: list[Payout]) -> list[Payout]:
    """One credit per account and kind, in the order they were first credited: what finalize
    paid the winning path and what claims paid the nodes off it add up."""
    out: dict[tuple[str, str], Payout] = {}
    for p in payouts:
        key = (p.account, p.kind)
        out[key] = replace(p, amount=out[key].amount + p.amount) if key in out else p
    return list(out.values())


def payout_lines(payouts: list[Payout], names: dict[str, str] | None = None) -> list[str]:
    """One line per credit; a burned one (address(0), which nobody can withdraw) says so."""
    names = names or {}
    return [
        f"  {'(nobody)' if p.kind == 'burned' else names.get(p.account, p.account):<10} "
        f"{p.kind:<10} {eth(p.amount):>14}"
        for p in payouts
    ] or ["  (none)"]


def show_task(market: Market, task_id: int, names: dict[str, str] | None = None) -> str:
    task = market.task(task_id)
    nodes = market.nodes(task_id)
    lines = task_header(task)
    if task.finalized and task.winner:
        test = market.test_score(task_id)
        lines.append(
            f"  winner node {task.winner}: validation {pct(task.best_bps)}, test "
            + (pct(test) if test is not None else "not scored")
        )
    lines += ["", "tree:", *tree_lines(nodes, task.best_node, names)]
    if task.finalized:
        reasons = market.payout_reasons(task, nodes)
        paid = summed([p for p in market.payouts(task_id) if p.kind != "stake"])
        lines += ["", "payouts:"] + [
            line + (f"  ({reasons[(p.account, p.kind)]})" if (p.account, p.kind) in reasons else "")
            for p, line in zip(paid, payout_lines(paid, names), strict=False)
        ]
    return "\n".join(lines)
