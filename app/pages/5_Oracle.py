"""Oracle: what is pending, scored and rejected (with reasons), and, on a local chain, one
scoring round on demand."""

import streamlit as st

from app import ui
from bountytree.chain.client import LOCAL_CHAIN_IDS, load_account
from bountytree.market.actions import open_market
from oracle.service import public_line


def _round(settings, chain_id: int, index: int, task_id: int):
    """One round of the oracle service, as the local oracle's development account (the key
    `bountytree up` runs the oracle with), never as the user: scores are the oracle's to send."""
    from oracle.service import Oracle

    lines: list[str] = []
    oracle_market = open_market(settings, load_account(str(index), chain_id))
    rounds = Oracle(oracle_market, log=lines.append, fetch_timeout=60).run_round([task_id])
    return rounds, lines


here = ui.task_page("Oracle")
if here is not None:
    market, task_id = here.market, here.task_id
    nodes = market.nodes(task_id).values()
    for status in ("pending", "scored", "rejected"):
        rows = [
            {
                "node": n.id,
                "kind": n.kind,
                "author": ui.label(n.author),
                "accuracy": ui.pct(n.accuracy_bps) if status == "scored" else "",
                "reason": n.reason or "",
            }
            for n in nodes
            if n.status == status
        ]
        st.subheader(f"{status.capitalize()} ({len(rows)})")
        if rows:
            st.dataframe(rows, hide_index=True, width="stretch")
    frame = ui.frame()
    # The oracle's development account, as `bountytree up` names it (`dev:0`) or by index.
    account = (frame.settings.account or "0").removeprefix("dev:")
    index = int(account) if account.isdigit() else 0
    if frame.chain_id in LOCAL_CHAIN_IDS:
        st.caption(
            f"A round runs here as the local oracle (dev:{index}) with the validator started "
            "from the file this machine registered for the task."
        )
        clicked = st.button("Run one scoring round", type="primary", key="score")
        out = ui.act(
            f"score-{task_id}",
            clicked,
            lambda _m: _round(frame.settings, frame.chain_id, index, task_id),
            what="Two-party evaluation",
            as_user=False,
        )
        if out is not None:
            rounds, lines = out
            errors = [r.error for r in rounds if r.error]
            (st.error if errors else st.success)(
                "\n".join(errors)
                or f"Round done: {len(rounds[0].scored)} scored, {len(rounds[0].rejected)} rejected"
            )
            st.code("\n".join(public_line(line) for line in lines) or "nothing pending")
    else:
        st.caption(
            "Scores are sent by the oracle's own service (`python -m oracle`) with its "
            "ORACLE_ROLE key; on this chain it does not run from the app."
        )
