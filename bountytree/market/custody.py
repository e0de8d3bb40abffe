"""The custody of private tasks on-chain (contracts/PrivateCustody.sol): who holds a task's
models as secret shares, their commitments to each share, and the hand-over of the winner.

`Custody(market)` acts as the market's account (sponsor, custodian, dealer or anyone); every
call is simulated first, so a refusal is a one-line error and nothing is sent. docs/
private-models.md says what each party holds and why.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_abi import encode as abi_encode
from web3 import Web3

from bountytree.chain.client import Sent, decode_record
from bountytree.errors import UserError
from bountytree.models.datasets import Dataset, check_against, load_file
from bountytree.private import sealing
from bountytree.private.ring import RingError
from bountytree.private.rows import (
    PrivateNode,
    node_context,
    seal_rows,
    validation_context,
    validation_seed,
)
from bountytree.storage.cid import bytes32_to_cid, cid_to_bytes32
from bountytree.storage.store import cid_of

from . import validation as validation_files
from .actions import Market
from .records import Submitted

# The custody `bountytree up --private-models` runs on a local chain: custodians and dealer as
# these development accounts, their key files under the home folder.
LOCAL_PARTIES = (10, 11, 12)


def local_key_file(home: Path, account: int) -> Path:
    return Path(home) / "custody" / f"dev-{account}.key"


PARTIES = ("custodian 0", "custodian 1", "dealer")
# The hand-over window PrivateCustody accepts (its MIN_WINDOW and MAX_WINDOW).
WINDOW_RANGE_S = (3600, 30 * 86400)


@dataclass(frozen=True)
class CustodyTerms:
    """What a sponsor names to make its task private (`Custody.register`), checked."""

    custodians: tuple[str, str]
    dealer: str
    sponsor_key: bytes  # the sponsor's X25519 public key: the winner's shares are sealed to it
    stake: int  # wei each of the three stakes
    fee: int  # wei paid now, to the three in thirds
    handover_window: int  # seconds


def custody_terms(
    custodians: tuple[str, str], dealer: str, key_file: Path, stake: int, fee: int, window_s: int
) -> CustodyTerms:
    """The terms of a private task, checked before anything is sent: three different accounts,
    the sponsor's own key file (only its public key leaves it), a window the contract takes.
    `task create --private-models` and the app's form both come here."""
    named = tuple(
        _address(a.strip(), what) for a, what in zip((*custodians, dealer), PARTIES, strict=True)
    )
    if len({a.lower() for a in named}) != 3:
        raise UserError("the two custodians and the dealer must be three different accounts")
    low, high = WINDOW_RANGE_S
    if not low <= window_s <= high:
        raise UserError(f"hand-over window of {window_s} s: from 1h to 30d")
    key = sealing.public_key(sealing.read_private_key(Path(key_file)))
    return CustodyTerms((named[0], named[1]), named[2], key, stake, fee, window_s)


ZERO = b"\x00" * 32
SCORE, REJECT = 0, 1  # what an attestation says (IPrivateCustody.attest's kind)


@dataclass(frozen=True)
class CustodyView:
    """A private task's custody as the contract holds it."""

    task_id: int
    custodians: tuple[str, str]
    dealer: str
    stake: int
    fee: int
    handover_window: int
    accepted: int  # bit i: party i staked (0, 1 custodians, 2 the dealer)
    delivered: int  # bit i: custodian i handed over
    settled: bool
    sponsor_key: bytes
    sealed: tuple[str | None, str | None]  # CIDs of the two sealed hand-overs
    # the three parties' X25519 keys, once accepted: custodians 0 and 1 (what they are sent is
    # sealed to them), then the dealer; every session link authenticates with these
    keys: tuple[bytes | None, bytes | None, bytes | None]
    handover_deadline: int

    @property
    def parties(self) -> tuple[str, str, str]:
        return (*self.custodians, self.dealer)

    @property
    def ready(self) -> bool:
        """All three have accepted: nodes can be trained and scored."""
        return self.accepted == 0b111

    @property
    def terms(self) -> bytes:
        """What an accepting party names (PrivateCustody.termsOf): the hash of the registration
        as read here, so that an accept sent for these terms binds to no other registration
        the sponsor may put in their place meanwhile."""
        return Web3.keccak(
            abi_encode(
                [
                    "uint256",
                    "address",
                    "address",
                    "address",
                    "bytes32",
                    "uint256",
                    "uint256",
                    "uint256",
                ],
                [
                    self.task_id,
                    *self.custodians,
                    self.dealer,
                    self.sponsor_key,
                    self.stake,
                    self.fee,
                    self.handover_window,
                ],
            )
        )

    def party_of(self, account: str) -> int | None:
        """0 or 1 for a custodian, 2 for the dealer, None for anyone else."""
        lowered = account.lower()
        for i, party in enumerate(self.parties):
            if party.lower() == lowered:
                return i
        return None


@dataclass(frozen=True)
class CustodyRegistered:
    view: CustodyView
    sent: Sent


@dataclass(frozen=True)
class CustodyAccepted:
    view: CustodyView  # the terms accepted, as read before sending
    party: int  # 0, 1 a custodian, 2 the dealer
    sent: Sent


class Custody:
    """PrivateCustody as one market account sees it."""

    def __init__(self, market: Market):
        if market.chain.custody is None:
            raise UserError(
                "this deployment has no PrivateCustody (it predates private tasks): "
                "deploy again (`bountytree deploy`) to create private tasks"
            )
        self.market = market
        self.contract = market.chain.custody

    def of(self, task_id: int) -> CustodyView | None:
        """The task's custody, None for a public task."""
        fn = self.contract.functions.custodyOf(task_id)
        c = decode_record(fn, fn.call())
        if int(c["custodian0"], 16) == 0:
            return None
        return CustodyView(
            task_id=task_id,
            custodians=(
                Web3.to_checksum_address(c["custodian0"]),
                Web3.to_checksum_address(c["custodian1"]),
            ),
            dealer=Web3.to_checksum_address(c["dealer"]),
            stake=int(c["stake"]),
            fee=int(c["fee"]),
            handover_window=int(c["handoverWindow"]),
            accepted=int(c["accepted"]),
            delivered=int(c["delivered"]),
            settled=bool(c["settled"]),
            sponsor_key=bytes(c["sponsorKey"]),
            sealed=(_cid_or_none(c["sealed0"]), _cid_or_none(c["sealed1"])),
            keys=(_key_or_none(c["key0"]), _key_or_none(c["key1"]), _key_or_none(c["key2"])),
            handover_deadline=int(self.contract.functions.handoverDeadline(task_id).call()),
        )

    def require(self, task_id: int) -> CustodyView:
        view = self.of(task_id)
        if view is None:
            if self.market.task(task_id, with_info=False).custodied:
                raise UserError(
                    f"task {task_id} is private, its custody not registered yet: it takes "
                    f"nothing until then (`bountytree custody register --task {task_id} …`)"
                )
            raise UserError(f"task {task_id} is not private (no custody registered)")
        return view

    def check(self, terms: CustodyTerms) -> None:
        """What the contract would refuse of this account's terms, said before a task is posted
        for them: the sponsor as a party, a party the admin has not approved."""
        for who in (*terms.custodians, terms.dealer):
            if who.lower() == self.market.chain.address.lower():
                raise UserError("the sponsor cannot be its own task's custodian or dealer")
            if not self.is_approved(who):
                raise UserError(f"{who} is not approved for custody (`bountytree custody approve`)")

    def register(self, task_id: int, terms: CustodyTerms) -> CustodyRegistered:
        """Names the custody of a task created private (its sponsor); the fee is paid with it.
        The task takes work once the three accepted and the rows are shared."""
        if not self.market.task(task_id, with_info=False).custodied:
            raise UserError(
                f"task {task_id} was created public and never turns private; post a task with "
                "--private-models"
            )
        sent = self.market.chain.send(
            self.contract.functions.register(
                task_id,
                *terms.custodians,
                terms.dealer,
                terms.sponsor_key,
                terms.stake,
                terms.handover_window,
            ),
            value=terms.fee,
            action=f"register task {task_id}'s custody",
        )
        return CustodyRegistered(self.require(task_id), sent)

    def approve(self, account: str, approved: bool = True) -> Sent:
        """The admin approves an account as custodian or dealer (or withdraws approval)."""
        who = _address(account, "account")
        verb = "approve" if approved else "withdraw approval of"
        return self.market.chain.send(
            self.contract.functions.approve(who, approved), action=f"{verb} {who} for custody"
        )

    def is_approved(self, account: str) -> bool:
        return bool(self.contract.functions.isApproved(_address(account, "account")).call())

    def accept(self, task_id: int, key: bytes, terms: bytes) -> CustodyAccepted:
        """Accepts custody by staking and giving this party's X25519 public key (what a
        custodian is sent is sealed to it; every party's session links prove it), for the
        `terms` the party reviewed (`CustodyView.terms`, which `custody show` prints): until
        custody is ready the sponsor may withdraw it and register other terms, so an accept
        binds only to what was read. Refused here when the registration is no longer those
        terms, and by the contract (TermsChanged, nothing staked) when it changes on the way.
        Refuses a custody whose sponsor key nothing can be sealed to: the hand-over could never
        happen, and the stake would be forfeited for it."""
        view = self.require(task_id)
        if view.terms != terms:
            raise UserError(
                f"task {task_id}'s custody is not on the terms you name any more: review them "
                f"again with `bountytree custody show --task {task_id}`; nothing was sent"
            )
        party = view.party_of(self.market.chain.address)
        if party is None:
            raise UserError(f"{self.market.chain.address} is not named in task {task_id}'s custody")
        try:
            sealing.seal(b"", view.sponsor_key)
        except (UserError, ValueError):
            raise UserError(
                f"task {task_id}'s sponsor key is not a usable X25519 key: the hand-over could "
                "never be sealed to it; refusing custody"
            ) from None
        sent = self.market.chain.send(
            self.contract.functions.accept(task_id, view.terms, key),
            value=view.stake,
            action=f"accept custody of task {task_id}",
        )
        return CustodyAccepted(view, party, sent)

    def withdraw_custody(self, task_id: int) -> Sent:
        """The sponsor withdraws a custody not ready yet (a party that never accepts): the fee
        back, each stake to its party, and the task free to register another."""
        view = self.require(task_id)
        if view.ready:
            raise UserError(f"task {task_id}'s custody is ready (all three accepted): it stays")
        return self.market.chain.send(
            self.contract.functions.withdrawCustody(task_id),
            action=f"withdraw task {task_id}'s custody",
        )

    def commit_share(self, node_id: int, commitment: bytes) -> Sent:
        return self.market.chain.send(
            self.contract.functions.commitShare(node_id, commitment),
            action=f"commit to a share of node {node_id}",
        )

    def commitment(self, node_id: int, index: int) -> bytes | None:
        value = bytes(self.contract.functions.commitmentOf(node_id, index).call())
        return None if value == ZERO else value

    def hand_over(self, task_id: int, sealed_cid: str) -> Sent:
        return self.market.chain.send(
            self.contract.functions.handOver(task_id, cid_to_bytes32(sealed_cid)),
            action=f"hand over task {task_id}'s winner",
        )

    def settle(self, task_id: int) -> Sent:
        return self.market.chain.send(self.contract.functions.settle(task_id))

    def custodian_keys(self, task_id: int) -> tuple[bytes, bytes]:
        view = self.require(task_id)
        if not view.ready or view.keys[0] is None or view.keys[1] is None:
            raise UserError(f"task {task_id}'s custody is not accepted by all three yet")
        return view.keys[0], view.keys[1]

    def _sealed_rows(
        self, task_id: int, data: Dataset, classes: int, context: bytes, seed: bytes | None = None
    ) -> tuple[str, str]:
        sealed = seal_rows(data.X, data.y, classes, self.custodian_keys(task_id), context, seed)
        store = self.market.store
        return store.add(io.BytesIO(sealed[0])), store.add(io.BytesIO(sealed[1]))

    def validation_shares_match(self, task_id: int, data: Dataset, salt: bytes) -> bool:
        """Whether the validation shares the custodians scored on are the published file's:
        the two sealed files made again from the file and the salt the commitment opened
        (`validation_seed`) have the CIDs the sponsor shared (a sponsor that shared other
        rows than it committed to shows here)."""
        shared = self.validation_shares(task_id)
        if shared is None:
            return True  # nothing was shared: nothing was scored on shares
        chain_id, info = self.market.chain.chain_id, self.market.task(task_id).info
        try:
            # a file that does not fit the task, or that fixed point cannot hold, is one no
            # client could have shared: the shares were of something else
            check_against(data, info.num_features, info.num_classes, "the validation file")
            sealed = seal_rows(
                data.X,
                data.y,
                info.num_classes,
                self.custodian_keys(task_id),
                validation_context(chain_id, task_id),
                validation_seed(salt, chain_id, task_id),
            )
        except (UserError, RingError):
            return False
        return (cid_of(sealed[0]), cid_of(sealed[1])) == shared

    def share_validation_file(self, task_id: int, path: str | Path | None = None) -> int:
        """The sponsor shares its validation rows (by default the file `task create` kept),
        checked against the task's commitment first; returns the number of rows."""
        home, chain_id = self.market.chain.settings.home, self.market.chain.chain_id
        task = self.market.task(task_id)
        path = path or validation_files.registered(home, chain_id, task_id)
        if path is None:
            raise UserError(f"no validation file registered for task {task_id}: give its path")
        salt = validation_files.check_commitment(
            path, validation_files.registered_salt(home, chain_id, task_id), task.commitment
        )
        data = load_file(path, task.info.label_column)
        check_against(data, task.info.num_features, task.info.num_classes, str(path))
        context = validation_context(chain_id, task_id)
        seed = validation_seed(salt, chain_id, task_id)  # the audit makes them again from it
        self.share_validation(
            task_id, self._sealed_rows(task_id, data, task.info.num_classes, context, seed)
        )
        return len(data)

    def submit_rows(self, task_id: int, parent_id: int, data: Dataset) -> Submitted:
        """A data owner's rows, one share sealed to each custodian, as a child of `parent_id`
        (committed and revealed as any node)."""
        info = self.market.task(task_id).info
        self.market.require_parent(task_id, parent_id, 0)
        check_against(data, info.num_features, info.num_classes, "the rows")
        chain = self.market.chain
        context = node_context(chain.chain_id, task_id, chain.address, parent_id)
        shares = self._sealed_rows(task_id, data, info.num_classes, context)
        record = PrivateNode(parent_id, len(data), shares).to_bytes()
        return self.market.submit(task_id, parent_id, cid_of(record), content=record)

    def share_validation(self, task_id: int, cids: tuple[str, str]) -> Sent:
        """The sponsor gives the custodians its validation rows (two sealed shares' CIDs)."""
        return self.market.chain.send(
            self.contract.functions.shareValidation(
                task_id, cid_to_bytes32(cids[0]), cid_to_bytes32(cids[1])
            ),
            action=f"share task {task_id}'s validation rows with its custodians",
        )

    def validation_shares(self, task_id: int) -> tuple[str, str] | None:
        zero, one = self.contract.functions.validationShares(task_id).call()
        if bytes(zero) == ZERO:
            return None
        return bytes32_to_cid(bytes(zero)), bytes32_to_cid(bytes(one))

    def report_validation(self, task_id: int, *, readable: bool) -> Sent:
        """A custodian says whether it can read its share of the sponsor's validation rows."""
        said = "can" if readable else "cannot"
        return self.market.chain.send(
            self.contract.functions.reportValidation(task_id, readable),
            action=f"say this custodian {said} read task {task_id}'s validation share",
        )

    def validation_unread(self, task_id: int) -> int:
        """Bit i set: custodian i's last word is that it cannot read its validation share."""
        return int(self.contract.functions.validationUnread(task_id).call())

    def report_dealer(self, node_id: int, *, waits: bool) -> Sent:
        """A custodian says whether a pending node waits for the dealer (PrivateCustody.
        reportDealer: a task finalized leaving a node both say waits refunds the dealer's fee
        third to the sponsor)."""
        said = "waits" if waits else "no longer waits"
        return self.market.chain.send(
            self.contract.functions.reportDealer(node_id, waits),
            action=f"say node {node_id} {said} for the dealer",
        )

    def dealer_wait(self, node_id: int) -> int:
        """Bit i set: custodian i's last word is that the node waits for the dealer."""
        return int(self.contract.functions.dealerWaitOf(node_id).call())

    def dealer_waiting(self, task_id: int) -> int:
        """The task's pending nodes both custodians say wait for the dealer."""
        return int(self.contract.functions.dealerWaiting(task_id).call())

    def attest(self, node_id: int, kind: int, value: int) -> Sent:
        """A custodian attests a node's outcome (SCORE with the Ladder's record, or REJECT with
        a reason code); the second equal attestation records it."""
        what = "score" if kind == SCORE else "rejection"
        return self.market.chain.send(
            self.contract.functions.attest(node_id, kind, value),
            action=f"attest node {node_id}'s {what}",
        )

    def finalize_leaving(self, task_id: int, pending_seen: int, submissions_seen: int) -> Sent:
        """A custodian agrees to finalize the task leaving the `pending_seen` nodes pending it
        cannot score, as it saw them after `submissions_seen` submissions; the second
        custodian's equal agreement finalizes it."""
        return self.market.chain.send(
            self.contract.functions.finalizeLeaving(task_id, pending_seen, submissions_seen),
            action=f"agree to finalize task {task_id} leaving {pending_seen} node(s)",
        )

    def attestation(self, node_id: int, index: int) -> tuple[int, int] | None:
        """(kind, value) custodian `index` attested for a node, None if none stands."""
        raw = int(self.contract.functions.attestationOf(node_id, index).call())
        if raw == 0:
            return None
        return (raw - 1) >> 16, (raw - 1) & 0xFFFF

    def pending(self, account: str | None = None) -> int:
        who = account or self.market.chain.address
        return int(self.contract.functions.pendingWithdrawals(who).call())

    def withdraw(self) -> tuple[int, Sent]:
        amount = self.pending()
        if amount == 0:
            raise UserError(f"no custody credit to withdraw for {self.market.chain.address}")
        return amount, self.market.chain.send(self.contract.functions.withdraw())


def _address(value: str, what: str) -> str:
    if not Web3.is_address(value):
        raise UserError(f"{what}: {value!r} is not an address")
    return str(Web3.to_checksum_address(value))


def _cid_or_none(raw: Any) -> str | None:
    return None if bytes(raw) == ZERO else bytes32_to_cid(bytes(raw))


def _key_or_none(raw: Any) -> bytes | None:
    return None if bytes(raw) == ZERO else bytes(raw)
