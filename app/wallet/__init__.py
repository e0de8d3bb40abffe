"""The browser wallet, as a Streamlit component (its frontend is in ./frontend, built into
./frontend/build by `make setup`; nothing is fetched at run time).

`connect` draws "Connect wallet" and reports the wallet's account and chain; `send` hands one
prepared transaction to the wallet, which signs and sends it and reports the hash. The key stays
in the wallet: the server sees addresses and hashes only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import streamlit.components.v1 as components
from web3 import Web3

from app.jobs import WalletRequest
from bountytree.errors import UserError

BUILD = Path(__file__).resolve().parent / "frontend" / "build"


@dataclass(frozen=True)
class WalletState:
    """What the connected wallet reports: its account (None until connected) and chain."""

    address: str | None
    chain_id: int | None
    error: str | None = None

    @classmethod
    def parse(cls, value: Any) -> WalletState:
        if not isinstance(value, dict):
            return cls(None, None)
        address, chain_id, error = value.get("address"), value.get("chainId"), value.get("error")
        return cls(
            Web3.to_checksum_address(address)
            if isinstance(address, str) and Web3.is_address(address)
            else None,
            chain_id if isinstance(chain_id, int) else None,
            str(error) if error else None,
        )


def _component() -> Any:
    if not (BUILD / "index.html").is_file():
        raise UserError(f"the wallet component is not built ({BUILD} is missing): run `make setup`")
    return components.declare_component("wallet", path=str(BUILD))


def connect(chain_id: int, key: str = "wallet") -> WalletState:
    """Draws the connect button (in the current container) and returns what the wallet reports."""
    return WalletState.parse(_component()(mode="connect", chainId=chain_id, key=key, default=None))


def send(request: WalletRequest, chain_id: int, key: str, label: str) -> None:
    """Hands `request` to the wallet; its answer ({id, hash} or {id, error}) arrives with the
    next run, in st.session_state[key]."""
    _component()(
        mode="send",
        chainId=chain_id,
        request={"id": request.id, "tx": request.tx.to_rpc()},
        label=label,
        key=key,
        default=None,
    )
