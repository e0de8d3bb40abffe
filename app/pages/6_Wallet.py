"""Wallet: payouts waiting for this account, withdraw them; the reputation leaderboard."""

import streamlit as st

from app import ui

market = ui.page("Wallet")
if market is not None:
    if ui.frame().signer is None:
        st.info("Connect a wallet (sidebar) to see what it can withdraw.")
    else:
        pending = market.pending()
        st.metric("Waiting to be withdrawn", ui.eth(pending))
        clicked = st.button("Withdraw", type="primary", disabled=pending == 0, key="withdraw")
        out = ui.act("withdraw", clicked, lambda m: m.withdraw(), what="Withdrawing")
        if out is not None:
            st.success(
                f"Withdrew {ui.eth(out.amount)}. Transaction {out.sent.tx_hash}, "
                f"gas {out.sent.gas_used}."
            )
    st.subheader("Reputation")
    points = [(market.reputation(a), a, name) for a, name in ui.book().names().items()]
    board = [
        {"who": name, "address": a, "reputation": r}
        for r, a, name in sorted(points, key=lambda p: -p[0])
    ]
    st.dataframe(board, hide_index=True, width="stretch")
