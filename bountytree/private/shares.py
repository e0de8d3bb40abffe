"""One party's share of a node's weights as a file, and the commitment to it.

A share file is safetensors holding one int64 tensor per parameter (the names `spec.build_torch`
gives) and metadata saying which of the two shares it is. Nothing in it is a float: it is a
ring element per weight, uniformly random on its own. The commitment a custodian records is
SHA-256 over a domain tag, a 32-byte salt and the share's canonical bytes (party, then each
tensor's name, shape and little-endian values in name order; a safetensors file's metadata
order varies between writes, so the file itself is not hashed): binding (the custodian cannot
later hand over another share), hiding while the salt is secret (the share cannot be tried
against it), and checked by the sponsor at hand-over against the sealed file it opens.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

from bountytree.errors import UserError

from . import ring

FORMAT = "bountytree/share@1"
COMMIT_TAG = b"bountytree share commitment v1"
SALT_BYTES = 32


class ShareError(UserError):
    """A file that is not a share, or shares that do not belong together."""


@dataclass(frozen=True)
class Share:
    """One of the two additive shares (party 0 or 1) of named int64 tensors."""

    party: int
    tensors: dict[str, np.ndarray]

    def to_bytes(self) -> bytes:
        """The share file; the same share always gives the same bytes (safetensors writes its
        metadata in no fixed order, so the header is written again with sorted keys): sealed
        files made again from the same shares are the same files (`rows.validation_seed`)."""
        raw = st_save(
            {k: np.ascontiguousarray(v, dtype=np.int64) for k, v in self.tensors.items()},
            metadata={
                "format": FORMAT,
                "party": str(self.party),
                "precision": str(ring.PRECISION_BITS),
            },
        )
        size = int.from_bytes(raw[:8], "little")
        header = json.dumps(json.loads(raw[8 : 8 + size]), sort_keys=True, separators=(",", ":"))
        padded = header.encode() + b" " * (-len(header) % 8)  # the data stays 8-byte aligned
        return len(padded).to_bytes(8, "little") + padded + raw[8 + size :]

    @staticmethod
    def from_bytes(raw: bytes, what: str = "share") -> Share:
        try:
            size = int.from_bytes(raw[:8], "little")
            header = json.loads(raw[8 : 8 + size]) if 0 < size <= len(raw) - 8 else None
        except (ValueError, RecursionError):
            header = None
        meta = header.get("__metadata__", {}) if isinstance(header, dict) else {}
        if (
            not isinstance(header, dict)
            or not isinstance(meta, dict)
            or meta.get("format") != FORMAT
            or meta.get("party") not in ("0", "1")
            or meta.get("precision") != str(ring.PRECISION_BITS)
        ):
            raise ShareError(f"{what}: not a share file ({FORMAT})")
        if any(
            not isinstance(v, dict) or v.get("dtype") != "I64"
            for k, v in header.items()
            if k != "__metadata__"
        ):
            raise ShareError(f"{what}: a share holds int64 tensors only")
        try:
            tensors = st_load(raw)
        except SafetensorError as exc:
            raise ShareError(f"{what}: damaged share file ({exc})") from None
        return Share(int(meta["party"]), tensors)


def split_state(state: dict[str, np.ndarray], seed: bytes | None = None) -> tuple[Share, Share]:
    """The two shares of float tensors (made again from `seed`, if given: `derive(seed, name)`
    for each tensor)."""
    zero, one = {}, {}
    for name, value in state.items():
        mask = derive(seed, f"mask {name}") if seed is not None else None
        zero[name], one[name] = ring.share_floats(np.asarray(value), mask)
    return Share(0, zero), Share(1, one)


def derive(seed: bytes, purpose: str) -> bytes:
    """A 32-byte key for one `purpose` from a seed (HKDF-SHA256)."""
    from Crypto.Hash import SHA256
    from Crypto.Protocol.KDF import HKDF

    key = HKDF(seed, 32, b"", SHA256, context=b"bountytree " + purpose.encode())
    assert isinstance(key, bytes)
    return key


def public_share(values: dict[str, np.ndarray], party: int) -> Share:
    """Share `party` of public values: the values themselves for party 0, zeros for party 1
    (how custodians hold an architecture's public initial weights)."""
    return Share(
        party,
        {
            k: ring.encode(v) if party == 0 else np.zeros(np.shape(v), dtype=np.int64)
            for k, v in values.items()
        },
    )


def combine_state(a: Share, b: Share) -> dict[str, np.ndarray]:
    """The float32 weights two shares stand for; refuses two copies of one share or shares of
    different tensors."""
    if {a.party, b.party} != {0, 1}:
        raise ShareError(f"these are not the two shares of one node (both are share {a.party})")
    if a.tensors.keys() != b.tensors.keys() or any(
        a.tensors[k].shape != b.tensors[k].shape for k in a.tensors
    ):
        raise ShareError("the two shares hold different tensors")
    return {k: ring.decode(ring.combine(a.tensors[k], b.tensors[k])) for k in a.tensors}


def new_salt() -> bytes:
    return os.urandom(SALT_BYTES)


def canonical(share: Share) -> bytes:
    """The share's bytes as a commitment hashes them."""
    digest = hashlib.sha256(COMMIT_TAG + bytes([share.party]))
    for name in sorted(share.tensors):
        value = np.ascontiguousarray(share.tensors[name], dtype="<i8")
        digest.update(json.dumps([name, list(value.shape)]).encode() + b"\0" + value.tobytes())
    return digest.digest()


def commitment(share: Share, salt: bytes) -> bytes:
    """The 32-byte commitment to a share under a salt."""
    if len(salt) != SALT_BYTES:
        raise ShareError(f"a commitment's salt is {SALT_BYTES} bytes")
    return hashlib.sha256(COMMIT_TAG + salt + canonical(share)).digest()
