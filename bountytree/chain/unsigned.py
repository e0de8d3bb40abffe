"""Transactions prepared here and signed elsewhere.

A browser wallet holds its user's key and the app server must not, so the server prepares each
transaction the way `Chain.send` does for a local key — simulated with eth_call from the user's
address, refused in one line if the contract would refuse it — and hands the unsigned result to
a `Signer`: the browser wallet, or a local development key. It then checks that what was sent
is what it prepared, follows the receipt and decodes a revert.

`SignerChain` is a `Chain` whose `send` takes this path, so every `Market` action (and the
trainer, which calls the Market) runs unchanged whoever signs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol, cast

from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.exceptions import (
    TransactionNotFound,
    Web3RPCError,
)

from bountytree.chain.client import (
    Chain,
    Quote,
    Sent,
    eth,
    rpc_message,
    simulate,
    why_reverted,
)
from bountytree.config import Settings
from bountytree.errors import UserError

SEEN_TIMEOUT_S = 30.0  # how long a hash the wallet returned may take to reach our node


@dataclass(frozen=True)
class UnsignedTx:
    """A simulated contract call for `sender` to sign: what eth_sendTransaction takes, less the
    fees and nonce, which the signer chooses."""

    sender: str
    to: str
    data: str  # 0x-prefixed calldata
    value: int
    gas: int  # the gas limit: the estimate with `Chain`'s margin
    chain_id: int
    quote: Quote  # what it will cost at the fees the chain asks now
    # The sender's transaction count when prepared: what the wallet sends for it has a nonce at
    # least this, so the hash of an earlier, identical call cannot stand in for it.
    first_nonce: int = 0

    def to_rpc(self) -> dict[str, str]:
        """The parameter object of EIP-1193's eth_sendTransaction (hex quantities). The fees
        are the wallet's to choose, as its user sees them."""
        return {
            "from": self.sender,
            "to": self.to,
            "data": self.data,
            "value": hex(self.value),
            "gas": hex(self.gas),
        }


class Signer(Protocol):
    """Whoever holds the key for `address`: signs and broadcasts a prepared transaction."""

    @property
    def address(self) -> str: ...

    def submit(self, w3: Web3, tx: UnsignedTx) -> str:
        """Signs and broadcasts `tx`; returns its hash (0x…) or raises UserError."""
        ...


class KeySigner:
    """A key held by this process: on a local chain, its public development accounts."""

    def __init__(self, account: LocalAccount):
        self.account = account

    @property
    def address(self) -> str:
        return str(self.account.address)

    def submit(self, w3: Web3, tx: UnsignedTx) -> str:
        """Signs at the quoted fees with the account's next nonce."""
        fields: dict[str, Any] = {
            "from": tx.sender,
            "to": tx.to,
            "data": tx.data,
            "value": tx.value,
            "gas": tx.gas,
            "nonce": w3.eth.get_transaction_count(cast(Any, tx.sender), "pending"),
            "chainId": tx.chain_id,
            **tx.quote.fees.tx_fields(),
        }
        signed = self.account.sign_transaction(cast(Any, fields))
        try:
            return _hex(w3.eth.send_raw_transaction(signed.raw_transaction))
        except (Web3RPCError, ValueError) as exc:
            raise UserError(f"the chain refused the transaction: {rpc_message(exc)}") from None


def prepare(chain: Chain, fn: Any, value: int = 0, action: str | None = None) -> UnsignedTx:
    """Simulates `fn` from the chain's address and returns it unsigned, quoted as `Chain` quotes
    (its gas limit, fees and the funds it needs); a call the contract would refuse raises
    UserError with its error decoded, and nothing is prepared."""
    sender = Web3.to_checksum_address(chain.address)
    call: dict[str, Any] = {"from": sender, "value": value}
    gas = simulate(fn, call)
    quote = chain.quote(action or fn.fn_name, gas, value)  # refuses what the funds cannot pay
    built = fn.build_transaction({**call, "gas": quote.gas_limit, **quote.fees.tx_fields()})
    return UnsignedTx(
        sender,
        str(built["to"]),
        _hex(built["data"]),
        value,
        quote.gas_limit,
        chain.chain_id,
        quote,
        first_nonce=chain.w3.eth.get_transaction_count(cast(Any, sender), "latest"),
    )


def follow(chain: Chain, tx_hash: str, tx: UnsignedTx, abi: list[dict[str, Any]]) -> Sent:
    """Checks that `tx_hash` is the transaction that was prepared, waits until it is mined and
    has the chain's confirmations (`Chain.confirmations`), and returns it as `Chain.send` does;
    one that reverted raises UserError with the contract's reason."""
    w3 = chain.w3
    _check_same(tx_hash, tx, _seen(w3, tx_hash))
    return chain.follow(
        tx_hash,
        "",
        lambda receipt: (
            "reverted on-chain: "
            + why_reverted(
                w3,
                {"from": tx.sender, "to": tx.to, "data": tx.data, "value": tx.value},
                receipt,
                abi,
                tx.gas,
            )
        ),
        "see the wallet (it may wait for a higher fee, or have been replaced)",
    )


def _check_same(tx_hash: str, tx: UnsignedTx, sent: Any) -> None:
    """A wallet signs what it is given, but a hash is only a claim: what it names must be the
    transaction prepared, or the action's outcome would be read from someone else's."""
    differ = [
        name
        for name, want, got in (
            ("sender", tx.sender.lower(), str(sent["from"]).lower()),
            ("contract", tx.to.lower(), str(sent["to"]).lower()),
            ("call", tx.data, _hex(sent["input"])),
            ("value", tx.value, int(sent["value"])),
        )
        if want != got
    ]
    if int(sent["nonce"]) < tx.first_nonce:
        differ.append("nonce (it was sent before this one was prepared)")
    if differ:
        # Say what did happen on-chain: the user's wallet sent something, maybe ETH.
        block = sent.get("blockNumber")
        where = f"mined in block {block}" if block is not None else "not mined yet"
        raise UserError(
            f"transaction {tx_hash} is not the one prepared (its {', '.join(differ)} "
            f"{'differs' if len(differ) == 1 else 'differ'}): it sends {eth(int(sent['value']))} "
            f"ETH from {sent['from']} to {sent['to']} and is {where}; nothing from it is recorded "
            "here (look it up in your wallet)"
        )


class SignerChain(Chain):
    """A `Chain` for an address whose key is elsewhere: `send` prepares, hands the transaction to
    the signer, then follows it. Nothing in it can sign."""

    def __init__(self, settings: Settings, signer: Signer):
        self.signer = signer
        super().__init__(settings, cast(LocalAccount, _AddressOnly(signer.address)))

    @property
    def address(self) -> str:
        return Web3.to_checksum_address(self.signer.address)

    def send(self, fn: Any, value: int = 0, action: str | None = None) -> Sent:
        tx = prepare(self, fn, value, action)
        return follow(self, self.signer.submit(self.w3, tx), tx, fn.contract_abi)


@dataclass(frozen=True)
class _AddressOnly:
    """Stands in for the account `Chain` keeps: an address, and no key to sign with."""

    address: str


def _seen(w3: Web3, tx_hash: str) -> Any:
    """The transaction as the node knows it; a wallet may broadcast through another node, so it
    may take a moment to arrive."""
    deadline = time.monotonic() + SEEN_TIMEOUT_S
    while True:
        try:
            return w3.eth.get_transaction(cast(Any, tx_hash))
        except TransactionNotFound:
            if time.monotonic() > deadline:
                raise UserError(
                    f"transaction {tx_hash} did not reach the chain within "
                    f"{SEEN_TIMEOUT_S:.0f} s: see the wallet"
                ) from None
            time.sleep(0.5)


def _hex(value: Any) -> str:
    """0x-prefixed lowercase hex of bytes, HexBytes or a hex string."""
    if isinstance(value, str):
        return "0x" + value.removeprefix("0x").lower()
    return "0x" + bytes(value).hex()


__all__ = ["KeySigner", "Signer", "SignerChain", "UnsignedTx", "follow", "prepare"]
