"""Oracle: what is pending, scored and rejected (with reasons), and one scoring round on demand."""

import sys
from pathlib import Path

import streamlit as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import ui

from bountytree.chain import ganache_account
from bountytree.errors import UserError
from bountytree.market import open_market

market, task_id = ui.task_page("Oracle")
if task_id is not None:
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
    s = ui.settings()
    oracle_account = s.account or "0"
    st.caption(
        f"A round runs here as the local oracle (account {oracle_account}) with the validator started "
        "from the file this machine registered for the task."
    )
    if st.button("Run one scoring round", type="primary", key="score"):
        from oracle.service import Oracle

        lines = []
        try:
            oracle_market = open_market(s, ganache_account(int(oracle_account)))
            with st.spinner("two-party evaluation…"):
                rounds = Oracle(oracle_market, log=lines.append, fetch_timeout=60).run_round(
                    [task_id]
                )
            errors = [r.error for r in rounds if r.error]
            (st.error if errors else st.success)(
                "\n".join(errors)
                or f"Round done: {len(rounds[0].scored)} scored, {len(rounds[0].rejected)} rejected"
            )
            st.code("\n".join(lines) or "nothing pending")
        except UserError as exc:
            ui.fail(exc)
