"""Handing a private node to the sponsor: each custodian seals its share, with the salt of its
commitment, to the sponsor's public key; the sponsor opens both, checks each against the
commitment its custodian recorded, and adds them.

A sealed hand-over holds MAGIC, the 32-byte salt and the share file. A custodian that changed
its share after committing fails the check (SHA-256 binds it), and the sponsor knows which one;
a custodian that committed to a changed share from the start is caught by the accuracy check
the sponsor runs on the opened model (docs/private-models.md, "deviating custodians").
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

import numpy as np

from . import sealing, shares
from .shares import SALT_BYTES, Share, ShareError

MAGIC = b"bountytree-handover-v1\n"


@dataclass(frozen=True)
class Opened:
    """One custodian's opened hand-over: its share and the salt of its commitment."""

    share: Share
    salt: bytes

    def matches(self, commitment: bytes) -> bool:
        return hmac.compare_digest(shares.commitment(self.share, self.salt), commitment)


def seal_share(share: Share, salt: bytes, sponsor_key: bytes) -> bytes:
    """A custodian's hand-over of its share, sealed to the sponsor's key."""
    return sealing.seal(MAGIC + salt + share.to_bytes(), sponsor_key)


def open_share(sealed: bytes, private_key: bytes, what: str) -> Opened:
    data = sealing.open_sealed(sealed, private_key, what)
    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + SALT_BYTES:
        raise ShareError(f"{what}: not a hand-over")
    salt = data[len(MAGIC) : len(MAGIC) + SALT_BYTES]
    share_file = data[len(MAGIC) + SALT_BYTES :]
    return Opened(Share.from_bytes(share_file, what), salt)


def open_handover(
    sealed: tuple[bytes, bytes], private_key: bytes, commitments: tuple[bytes, bytes]
) -> dict[str, np.ndarray]:
    """The node's weights from the two custodians' hand-overs (custodian 0's first), each
    checked against the commitment its custodian recorded; ShareError names a custodian whose
    hand-over does not match."""
    opened = [
        open_share(s, private_key, f"custodian {i}'s hand-over") for i, s in enumerate(sealed)
    ]
    for i, (one, commitment) in enumerate(zip(opened, commitments, strict=True)):
        if one.share.party != i:
            raise ShareError(f"custodian {i} handed over share {one.share.party}")
        if not one.matches(commitment):
            raise ShareError(f"custodian {i}'s hand-over does not match its commitment")
    return shares.combine_state(opened[0].share, opened[1].share)
