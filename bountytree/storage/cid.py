"""CIDv0: what kubo's `ipfs add` prints, and the bytes32 the contracts store for it.

A CIDv0 is base58btc(0x12 0x20 ‖ sha256(block)); on-chain only the 32-byte digest is kept.
"""

from __future__ import annotations

import base58

from bountytree.errors import UserError

_PREFIX = b"\x12\x20"  # multihash: sha2-256, 32 bytes


def cid_from_digest(digest: bytes) -> str:
    if len(digest) != 32:
        raise ValueError("a sha2-256 digest has 32 bytes")
    return base58.b58encode(_PREFIX + bytes(digest)).decode()


def digest_from_cid(cid: str) -> bytes:
    """The sha256 digest inside a CIDv0; UserError for anything else."""
    try:
        raw = base58.b58decode(cid.strip())
    except ValueError:
        raw = b""
    if len(raw) != 34 or raw[:2] != _PREFIX:
        raise UserError(f"{cid!r} is not a CIDv0 (Qm…, sha2-256)")
    return raw[2:]


def cid_to_bytes32(cid: str) -> bytes:
    return digest_from_cid(cid)


def bytes32_to_cid(value: bytes | str) -> str:
    if isinstance(value, str):
        value = bytes.fromhex(value.removeprefix("0x"))
    return cid_from_digest(bytes(value))
