"""Wallet: payouts waiting for this account, withdraw them; the reputation leaderboard."""

import sys
from pathlib import Path

import streamlit as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import ui

from demo.actors import names
from bountytree.errors import UserError

market = ui.page("Wallet")
if market is not None:
    pending = market.pending()
    st.metric("Waiting to be withdrawn", ui.eth(pending))
    if st.button("Withdraw", type="primary", disabled=pending == 0, key="withdraw"):
        try:
            out = market.withdraw()
            st.success(
                f"Withdrew {ui.eth(out['amount'])}. Transaction {out['sent'].tx_hash}, gas {out['sent'].gas_used}."
            )
        except UserError as exc:
            ui.fail(exc)
    st.subheader("Reputation")
    board = sorted(
        (
            {"who": name, "address": address, "reputation": market.reputation(address)}
            for address, name in names().items()
        ),
        key=lambda r: -r["reputation"],
    )
    st.dataframe(board, hide_index=True, width="stretch")
