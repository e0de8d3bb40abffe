"""bountytree: every task, newest first."""

import streamlit as st

from app import ui
from bountytree.errors import UserError
from bountytree.text import markdown

market = ui.page("bountytree")
st.caption(
    "Bounties for models trained on private data. Scores come from a two-party secure computation: "
    "the validation set never leaves the sponsor."
)
if market is not None:
    rows, unreadable = [], []
    for task_id in ui.task_options(market):
        try:  # anyone can post a task whose description cannot be read: it hides no other
            t = market.task(task_id)
        except UserError as exc:
            unreadable.append(f"#{task_id}: {str(exc)[-80:]}")
            continue
        rows.append(
            {
                "task": task_id,
                "name": t.info.name,
                "bounty": ui.eth(t.bounty),
                "target": ui.pct(t.target_bps),
                "best so far": ui.pct(t.best_bps) if t.best_node else "—",
                "deadline": ui.countdown(t),
                "status": t.status,
                "sponsor": ui.label(t.sponsor),
            }
        )
    st.subheader("Tasks")
    if rows:
        st.dataframe(rows, hide_index=True, width="stretch")
        st.markdown(
            "  \n".join(
                f"[#{r['task']} {markdown(str(r['name']))}](Task?task={r['task']}) · {r['status']}, best "
                f"{r['best so far']} of {r['target']}"
                for r in rows
            )
        )
    else:
        st.info("No task yet. Post a bounty from the sidebar's pages.")
    if unreadable:
        st.caption(markdown("Tasks whose description cannot be read: " + "; ".join(unreadable)))
