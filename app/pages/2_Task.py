"""A task: its tree, leaderboard, accuracy over time and, once finalized, who was paid what."""

import streamlit as st

from app import ui
from app.tree_view import tree_dot
from bountytree.market.ladder import shown_score
from bountytree.market.render import summed
from bountytree.text import markdown

here = ui.task_page("Task")
if here is not None:
    market, task_id = here.market, here.task_id
    task = market.task(task_id)
    nodes = market.nodes(task_id)
    st.subheader(markdown(task.info.name))
    if task.info.description:
        st.caption(markdown(task.info.description, block=True))
    cols = st.columns(5)
    cols[0].metric("Bounty", ui.eth(task.bounty))
    cols[1].metric("Target", ui.pct(task.target_bps))
    cols[2].metric("Best", ui.pct(task.best_bps) if task.best_node else "—")
    cols[3].metric("Deadline", ui.countdown(task))
    cols[4].metric("Status", task.status)
    clicked = False
    if not task.finalized:
        due = (task.best_node and task.best_bps >= task.target_bps) or task.status == "expired"
        clicked = ui.button(
            "Finalize",
            key="finalize",
            why_not=None
            if due
            else "anyone may finalize once the best node reaches the target or the deadline "
            "passes; neither has happened yet",
        )
    # Called even once the task reads as finalized: a wallet's transaction is mined before the
    # run that brings its hash, and this run must still report it.
    out = ui.act(
        f"finalize-{task_id}",
        clicked,
        lambda m: m.finalize(task_id),
        what=f"Finalizing task {task_id}",
    )
    if out is not None:
        st.success(
            f"Finalized: winner node {out.winner}. Transaction {out.sent.tx_hash}, "
            f"gas {out.sent.gas_used}."
        )
        task = market.task(task_id)
    st.graphviz_chart(
        tree_dot(nodes, task.winner or task.best_node, ui.book().names(), f"task {task_id}")
    )
    scored = sorted(
        (n for n in nodes.values() if n.status == "scored"), key=lambda n: (-n.accuracy_bps, n.id)
    )
    st.subheader("Leaderboard")
    st.dataframe(
        [
            {
                "node": n.id,
                "kind": n.kind,
                "author": ui.label(n.author),
                "accuracy": shown_score(
                    n.accuracy_bps, nodes[n.parent_id].accuracy_bps if n.parent_id else None
                ),
                "raise (new best)": f"+{n.raise_bps / 100:.2f}" if n.raise_bps else "—",
                "parent": n.parent_id,
                "verified ops": n.verified_ops,
            }
            for n in scored
        ],
        hide_index=True,
        width="stretch",
    )
    if scored:
        st.subheader("Best accuracy over time")
        best, series = 0, []
        for n in sorted(scored, key=lambda n: n.id):
            best = max(best, n.accuracy_bps)
            series.append(
                {
                    "node": n.id,
                    "best accuracy %": best / 100,
                    "node accuracy %": n.accuracy_bps / 100,
                }
            )
        st.line_chart(series, x="node")
    if task.finalized:
        st.subheader("Payouts")
        reasons = market.payout_reasons(task, nodes)
        payouts = market.payouts(task_id)
        st.dataframe(
            [
                {
                    "who": ui.label(p.account),
                    "amount": ui.eth(p.amount),
                    "for": p.kind,
                    "why": reasons.get((p.account, p.kind), ""),
                }
                for p in summed([p for p in payouts if p.kind != "stake"])
            ],
            hide_index=True,
            width="stretch",
        )
        stakes = [p for p in payouts if p.kind == "stake"]
        if stakes:
            st.caption(
                f"Also {len(stakes)} submission stakes returned ({ui.eth(sum(p.amount for p in stakes))}); "
                "stakes of rejected and worse-than-parent nodes joined the pool."
            )
