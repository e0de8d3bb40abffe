"""Why the oracle rejects a node: one enum, whose values are the uint8 codes `rejectNodes`
records on-chain (the contract's NatSpec lists the same codes). Checks raise `Rejected` with a
member of it; nothing is ever chosen by matching the wording of a message."""

from __future__ import annotations

from enum import IntEnum

from bountytree.errors import UserError


class Reason(IntEnum):
    MISSING = 1  # the node's files never reached the store within the fetch timeout
    NOT_SAFETENSORS = 2
    SHAPE_MISMATCH = 3
    NOT_FINITE = 4
    TOO_LARGE = 5
    INVALID_SPEC = 6
    PARENT_REJECTED = 7
    CORRUPT = 8
    COPY = 9  # equal to its parent, or closer to another earlier node than to its parent
    NOT_INITIAL = 10  # an architecture whose weights are not its spec's seeded initialisation
    REPLAY_MISMATCH = 11  # training on the declared published dataset does not give these weights
    UNFIT_SPEC = 12  # the spec does not fit the task's features and classes
    TOO_COSTLY = 13  # replaying its training would cost more than the oracle's replay budget
    LOGIT_RANGE = 14  # on the task's input range its values could leave CrypTen's fixed-point range
    # a private node at fault where one custodian alone sees (seen_alone): its stake back
    UNCONFIRMED = 15
    # a private node a custodian could not train within its session budget twice, the dealer
    # not to blame: its stake back, whatever the other custodian says beside it
    TOO_SLOW = 16

    def seen_alone(self, architecture: bool) -> bool:
        """Whether it may be a fault one custodian of a private task sees alone (the other
        follows it as UNCONFIRMED): of a trained node, in its own share of the rows (missing, too
        large, corrupt); of any node, a file missing (one store may not get in time what the
        other's did). Every other reason is about files both read alike
        (RejectReasons.seenAlone, on-chain)."""
        if architecture:
            return self is Reason.MISSING
        return self in (Reason.MISSING, Reason.TOO_LARGE, Reason.CORRUPT)

    @property
    def label(self) -> str:
        """The name people read: `shape-mismatch`."""
        return self.name.lower().replace("_", "-")

    @classmethod
    def describe(cls, code: int) -> str:
        try:
            return cls(code).label
        except ValueError:
            return f"code {code}"


class Rejected(UserError):
    """A node's files or lineage fail a check; `reason` is what goes on-chain."""

    def __init__(self, reason: Reason, message: str):
        super().__init__(message)
        self.reason = reason
