"""What every page of the app shares: the sidebar (who am I, which chain and store), the Market
for the chosen account, and small view helpers. Pages call bountytree's functions (Market,
Trainer, Oracle) exactly as the command line does; nothing here talks to the contract itself.
"""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from demo.actors import ACTORS, names
from bountytree.chain import ganache_account, load_account
from bountytree.config import Settings
from bountytree.errors import UserError
from bountytree.market import Market, open_market
from bountytree.render import eth, pct


def settings() -> Settings:
    return Settings()


def _account_choice():
    options = [*list(ACTORS), "key"]
    labels = {i: f"{name} — {role} (#{i})" for i, (name, role) in ACTORS.items()}
    labels["key"] = "Imported private key"
    choice = st.sidebar.selectbox(
        "Who am I",
        options,
        format_func=labels.get,
        key="who",
        index=options.index(st.session_state.get("who", 1)),
    )
    if choice == "key":
        key = st.sidebar.text_input("Private key (0x…)", type="password", key="private_key")
        if not key:
            return None
        import os

        os.environ["BOUNTYTREE_PRIVATE_KEY"] = key
        return load_account(None)
    return ganache_account(int(choice))


def sidebar() -> Market | None:
    """Draws the sidebar; returns the Market for the chosen account, or None (with a message)."""
    s = settings()
    st.sidebar.markdown("### bountytree")
    try:
        account = _account_choice()
        if account is None:
            st.sidebar.info("Paste a private key to continue.")
            return None
        market = open_market(s, account)
    except UserError as exc:
        st.sidebar.error(str(exc))
        st.error(f"Not connected: {exc}")
        return None
    balance = market.chain.w3.eth.get_balance(market.chain.address)
    st.sidebar.metric("Balance", eth(balance))
    st.sidebar.caption(f"`{market.chain.address}`")
    st.sidebar.caption(f"chain {s.rpc} (id {market.chain.chain_id})  \nstore {s.store}")
    return market


def page(title: str, tab: str | None = None) -> Market | None:
    """Every page's head: browser tab, sidebar, title. Returns the Market, or None (explained)."""
    st.set_page_config(page_title=f"{tab or title} · bountytree", page_icon="🌳", layout="wide")
    market = sidebar()
    st.title(title)
    return market


def task_page(title: str, tab: str | None = None) -> tuple[Market | None, int | None]:
    """A page about one task: `page`, then the task picker (the URL's ?task= preselects it)."""
    market = page(title, tab)
    return market, (pick_task(market) if market is not None else None)


def label(address: str) -> str:
    return names().get(address, address[:8] + "…")


def task_options(market: Market) -> list[int]:
    return list(reversed(market.task_ids()))


def pick_task(market: Market, key: str = "task") -> int | None:
    ids = task_options(market)
    if not ids:
        st.info("No task yet: post a bounty first.")
        return None
    wanted = st.query_params.get("task")
    index = ids.index(int(wanted)) if wanted and wanted.isdigit() and int(wanted) in ids else 0
    return st.selectbox(
        "Task", ids, index=index, key=key, format_func=lambda t: f"#{t} {market.task(t).info.name}"
    )


def countdown(task) -> str:
    left = task.seconds_left
    if left < 0:
        return "passed"
    return f"{left // 3600}h {left % 3600 // 60:02d}m"


def fail(exc: UserError) -> None:
    st.error(str(exc))


__all__ = ["countdown", "eth", "fail", "label", "pct", "pick_task", "settings", "sidebar"]
