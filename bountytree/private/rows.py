"""A data owner's rows for a private task's custodians, and the node record that names them.

The owner encodes its rows X (n × features) and one-hot labels Y (n × classes) in fixed point,
splits each into two shares and seals share i to custodian i's X25519 key (the key it gave when
it accepted custody, on-chain): each sealed file is a share file holding tensors "X" and "Y".
No custodian alone, and nobody reading the store, learns anything about the rows.

A private node's CID on-chain names a record (`bountytree/private-node@1`, JSON): its parent,
the number of rows, and the CIDs of the two sealed row shares. The custodians train the child
from the parent's shares on these rows; the child's weights exist only as their shares.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import sealing
from .shares import Share, ShareError, split_state

FORMAT = "bountytree/private-node@1"
MAX_RECORD = 4096
MAX_ROWS = 1_000_000


@dataclass(frozen=True)
class PrivateNode:
    parent: int
    rows: int
    shares: tuple[str, str]  # CIDs of the row shares sealed to custodian 0 and 1

    def to_bytes(self) -> bytes:
        return json.dumps(
            {
                "format": FORMAT,
                "parent": self.parent,
                "rows": self.rows,
                "shares": list(self.shares),
            },
            sort_keys=True,
        ).encode()

    @staticmethod
    def parse(raw: bytes, what: str = "private node record") -> PrivateNode:
        try:
            data: Any = json.loads(raw[: MAX_RECORD + 1]) if len(raw) <= MAX_RECORD else None
        except (ValueError, RecursionError):
            data = None
        if (
            not isinstance(data, dict)
            or data.get("format") != FORMAT
            or not isinstance(data.get("parent"), int)
            or not isinstance(data.get("rows"), int)
            or not 1 <= data["rows"] <= MAX_ROWS
            or not isinstance(data.get("shares"), list)
            or len(data["shares"]) != 2
            or not all(isinstance(c, str) and 0 < len(c) < 100 for c in data["shares"])
        ):
            raise ShareError(f"{what}: not a {FORMAT} record")
        return PrivateNode(data["parent"], data["rows"], (data["shares"][0], data["shares"][1]))


def seal_rows(
    X: np.ndarray, y: np.ndarray, classes: int, keys: tuple[bytes, bytes]
) -> tuple[bytes, bytes]:
    """The owner's rows as two sealed shares, share i to custodian key i."""
    onehot = np.eye(classes, dtype=np.float32)[np.asarray(y, dtype=np.int64)]
    zero, one = split_state({"X": np.asarray(X, dtype=np.float32), "Y": onehot})
    return sealing.seal(zero.to_bytes(), keys[0]), sealing.seal(one.to_bytes(), keys[1])


def open_rows(sealed: bytes, private_key: bytes, index: int, what: str) -> Share:
    """Custodian `index`'s share of an owner's rows; ShareError if it is not its share."""
    share = Share.from_bytes(sealing.open_sealed(sealed, private_key, what), what)
    if share.party != index or set(share.tensors) != {"X", "Y"}:
        raise ShareError(f"{what}: not custodian {index}'s share of rows")
    if share.tensors["X"].ndim != 2 or share.tensors["Y"].shape[0] != share.tensors["X"].shape[0]:
        raise ShareError(f"{what}: rows and labels of different lengths")
    return share
