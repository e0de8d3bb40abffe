"""The chain client: accounts, the deployed contracts, and transactions that fail in one line.

Every transaction is simulated (eth_call) before it is signed, so a call the contract would
refuse never leaves this machine: the user sees the contract's custom error, decoded, and no
gas is spent. Contracts are found through `deployments/<chainId>.json` only.

Sending works the same on a local chain and a public one: fees as the chain prices them
(EIP-1559 where blocks carry a base fee, a legacy gas price otherwise), a quote of what the
transaction costs, a confirmation on chains that are not local (`Settings.yes` skips it),
nonces taken under a per-account lock, and a wait for `Settings.confirmations` blocks. No
development RPC (evm_mine and friends) is used here: a client waits for blocks as it would on
a public chain.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import getpass
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlparse

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from web3 import Web3
from web3.exceptions import (
    ContractCustomError,
    ContractLogicError,
    TimeExhausted,
    Web3RPCError,
)
from web3.types import TxParams

from bountytree.chain.local import MNEMONIC
from bountytree.config import Settings
from bountytree.errors import UserError
from bountytree.files import atomic_write_json

# `ganache --wallet.deterministic` derives its accounts from this phrase (m/44'/60'/0'/0/i);
# the local anvil and Hardhat are started with it too.
GANACHE_MNEMONIC = MNEMONIC
# Chain ids of local development chains (Ganache, anvil/Hardhat): the only ones where the public
# deterministic keys above are used without being named (`--account dev:N`), where nothing is
# confirmed before it is sent, and where one block is confirmation enough.
LOCAL_CHAIN_IDS = frozenset({1337, 31337})
CONTRACTS = ("Reputation", "BountyTree")
# Deployed with them since private tasks exist; a deployment file written before has none (its
# public tasks work on; private ones need a new deployment).
OPTIONAL_CONTRACTS = ("PrivateCustody",)
GAS_MARGIN = 1.2  # the gas limit sent is the estimate × this + GAS_PAD
GAS_PAD = 10_000
CONFIRMATIONS_LOCAL = 1
CONFIRMATIONS_PUBLIC = 2
RECEIPT_TIMEOUT_S = {True: 120.0, False: 600.0}  # local chain / public chain
ERROR_SELECTOR = bytes.fromhex("08c379a0")  # Error(string)
PANIC_SELECTOR = bytes.fromhex("4e487b71")  # Panic(uint256)
# How nodes say that a nonce was taken meanwhile (by a sender not on this machine, whose
# transactions the nonce cursor does not know). Ganache says the last when a transaction with
# that nonce is being mined right now.
NONCE_TAKEN = (
    "nonce too low",
    "correct nonce",
    "replacement transaction underpriced",
    "mining has already started",
)


@functools.lru_cache(maxsize=1)
def _ganache_seed() -> bytes:
    """The development mnemonic's seed: 2048 rounds of PBKDF2 (16 ms), so derived once per
    process rather than once per account (the address book names ten of them)."""
    from eth_account.hdaccount import seed_from_mnemonic

    return bytes(seed_from_mnemonic(GANACHE_MNEMONIC, passphrase=""))


@functools.lru_cache(maxsize=64)
def ganache_account(index: int) -> LocalAccount:
    """The local chain's deterministic account `index` (the key Ganache, anvil and Hardhat
    derive from the same mnemonic at m/44'/60'/0'/0/index)."""
    from eth_account.hdaccount import key_from_seed

    account: LocalAccount = Account.from_key(
        key_from_seed(_ganache_seed(), f"m/44'/60'/0'/0/{index}")
    )
    return account


def _dev_account(index: int, chain_id: int | None, named: bool) -> LocalAccount:
    """A deterministic development key; anyone has these, so off a local chain only by name."""
    if not named and chain_id not in LOCAL_CHAIN_IDS:
        raise UserError(
            f"chain {chain_id} is not a local development chain: its deterministic keys are "
            f"public, so pass --account KEYSTORE (or --account dev:{index} to use the public key "
            "anyway)"
        )
    return ganache_account(index)


def load_account(spec: str | None, chain_id: int | None = None) -> LocalAccount:
    """`spec` is an index into the local chain's accounts, `dev:N` for the same key on any chain,
    or a keystore path; without one, BOUNTYTREE_PRIVATE_KEY, else the local chain's account 0.
    The deterministic keys are refused on a chain id that is not a local one unless named."""
    if spec is None or spec == "":
        key = os.environ.get("BOUNTYTREE_PRIVATE_KEY")
        if key:
            try:
                return cast(LocalAccount, Account.from_key(key))
            except Exception as exc:  # malformed hex, wrong length
                raise UserError(
                    f"BOUNTYTREE_PRIVATE_KEY is not a valid private key ({exc})"
                ) from None
        return _dev_account(0, chain_id, named=False)
    if spec.isdigit():
        return _dev_account(int(spec), chain_id, named=False)
    if spec.startswith("dev:") and spec[4:].isdigit():
        return _dev_account(int(spec[4:]), chain_id, named=True)
    path = Path(spec).expanduser()
    if not path.is_file():
        raise UserError(f"--account {spec}: neither an account index nor a keystore file")
    try:
        keystore = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"--account {spec}: not a readable keystore file ({exc})") from None
    password = os.environ.get("BOUNTYTREE_KEYSTORE_PASSWORD")
    if password is None:
        password = getpass.getpass(f"password for {path.name}: ")
    try:
        return cast(LocalAccount, Account.from_key(Account.decrypt(keystore, password)))
    except ValueError:
        raise UserError(f"--account {spec}: wrong keystore password") from None


def connect(rpc: str) -> Web3:
    w3 = Web3(Web3.HTTPProvider(rpc, request_kwargs={"timeout": 60}))
    if not w3.is_connected():
        raise UserError(
            f"cannot reach the chain at {rpc} (is the local chain running? try `bountytree up`)"
        )
    return w3


# ───────────────────────────── revert reasons ─────────────────────────────


def _error_selectors(abi: list[dict[str, Any]]) -> dict[bytes, dict[str, Any]]:
    out = {}
    for item in abi:
        if item.get("type") == "error":
            sig = f"{item['name']}({','.join(i['type'] for i in item['inputs'])})"
            out[keccak(text=sig)[:4]] = item
    return out


def _calling(contract: dict[str, Any], callee_abi: list[dict[str, Any]]) -> dict[str, Any]:
    """A contract's record whose ABI also knows the errors of the contract it calls, which a
    revert there bubbles up through it (PrivateCustody's `register` refused by BountyTree's
    `markCustodied`): the user reads the callee's error, decoded, not an unknown selector."""
    errors = [item for item in callee_abi if item.get("type") == "error"]
    return {**contract, "abi": [*contract["abi"], *errors]}


def revert_bytes(data: Any) -> bytes:
    """The revert data in whatever shape web3 hands it over, as bytes (empty if there is none).

    Ganache and anvil give a hex string (Ganache's eth_estimateGas a dict with it under
    `result`); Hardhat a dict `{"message", "data"}`; some providers nest it once more
    (`{"data": {"data": "0x…"}}`) or keep it under `originalError`; a few prefix the hex with
    "Reverted ".
    """
    for _ in range(4):  # unwrap at most a few dict levels
        if not isinstance(data, dict):
            break
        keys = ("data", "result", "originalError", "error")
        inner = next((data[k] for k in keys if data.get(k) is not None), None)
        if inner is None:
            return b""
        data = inner
    if isinstance(data, bytes | bytearray):
        return bytes(data)
    if isinstance(data, str):
        text = data.strip().removeprefix("Reverted ").strip()
        try:
            return bytes.fromhex(text.removeprefix("0x"))
        except ValueError:
            return b""
    return b""


def describe_revert(abi: list[dict[str, Any]], data: Any) -> str:
    """`WrongStake(expected=10000000000000000, sent=0)` for a custom error's revert data, in any
    of the shapes `revert_bytes` reads; `Error("…")` and `Panic(0x11)` for Solidity's own."""
    raw = revert_bytes(data)
    if len(raw) < 4:
        return "the contract reverted without a reason"
    selector, body = raw[:4], raw[4:]
    codec = Web3().codec
    try:
        if selector == ERROR_SELECTOR:
            return f'Error("{codec.decode(["string"], body)[0]}")'
        if selector == PANIC_SELECTOR:
            return f"Panic(0x{codec.decode(['uint256'], body)[0]:02x})"
        item = _error_selectors(abi).get(selector)
        if item is None:
            return f"the contract reverted (unknown error 0x{selector.hex()})"
        values = codec.decode([i["type"] for i in item["inputs"]], body)
    except Exception:  # truncated or malformed arguments
        return f"the contract reverted (undecodable error 0x{selector.hex()})"
    args = ", ".join(
        f"{i['name'].rstrip('_')}={_show(v, i['type'])}"
        for i, v in zip(item["inputs"], values, strict=False)
    )
    return f"{item['name']}({args})"


def rpc_message(exc: Exception) -> str:
    """The first line of a node's error message, from a Web3RPCError or a plain error."""
    response = getattr(exc, "rpc_response", None)
    if isinstance(response, dict) and isinstance(response.get("error"), dict):
        data: Any = response["error"]
    else:
        data = exc.args[0] if exc.args else exc
    text = str(data.get("message", data)) if isinstance(data, dict) else str(data)
    return text.splitlines()[0] if text else type(exc).__name__


def _rpc_revert(exc: Web3RPCError) -> Any:
    """Revert data a node sent with an error web3 did not classify as a revert, if any."""
    response = getattr(exc, "rpc_response", None)
    if isinstance(response, dict) and isinstance(response.get("error"), dict):
        return response["error"].get("data")
    return None


def simulate(fn: Any, call: dict[str, Any]) -> int:
    """Runs a contract call as `call` would send it (eth_call) and estimates its gas; one line
    with the contract's error, decoded, if it would refuse: nothing is sent either way."""
    try:
        fn.call(call)
        return int(fn.estimate_gas(call))
    except (ContractCustomError, ContractLogicError) as exc:
        reason = describe_revert(fn.contract_abi, exc.data)
        raise UserError(f"refused by the contract: {reason}") from None
    except Web3RPCError as exc:
        reverted = revert_bytes(_rpc_revert(exc))
        if reverted:
            reason = describe_revert(fn.contract_abi, reverted)
            raise UserError(f"refused by the contract: {reason}") from None
        raise UserError(f"the chain refused the call: {rpc_message(exc)}") from None


def why_reverted(
    w3: Web3, call: dict[str, Any], receipt: Any, abi: list[dict[str, Any]], gas_limit: int
) -> str:
    """Why a mined transaction reverted although its simulation passed: out of gas, or the chain
    moved in between (another transaction, the block's time): the call replayed on the state its
    block left names the contract's error."""
    if receipt["gasUsed"] >= gas_limit:
        return f"out of gas (it used its whole limit of {gas_limit:,})"
    try:
        w3.eth.call(cast(Any, call), block_identifier=receipt["blockNumber"])
    except (ContractCustomError, ContractLogicError) as exc:
        return describe_revert(abi, exc.data)
    except Web3RPCError as exc:
        reverted = revert_bytes(_rpc_revert(exc))
        return describe_revert(abi, reverted) if reverted else rpc_message(exc)
    except Exception:  # a node that cannot replay old state
        pass
    return "the state changed between the check and the block"


def decode_record(fn: Any, raw: Any) -> Any:
    """A view call's result with structs as dicts keyed by the ABI's field names (lists of them
    for struct arrays), so nothing unpacks a struct by position."""
    outputs = fn.abi["outputs"]
    if len(outputs) == 1:
        return _named(outputs[0], raw)
    return {o["name"]: _named(o, v) for o, v in zip(outputs, raw, strict=False)}


def _named(item: dict[str, Any], value: Any) -> Any:
    if item["type"] == "tuple":
        return {c["name"]: _named(c, v) for c, v in zip(item["components"], value, strict=False)}
    if item["type"] == "tuple[]":
        return [_named({**item, "type": "tuple"}, v) for v in value]
    return value


def _show(value: Any, abi_type: str) -> str:
    if abi_type == "address":
        return str(Web3.to_checksum_address(value))
    return "0x" + value.hex() if isinstance(value, bytes) else str(value)


# ───────────────────────────── fees and quotes ─────────────────────────────


def eth(wei: int) -> str:
    """Wei as ETH for people: `0.000123` (no exponent, no trailing zeros)."""
    text = f"{Decimal(wei) / Decimal(10**18):.18f}".rstrip("0").rstrip(".")
    return text or "0"


def gwei(wei: int) -> str:
    return f"{Decimal(wei) / Decimal(10**9):.4g}"


@dataclass(frozen=True)
class Fees:
    """What a transaction offers per unit of gas. On an EIP-1559 chain it pays the block's base
    fee plus the tip, never more than `max_fee`; on a legacy chain `max_fee` is the gas price."""

    max_fee: int
    tip: int
    likely: int  # what a unit of gas will most likely cost (next base fee + tip)
    eip1559: bool

    def tx_fields(self) -> dict[str, int]:
        if self.eip1559:
            return {"maxFeePerGas": self.max_fee, "maxPriorityFeePerGas": self.tip}
        return {"gasPrice": self.max_fee}


@dataclass(frozen=True)
class Quote:
    """What one transaction will cost, shown before it is sent."""

    action: str
    chain_id: int
    sender: str
    value: int
    gas: int  # the estimate
    gas_limit: int
    fees: Fees

    @property
    def likely_fee(self) -> int:
        return self.gas * self.fees.likely

    @property
    def max_fee(self) -> int:
        return self.gas_limit * self.fees.max_fee

    def __str__(self) -> str:
        sends = f"sends {eth(self.value)} ETH, " if self.value else ""
        return (
            f"{self.action} on chain {self.chain_id} from {self.sender}: {sends}gas ~{self.gas:,} "
            f"at ~{gwei(self.fees.likely)} gwei = about {eth(self.likely_fee)} ETH in fees "
            f"(at most {eth(self.max_fee)} ETH: limit {self.gas_limit:,} × "
            f"{gwei(self.fees.max_fee)} gwei)"
        )


def ask_on_terminal(quote: Quote) -> bool:
    """The CLI's confirmation: the quote and a question on stderr, the answer from a terminal.
    Without a terminal there is nobody to ask: refused in one line (pass --yes)."""
    if not sys.stdin or not sys.stdin.isatty():
        raise UserError(
            f"not sending {quote.action} on chain {quote.chain_id} unconfirmed: stdin is not a "
            "terminal (pass --yes to send without asking)"
        )
    print(f"{quote}\nsend it? [y/N] ", end="", file=sys.stderr, flush=True)
    return sys.stdin.readline().strip().lower() in ("y", "yes")


@dataclass
class Sent:
    """What a command prints about a transaction."""

    tx_hash: str
    gas_used: int
    receipt: Any

    @property
    def fee(self) -> int:
        """What the transaction paid for gas, in wei."""
        price = self.receipt.get("effectiveGasPrice") or 0
        return int(self.gas_used) * int(price)

    def __str__(self) -> str:
        return f"tx {self.tx_hash} gas {self.gas_used} fee {eth(self.fee)} ETH"


@dataclass(frozen=True)
class Deployed:
    """A contract this client deployed: its address and the transaction that created it."""

    address: str
    sent: Sent


class NonceCursor:
    """The next nonce this machine gives an account on a chain, kept in the home folder
    (`nonces/<chain id>-<address>.json`: the next nonce and the hash of the last transaction
    handed to the node) and read and written only under the account's nonce lock, by every
    thread and process of this machine.

    Why: a node's `pending` count does not always include a transaction it already holds.
    Ganache counts only mined transactions, so a send made while the previous one waits for its
    block or is being mined would take the same nonce ("mining has already started", or a
    replacement). The cursor is trusted above the node's count only while the node still knows
    the last transaction it records; a node that forgot it (restarted, a new chain on the same
    port) is believed instead. Transactions sent from another machine are not in the cursor:
    the node's count covers those that it counts, and a nonce refused as taken moves on by one.
    """

    AHEAD = 64  # transactions of this machine a node may hold uncounted, at most

    def __init__(self, home: Path, chain_id: int, address: str):
        self.path = Path(home) / "nonces" / f"{chain_id}-{address}.json"

    def _read(self) -> tuple[int, bytes] | None:
        try:
            data = json.loads(self.path.read_text())
            last = bytes.fromhex(data["last"])
            return (int(data["next"]), last) if len(last) == 32 else None
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None

    def next_nonce(self, node_pending: int, known: Callable[[bytes, int], bool]) -> int:
        """The cursor, when it is ahead of the node by at most AHEAD and the node still holds
        the transaction it names, from this account with the nonce before it; else the node's
        count (a cursor file that is damaged, forged or left from another chain changes
        nothing)."""
        kept = self._read()
        if (
            kept is not None
            and node_pending < kept[0] <= node_pending + self.AHEAD
            and known(kept[1], kept[0] - 1)
        ):
            return kept[0]
        return node_pending

    def handed(self, nonce: int, tx_hash: bytes) -> None:
        """Records that the node has the transaction with `nonce` (`tx_hash`)."""
        with contextlib.suppress(OSError):  # a read-only home: the node's count remains
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.path, {"next": nonce + 1, "last": tx_hash.hex()})


# The threads' side of `Chain._lock`: nonce choice, and turns on a local chain.
_NONCE_THREADS = threading.Lock()
_LOCAL_THREADS = threading.Lock()


class Chain:
    """One account on one chain with the bountytree contracts of that chain's deployment."""

    def __init__(
        self,
        settings: Settings,
        account: LocalAccount | None = None,
        *,
        need_contracts: bool = True,
        confirm: Callable[[Quote], bool] = ask_on_terminal,
    ):
        self.settings = settings
        self.w3 = connect(settings.rpc)
        self.chain_id = self.w3.eth.chain_id
        self.account = account or load_account(settings.account, self.chain_id)
        self.confirm = confirm
        self.deployment = (
            load_deployment(settings.deployments, self.chain_id) if need_contracts else None
        )
        if self.deployment:
            self.first_block = self.deployment["block"]  # where event queries start
            self.tree = self.w3.eth.contract(**self.deployment["BountyTree"])
            self.reputation = self.w3.eth.contract(**self.deployment["Reputation"])
            custody = self.deployment.get("PrivateCustody")
            self.custody = (
                self.w3.eth.contract(**_calling(custody, self.tree.abi)) if custody else None
            )

    @property
    def address(self) -> str:
        return str(self.account.address)

    @property
    def local(self) -> bool:
        """A development chain: its keys are public and its ether is play money."""
        return self.chain_id in LOCAL_CHAIN_IDS

    @property
    def confirmations(self) -> int:
        """Blocks a transaction must be buried under (its own included) before it counts."""
        chosen = self.settings.confirmations
        if chosen is not None:
            return max(1, chosen)
        return CONFIRMATIONS_LOCAL if self.local else CONFIRMATIONS_PUBLIC

    def send(self, fn: Any, value: int = 0, action: str | None = None) -> Sent:
        """Simulate, quote, confirm, sign, send and wait for a contract call; one-line UserError
        if the contract refuses it (nothing is sent then)."""
        with self._local_turn():
            tx_hash, quote, built = self._broadcast_call(fn, value, action)
        call = {k: built[k] for k in ("from", "to", "data", "value") if k in built}
        abi = fn.contract_abi
        return self._await(
            tx_hash,
            quote,
            lambda receipt: (
                "reverted on-chain: " + why_reverted(self.w3, call, receipt, abi, quote.gas_limit)
            ),
        )

    def _broadcast_call(
        self, fn: Any, value: int, action: str | None
    ) -> tuple[bytes, Quote, dict[str, Any]]:
        tx: dict[str, Any] = {"from": self.address, "value": value}
        self._check_funds(value, 0)
        gas = simulate(fn, tx)
        quote = self.quote(action or fn.fn_name, gas, value)
        built = dict(fn.build_transaction({**tx, "gas": quote.gas_limit, **quote.fees.tx_fields()}))
        return self._broadcast(dict(built), quote), quote, built

    def transfer(self, to: str, value: int) -> Sent:
        """Sends `value` wei to `to`: a plain transfer, quoted, confirmed and followed like any
        send (funding a second account of one's own, for instance)."""
        with self._local_turn():
            quote = self.quote("transfer", 21_000, value)
            tx = {"from": self.address, "to": to, "value": value, "gas": quote.gas_limit}
            tx_hash = self._broadcast({**tx, **quote.fees.tx_fields()}, quote)
        return self._await(tx_hash, quote)

    def deploy(self, artifact: dict[str, Any], *args: Any, name: str = "contract") -> Deployed:
        """Deploys `artifact` (ABI and bytecode) with constructor `args`, quoted like a send."""
        with self._local_turn():
            tx_hash, quote = self._broadcast_creation(artifact, args, name)
        sent = self._await(tx_hash, quote)
        return Deployed(str(sent.receipt["contractAddress"]), sent)

    def _broadcast_creation(
        self, artifact: dict[str, Any], args: tuple[Any, ...], name: str
    ) -> tuple[bytes, Quote]:
        factory = self.w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
        ctor = factory.constructor(*args)
        tx: dict[str, Any] = {"from": self.address}
        try:
            gas = ctor.estimate_gas(cast(TxParams, tx))
        except (ContractCustomError, ContractLogicError) as exc:
            reason = describe_revert(artifact["abi"], exc.data)
            raise UserError(f"deploying {name} was refused: {reason}") from None
        except Web3RPCError as exc:
            raise UserError(f"the chain refused to deploy {name}: {rpc_message(exc)}") from None
        quote = self.quote(f"deploy {name}", gas, 0)
        built = ctor.build_transaction(
            cast(TxParams, {**tx, "gas": quote.gas_limit, **quote.fees.tx_fields()})
        )
        return self._broadcast(dict(built), quote), quote

    def fees(self) -> Fees:
        """Fees as the chain prices them now: EIP-1559 (next block's base fee from
        eth_feeHistory, the tip from eth_maxPriorityFeePerGas) when the latest block has a base
        fee, the legacy gas price otherwise. `Settings.max_fee_gwei` caps what is offered."""
        latest = self.w3.eth.get_block("latest")
        base = latest.get("baseFeePerGas")
        if base is None:
            price = int(self.w3.eth.gas_price)
            fees = Fees(price, 0, price, eip1559=False)
        else:
            next_base = int(base)
            with contextlib.suppress(Exception):  # a node without eth_feeHistory
                history = self.w3.eth.fee_history(1, "latest", [50])
                next_base = int(history["baseFeePerGas"][-1])
            try:
                tip = int(self.w3.eth.max_priority_fee)
            except Exception:  # a node without eth_maxPriorityFeePerGas
                tip = 10**9
            # Twice the base fee: room for six full blocks in a row before it is outbid.
            fees = Fees(2 * next_base + tip, tip, next_base + tip, eip1559=True)
        return self._capped(fees)

    def _capped(self, fees: Fees) -> Fees:
        cap_gwei = self.settings.max_fee_gwei
        if cap_gwei is None:
            return fees
        cap = int(Decimal(str(cap_gwei)) * 10**9)
        if fees.likely > cap:
            raise UserError(
                f"gas costs about {gwei(fees.likely)} gwei on chain {self.chain_id} now, above "
                f"--max-fee {cap_gwei} gwei: nothing sent (try later, or raise --max-fee)"
            )
        if fees.max_fee <= cap:
            return fees
        return Fees(cap, min(fees.tip, cap), fees.likely, fees.eip1559)

    def quote(self, action: str, gas: int, value: int) -> Quote:
        fees = self.fees()
        quote = Quote(
            action,
            self.chain_id,
            self.address,
            value,
            int(gas),
            int(gas * GAS_MARGIN) + GAS_PAD,
            fees,
        )
        self._check_funds(value, quote.max_fee)
        return quote

    def wait_for_block_after(self, block: int, timeout_s: float = 300, poll_s: float = 0.2) -> None:
        """Returns once the chain has a block after `block` (a reveal must follow its commit).

        Public chains produce blocks on their own; the local chains `bountytree up` and the tests
        start have a block clock (`localchain.BlockClock`) that does. Nothing here asks a node
        to mine.
        """
        deadline = time.monotonic() + timeout_s
        while self.w3.eth.block_number <= block:
            if time.monotonic() > deadline:
                raise UserError(
                    f"no new block after {block} in {timeout_s:.0f} s: a reveal needs a block "
                    "after its commit. A local chain that mines only on transactions needs a "
                    "block clock: start it with `bountytree up` (or `up --chain-only`)"
                )
            time.sleep(poll_s)

    def _broadcast(self, tx: dict[str, Any], quote: Quote) -> bytes:
        """Confirms off a local chain, then signs and hands the transaction to the node."""
        if not self.local:
            if self.settings.yes:
                print(quote, file=sys.stderr, flush=True)
            elif not self.confirm(quote):
                raise UserError(f"not sent: {quote.action} was not confirmed")
        tx["chainId"] = self.chain_id
        with self._lock(_NONCE_THREADS, f"{self.chain_id}-{self.address}"):
            return self._sign_and_broadcast(tx)

    def _sign_and_broadcast(self, tx: dict[str, Any]) -> bytes:
        """Signs with the account's next nonce and hands the transaction to the node (under the
        nonce lock). The next nonce is the larger of the node's `pending` count and this
        machine's cursor (`NonceCursor`), so a nonce this machine handed to the node is never
        signed again, even while the node does not count it yet. A nonce taken by a sender the
        cursor does not know (another machine) is retried with the next one."""
        cursor = NonceCursor(self.settings.home, self.chain_id, self.address)
        node = self.w3.eth.get_transaction_count(cast(Any, self.address), "pending")
        nonce = cursor.next_nonce(node, self._known)
        for attempt in range(4):
            tx["nonce"] = nonce
            signed = self.account.sign_transaction(cast(Any, tx))
            try:
                sent = bytes(self.w3.eth.send_raw_transaction(signed.raw_transaction))
            except (Web3RPCError, ValueError) as exc:
                message = rpc_message(exc).lower()
                if "already known" in message or (
                    any(phrase in message for phrase in NONCE_TAKEN)
                    and self._settled_as_ours(bytes(signed.hash), nonce)
                ):
                    # This very transaction is in the pool or a block. Ganache can answer "mining
                    # has already started" for the transaction it is mining, ours: sending it
                    # again under the next nonce would send the call twice (a second reveal
                    # then reverted as UnknownCommitment).
                    sent = bytes(signed.hash)
                elif attempt < 3 and any(phrase in message for phrase in NONCE_TAKEN):
                    node = self.w3.eth.get_transaction_count(cast(Any, self.address), "pending")
                    nonce = max(nonce + 1, node)
                    continue
                else:
                    raise UserError(
                        f"the chain refused the transaction: {rpc_message(exc)}"
                    ) from None
            cursor.handed(nonce, sent)
            return sent
        raise UserError(
            f"the chain refused four nonces of {self.address} as taken, up to {nonce}: is "
            "another machine sending from this account?"
        )

    def _settled_as_ours(self, tx_hash: bytes, nonce: int, wait_s: float = 10.0) -> bool:
        """After a node refused `nonce` as taken: whether the transaction holding it is ours.
        While the node is still mining that nonce it may not show the transaction yet, so this
        waits (at most `wait_s`) until either ours is known or the nonce is mined, then decides;
        a nonce mined by another transaction is not ours."""
        deadline = time.monotonic() + wait_s
        while True:
            if self._known(tx_hash, nonce):
                return True
            try:
                mined = self.w3.eth.get_transaction_count(cast(Any, self.address), "latest") > nonce
            except Exception:
                mined = False
            if mined or time.monotonic() > deadline:
                return self._known(tx_hash, nonce)
            time.sleep(0.1)

    def _known(self, tx_hash: bytes, nonce: int) -> bool:
        """Whether the node holds (in its pool or a block) this account's transaction `tx_hash`
        with `nonce`; anything else, an error included, is no."""
        try:
            tx = self.w3.eth.get_transaction(cast(Any, tx_hash))
        except Exception:  # not found, or a node that cannot say: do not trust the cursor
            return False
        return str(tx.get("from", "")).lower() == self.address.lower() and tx.get("nonce") == nonce

    @contextlib.contextmanager
    def _local_turn(self) -> Iterator[None]:
        """On a local chain, one transaction at a time from this machine, simulation to
        broadcast: Ganache 7.9 can leave an eth_estimateGas unanswered until the client's
        timeout when it races another transaction. A local send takes milliseconds; public
        chains are not serialised."""
        if not self.local:
            yield
            return
        url = urlparse(self.settings.rpc)
        with self._lock(_LOCAL_THREADS, f"{self.chain_id}-{url.hostname}-{url.port}"):
            yield

    @contextlib.contextmanager
    def _lock(self, threads: threading.Lock, name: str) -> Iterator[None]:
        """`threads` for this process's threads, and a file lock under the home folder for
        the other processes of this machine. The nonce lock is held from choosing a nonce until
        the node has the transaction, so two quick sends from one account never pick the same
        nonce."""
        folder = self.settings.home / "locks"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            handle = open(folder / f"{name}.lock", "a")  # noqa: SIM115
        except OSError:
            handle = None  # a read-only home: the node's pending count and the retry remain
        with threads:
            try:
                if handle is not None:
                    fcntl.flock(handle, fcntl.LOCK_EX)
                yield
            finally:
                if handle is not None:
                    handle.close()  # releases the lock

    def _await(self, tx_hash: bytes, quote: Quote, why: Callable[[Any], str] | None = None) -> Sent:
        """`follow` for a transaction this client signed and sent."""
        return self.follow(
            "0x" + tx_hash.hex(),
            f" ({quote.action})",
            why or (lambda _receipt: "reverted on-chain (state changed between check and send)"),
            "it may still be: look it up before sending it again",
        )

    def follow(
        self,
        tx_hash: str,
        label: str,
        reverted: Callable[[Any], str],
        unmined_hint: str,
    ) -> Sent:
        """The receipt, once the transaction has `confirmations` blocks (its own included) and
        is still in the chain. One that reverted on-chain is a UserError saying `reverted(receipt)`;
        one not mined in time says `unmined_hint`, what to look at before sending again."""
        shown = f"transaction {tx_hash}{label}"
        timeout = RECEIPT_TIMEOUT_S[self.local]
        deadline = time.monotonic() + timeout
        if not self.local:
            # Said before the first wait, not after it: whether a block already came by then is
            # a race, and the user should know what the command waits for either way.
            print(
                f"waiting for {self.confirmations} confirmations of {tx_hash}",
                file=sys.stderr,
                flush=True,
            )
        while True:
            try:
                receipt = self.w3.eth.wait_for_transaction_receipt(
                    cast(Any, tx_hash), timeout=max(1.0, deadline - time.monotonic())
                )
            except TimeExhausted:
                raise UserError(
                    f"{shown} was not mined within {timeout:.0f} s; {unmined_hint}"
                ) from None
            if receipt["status"] != 1:
                raise UserError(f"{shown} {reverted(receipt)}")
            buried = self.w3.eth.block_number - receipt["blockNumber"] + 1
            if buried >= self.confirmations:
                again = self.w3.eth.get_transaction_receipt(cast(Any, tx_hash))
                if again is not None and again["blockHash"] == receipt["blockHash"]:
                    return Sent(tx_hash, receipt["gasUsed"], receipt)
                continue  # reorganised away: wait for it to be mined again
            if time.monotonic() > deadline:
                raise UserError(
                    f"{shown} has {buried} of {self.confirmations} confirmations "
                    f"after {timeout:.0f} s"
                )
            time.sleep(0.2 if self.local else 2.0)

    def _check_funds(self, value: int, fee: int) -> None:
        balance = self.w3.eth.get_balance(cast(Any, self.address))
        if balance < value + fee:
            need = eth(value + fee)
            raise UserError(
                f"insufficient funds: {self.address} has {eth(balance)} ETH, "
                f"needs {'up to ' if fee else ''}{need} ETH"
            )


# ───────────────────────────── deployments ─────────────────────────────


def deployment_path(folder: Path, chain_id: int) -> Path:
    return Path(folder) / f"{chain_id}.json"


def load_deployment(folder: Path, chain_id: int) -> dict[str, Any]:
    path = deployment_path(folder, chain_id)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(
            f"nothing deployed on chain {chain_id} ({path} missing): run `bountytree deploy`"
        ) from None
    except ValueError as exc:
        raise UserError(f"{path} is not valid JSON ({exc})") from None
    try:
        contracts = {
            name: {"address": data[name]["address"], "abi": data[name]["abi"]}
            for name in (*CONTRACTS, *(n for n in OPTIONAL_CONTRACTS if n in data))
        }
        return {**contracts, "block": int(data.get("block", 0))}
    except (KeyError, TypeError):
        raise UserError(f"{path} lacks the address and ABI of {', '.join(CONTRACTS)}") from None


def load_artifact(build: Path, name: str) -> dict[str, Any]:
    path = Path(build) / f"{name}.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path} missing: compile the contracts first (`make setup`)") from None
    return {"abi": data["abi"], "bytecode": data["bytecode"]}


def link(artifact: dict[str, Any], libraries: dict[str, str]) -> dict[str, Any]:
    """`artifact` with each library's placeholder in its bytecode replaced by its address.

    brownie writes a linked library's place as `__Name___…` (40 characters, the width of an
    address); an artifact that still needs a library not given cannot be deployed."""
    bytecode = artifact["bytecode"]
    for name, address in libraries.items():
        bytecode = bytecode.replace(f"__{name}".ljust(40, "_"), address[2:].lower())
    if "__" in bytecode:
        raise UserError("the contract needs a library this deployment does not link")
    return {**artifact, "bytecode": bytecode}


def deploy(
    settings: Settings,
    account: LocalAccount | None = None,
    oracle: str | None = None,
    *,
    confirm: Callable[[Quote], bool] = ask_on_terminal,
) -> dict[str, Any]:
    """The one deployment path (`bountytree deploy`, `bountytree up`, brownie's
    scripts/deploy.py): deploys Reputation, the Payouts library (linked into BountyTree, whose
    payout rule would not fit EIP-170's code size otherwise) and BountyTree, binds the one to the other, deploys
    PrivateCustody on BountyTree (with CUSTODY_ROLE, which marks a task private at registration
    and records the scores both of its custodians attest), and writes the deployment file. The deployer is admin; `oracle`
    (default: the deployer) gets ORACLE_ROLE. Returns the record written and the six
    transactions."""
    chain = Chain(settings, account, need_contracts=False, confirm=confirm)
    reputation_art = load_artifact(settings.build, "Reputation")
    payouts_art = load_artifact(settings.build, "Payouts")
    tree_art = load_artifact(settings.build, "BountyTree")
    custody_art = load_artifact(settings.build, "PrivateCustody")
    if oracle is not None and not Web3.is_address(oracle):
        raise UserError(f"--oracle {oracle}: not an address")
    oracle = Web3.to_checksum_address(oracle) if oracle else chain.address
    rep = chain.deploy(reputation_art, name="Reputation")
    payouts = chain.deploy(payouts_art, name="Payouts")
    tree_art = link(tree_art, {"Payouts": payouts.address})
    tree = chain.deploy(tree_art, rep.address, chain.address, oracle, name="BountyTree")
    reputation = chain.w3.eth.contract(address=cast(Any, rep.address), abi=reputation_art["abi"])
    bind_tx = chain.send(reputation.functions.bindWriter(tree.address), action="bindWriter")
    custody = chain.deploy(custody_art, tree.address, name="PrivateCustody")
    # PrivateCustody marks private tasks and records a private node's score once both
    # custodians attest the same one
    tree_contract = chain.w3.eth.contract(address=cast(Any, tree.address), abi=tree_art["abi"])
    grant_tx = chain.send(
        tree_contract.functions.grantRole(
            tree_contract.functions.CUSTODY_ROLE().call(), custody.address
        ),
        action="grantRole CUSTODY_ROLE to PrivateCustody",
    )
    record = {
        "chainId": chain.chain_id,
        "deployer": chain.address,
        "oracle": oracle,
        "block": tree.sent.receipt["blockNumber"],
        "Reputation": {"address": rep.address, "abi": reputation_art["abi"]},
        "Payouts": {"address": payouts.address},
        "BountyTree": {"address": tree.address, "abi": tree_art["abi"]},
        "PrivateCustody": {"address": custody.address, "abi": custody_art["abi"]},
    }
    atomic_write_json(deployment_path(settings.deployments, chain.chain_id), record)
    return {
        "record": record,
        "txs": {
            "Reputation": rep.sent,
            "Payouts": payouts.sent,
            "BountyTree": tree.sent,
            "bindWriter": bind_tx,
            "PrivateCustody": custody.sent,
            "grantRole": grant_tx,
        },
    }


__all__ = [
    "LOCAL_CHAIN_IDS",
    "Chain",
    "Deployed",
    "Fees",
    "Quote",
    "Sent",
    "connect",
    "decode_record",
    "deploy",
    "describe_revert",
    "ganache_account",
    "load_account",
    "load_deployment",
    "revert_bytes",
    "rpc_message",
]
