"""What the market's actions return: one typed record per action, named by what happened.

Each carries the transaction(s) it sent (`Sent`: hash, receipt, gas), so a caller can show the
hash and the gas without knowing which event the contract emitted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bountytree.chain.client import Sent
from bountytree.market.taskinfo import TaskInfo


@dataclass(frozen=True)
class Payout:
    """One PayoutCredited: `amount` wei credited to `account` in `task_id` for `kind` (data,
    compute, expertise, refund or bond)."""

    task_id: int
    account: str
    amount: int
    kind: str


@dataclass(frozen=True)
class Revealed:
    """Anything put on a task (an architecture, a trained node, a dataset) takes two
    transactions: a commitment that hides it, then its reveal in a later block, so nobody can copy
    it out of the mempool and be first with it."""

    commit: Sent
    reveal: Sent

    @property
    def gas(self) -> int:
        return self.commit.gas_used + self.reveal.gas_used

    @property
    def sent(self) -> str:
        """Both transactions, as a command prints them."""
        return f"commit {self.commit}; reveal {self.reveal}"


@dataclass(frozen=True)
class DatasetPublished(Revealed):
    dataset_id: int
    cid: str
    rows: int


@dataclass(frozen=True)
class TaskPosted:
    """A posted bounty: the description and commitment on-chain, the validation file (and the
    test part, with `--split`) kept on this machine only, the train part published if any."""

    task_id: int
    description_cid: str
    commitment: str  # hex of SHA-256(salt ‖ digest of the validation file's CID)
    sent: Sent
    validation: Path
    info: TaskInfo
    test: Path | None = None
    dataset: DatasetPublished | None = None


@dataclass(frozen=True)
class Proposed(Revealed):
    node_id: int
    spec_cid: str
    weights_cid: str


@dataclass(frozen=True)
class Submitted(Revealed):
    """A trained node, committed and then revealed in a later block."""

    node_id: int


@dataclass(frozen=True)
class Finalized:
    winner: int  # 0: no node reached the target; the bounty went back to the sponsor
    accuracy_bps: int
    pool: int
    payouts: list[Payout]
    sent: Sent


@dataclass(frozen=True)
class Credited:
    """Payouts an action credited (the audit bond's forfeit)."""

    payouts: list[Payout]
    sent: Sent


@dataclass(frozen=True)
class Reclaimed:
    """What `reclaim` got back for one piece of work never scored: a node still pending at
    finalize, or a commitment never revealed (its stake; its fee is burned)."""

    what: str  # "node 12" or "commitment 0x1234…"
    amount: int
    sent: Sent


@dataclass(frozen=True)
class Withdrawn:
    amount: int
    sent: Sent


@dataclass(frozen=True)
class DatasetRecord:
    """The contract's Dataset record; a zero publisher means no such dataset."""

    publisher: str
    cid: bytes
