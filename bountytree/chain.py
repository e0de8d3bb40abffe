"""The chain client: accounts, the deployed contracts, and transactions that fail in one line.

Every transaction is simulated (eth_call) before it is signed, so a call the contract would
refuse never leaves this machine: the user sees the contract's custom error, decoded, and no
gas is spent. Contracts are found through `deployments/<chainId>.json` only.
"""

from __future__ import annotations

import contextlib
import functools
import getpass
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from web3 import Web3
from web3.exceptions import ContractCustomError, ContractLogicError, Web3RPCError

from .config import Settings
from .errors import UserError
from .files import atomic_write_json

# `ganache --wallet.deterministic` derives its accounts from this phrase (m/44'/60'/0'/0/i).
GANACHE_MNEMONIC = "myth like bonus scare over problem client lizard pioneer submit female collect"
# Chain ids of local development chains (Ganache, anvil/Hardhat): the only ones where the public
# deterministic keys above are used without being named (`--account dev:N`).
LOCAL_CHAIN_IDS = frozenset({1337, 31337})
CONTRACTS = ("Reputation", "BountyTree")


@functools.lru_cache(maxsize=64)
def ganache_account(index: int) -> LocalAccount:
    """The local chain's deterministic account `index`."""
    Account.enable_unaudited_hdwallet_features()
    return Account.from_mnemonic(GANACHE_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")


def _dev_account(index: int, chain_id: int | None, named: bool) -> LocalAccount:
    """A deterministic development key; anyone has these, so off a local chain only by name."""
    if not named and chain_id not in LOCAL_CHAIN_IDS:
        raise UserError(
            f"chain {chain_id} is not a local development chain: its deterministic keys are public, so "
            f"pass --account KEYSTORE (or --account dev:{index} to use the public key anyway)"
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
                return Account.from_key(key)
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
        return Account.from_key(Account.decrypt(keystore, password))
    except ValueError:
        raise UserError(f"--account {spec}: wrong keystore password") from None


def connect(rpc: str) -> Web3:
    w3 = Web3(Web3.HTTPProvider(rpc, request_kwargs={"timeout": 60}))
    if not w3.is_connected():
        raise UserError(
            f"cannot reach the chain at {rpc} (is Ganache running? try `bountytree up`)"
        )
    return w3


def _error_selectors(abi: list[dict]) -> dict[bytes, dict]:
    out = {}
    for item in abi:
        if item.get("type") == "error":
            sig = f"{item['name']}({','.join(i['type'] for i in item['inputs'])})"
            out[keccak(text=sig)[:4]] = item
    return out


def describe_revert(abi: list[dict], data: Any) -> str:
    """`WrongStake(expected=10000000000000000, sent=0)` for a custom error's revert data."""
    if isinstance(data, str):
        data = bytes.fromhex(data.removeprefix("0x"))
    if not data or len(data) < 4:
        return "the contract reverted without a reason"
    item = _error_selectors(abi).get(bytes(data[:4]))
    if item is None:
        return f"the contract reverted (unknown error 0x{bytes(data[:4]).hex()})"
    values = Web3().codec.decode([i["type"] for i in item["inputs"]], bytes(data[4:]))
    args = ", ".join(
        f"{i['name'].rstrip('_')}={_show(v, i['type'])}"
        for i, v in zip(item["inputs"], values, strict=False)
    )
    return f"{item['name']}({args})"


def decode_record(fn: Any, raw: Any) -> Any:
    """A view call's result with structs as dicts keyed by the ABI's field names (lists of them
    for struct arrays), so nothing unpacks a struct by position."""
    outputs = fn.abi["outputs"]
    if len(outputs) == 1:
        return _named(outputs[0], raw)
    return {o["name"]: _named(o, v) for o, v in zip(outputs, raw, strict=False)}


def _named(item: dict, value: Any) -> Any:
    if item["type"] == "tuple":
        return {c["name"]: _named(c, v) for c, v in zip(item["components"], value, strict=False)}
    if item["type"] == "tuple[]":
        return [_named({**item, "type": "tuple"}, v) for v in value]
    return value


def _show(value: Any, abi_type: str) -> str:
    if abi_type == "address":
        return Web3.to_checksum_address(value)
    return "0x" + value.hex() if isinstance(value, bytes) else str(value)


@dataclass
class Sent:
    """What a command prints about a transaction."""

    tx_hash: str
    gas_used: int
    receipt: Any

    def __str__(self) -> str:
        return f"tx {self.tx_hash} gas {self.gas_used}"


class Chain:
    """One account on one chain with the bountytree contracts of that chain's deployment."""

    def __init__(
        self,
        settings: Settings,
        account: LocalAccount | None = None,
        *,
        need_contracts: bool = True,
    ):
        self.settings = settings
        self.w3 = connect(settings.rpc)
        self.chain_id = self.w3.eth.chain_id
        self.account = account or load_account(settings.account, self.chain_id)
        self.deployment = (
            load_deployment(settings.deployments, self.chain_id) if need_contracts else None
        )
        if self.deployment:
            self.first_block = self.deployment["block"]  # where event queries start
            self.tree = self.w3.eth.contract(**self.deployment["BountyTree"])
            self.reputation = self.w3.eth.contract(**self.deployment["Reputation"])

    @property
    def address(self) -> str:
        return self.account.address

    def send(self, fn, value: int = 0) -> Sent:
        """Simulate, sign, send and wait for a contract call; one-line UserError if refused."""
        tx = {"from": self.address, "value": value}
        abi = fn.contract_abi
        self._check_funds(value, 0)
        try:
            fn.call(tx)
            gas = fn.estimate_gas(tx)
        except (ContractCustomError, ContractLogicError) as exc:
            raise UserError(f"refused by the contract: {describe_revert(abi, exc.data)}") from None
        except Web3RPCError as exc:
            raise UserError(f"the chain refused the call: {_rpc_message(exc)}") from None
        return self._sign_and_send(fn.build_transaction({**tx, **self._fees(gas, value)}))

    def wait_for_block_after(self, block: int, timeout_s: float = 300, poll_s: float = 0.2) -> None:
        """Returns once the chain has a block after `block` (a reveal must follow its commit).

        A dev chain that mines only on transactions (Ganache) would never get there on its own;
        it is asked once to mine an empty block (`evm_mine`), which other nodes refuse harmlessly.
        """
        deadline = time.monotonic() + timeout_s
        asked = False
        while self.w3.eth.block_number <= block:
            if time.monotonic() > deadline:
                raise UserError(
                    f"no new block after {block} in {timeout_s:.0f}s; is the chain producing blocks?"
                )
            if not asked:
                asked = True
                with contextlib.suppress(Exception):
                    self.w3.provider.make_request("evm_mine", [])
                continue
            time.sleep(poll_s)

    def deploy(self, artifact: dict, *args) -> tuple[str, Sent]:
        factory = self.w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
        ctor = factory.constructor(*args)
        gas = ctor.estimate_gas({"from": self.address})
        sent = self._sign_and_send(
            ctor.build_transaction({"from": self.address, **self._fees(gas, 0)})
        )
        return sent.receipt["contractAddress"], sent

    def _fees(self, gas: int, value: int) -> dict:
        gas = int(gas * 1.2) + 10_000
        price = max(self.w3.eth.gas_price, 10**9)
        self._check_funds(value, gas * price)
        return {
            "gas": gas,
            "gasPrice": price,
            "nonce": self.w3.eth.get_transaction_count(self.address, "pending"),
            "chainId": self.chain_id,
        }

    def _check_funds(self, value: int, fee: int) -> None:
        balance = self.w3.eth.get_balance(self.address)
        if balance < value + fee:
            need = Web3.from_wei(value + fee, "ether")
            raise UserError(
                f"insufficient funds: {self.address} has {Web3.from_wei(balance, 'ether')} ETH, "
                f"needs {'about ' if fee else ''}{need} ETH"
            )

    def _sign_and_send(self, tx: dict) -> Sent:
        signed = self.account.sign_transaction(tx)
        tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=120)
        if receipt["status"] != 1:
            raise UserError(
                f"transaction {tx_hash.hex()} reverted on-chain (state changed between check and send)"
            )
        return Sent("0x" + bytes(tx_hash).hex().removeprefix("0x"), receipt["gasUsed"], receipt)


def _rpc_message(exc: Exception) -> str:
    data = exc.args[0] if exc.args else exc
    text = data.get("message", str(data)) if isinstance(data, dict) else str(data)
    return text.splitlines()[0]


def deployment_path(folder: Path, chain_id: int) -> Path:
    return Path(folder) / f"{chain_id}.json"


def load_deployment(folder: Path, chain_id: int) -> dict:
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
            name: {"address": data[name]["address"], "abi": data[name]["abi"]} for name in CONTRACTS
        }
        return {**contracts, "block": int(data.get("block", 0))}
    except (KeyError, TypeError):
        raise UserError(f"{path} lacks the address and ABI of {', '.join(CONTRACTS)}") from None


def load_artifact(build: Path, name: str) -> dict:
    path = Path(build) / f"{name}.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path} missing: compile the contracts first (`make setup`)") from None
    return {"abi": data["abi"], "bytecode": data["bytecode"]}


def deploy(
    settings: Settings, account: LocalAccount | None = None, oracle: str | None = None
) -> dict:
    """Deploys Reputation and BountyTree, binds the one to the other, and writes the
    deployment file. The deployer is admin; `oracle` (default: the deployer) gets ORACLE_ROLE."""
    chain = Chain(settings, account, need_contracts=False)
    reputation_art = load_artifact(settings.build, "Reputation")
    tree_art = load_artifact(settings.build, "BountyTree")
    oracle = Web3.to_checksum_address(oracle) if oracle else chain.address
    rep_address, rep_tx = chain.deploy(reputation_art)
    tree_address, tree_tx = chain.deploy(tree_art, rep_address, chain.address, oracle)
    reputation = chain.w3.eth.contract(address=rep_address, abi=reputation_art["abi"])
    bind_tx = chain.send(reputation.functions.bindWriter(tree_address))
    record = {
        "chainId": chain.chain_id,
        "deployer": chain.address,
        "oracle": oracle,
        "block": tree_tx.receipt["blockNumber"],
        "Reputation": {"address": rep_address, "abi": reputation_art["abi"]},
        "BountyTree": {"address": tree_address, "abi": tree_art["abi"]},
    }
    atomic_write_json(deployment_path(settings.deployments, chain.chain_id), record)
    return {
        "record": record,
        "txs": {"Reputation": rep_tx, "BountyTree": tree_tx, "bindWriter": bind_tx},
    }


__all__ = [
    "LOCAL_CHAIN_IDS",
    "Chain",
    "Sent",
    "connect",
    "decode_record",
    "deploy",
    "describe_revert",
    "ganache_account",
    "load_account",
    "load_deployment",
]
