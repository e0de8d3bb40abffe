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
        clicked = ui.button(
            "Withdraw",
            key="withdraw",
            primary=True,
            why_not="nothing is waiting for this account" if pending == 0 else None,
        )
        out = ui.act("withdraw", clicked, lambda m: m.withdraw(), what="Withdrawing")
        if out is not None:
            st.success(
                f"Withdrew {ui.eth(out.amount)}. Transaction {out.sent.tx_hash}, "
                f"gas {out.sent.gas_used}."
            )
    st.subheader("Reputation")
    board = [
        {"who": ui.label(address), "address": address, "reputation": score}
        for address, score in sorted(market.reputation_board().items(), key=lambda p: -p[1])
    ]
    if board:
        st.dataframe(board, hide_index=True, width="stretch")
    else:
        st.caption("Nobody has earned or lost reputation on this chain yet.")
