"""A data owner's rows for a private task's custodians, and the node record that names them.

The owner encodes its rows X (n × features) and one-hot labels Y (n × classes) in fixed point,
splits each into two shares and seals share i to custodian i's X25519 key (the key it gave when
it accepted custody, on-chain): each sealed file is a share file holding tensors "X" and "Y".
No custodian alone, and nobody reading the store, learns anything about the rows.

Each sealed share is bound to what it is for (`node_context`, `validation_context`: chain,
task, and for a node its author and parent): a share copied into another submission, task or
chain does not open there, so nobody can claim another owner's rows.

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
from .shares import Share, ShareError, derive, split_state

FORMAT = "bountytree/private-node@1"
MAX_RECORD = 4096
MAX_ROWS = 1_000_000
# The largest sealed share of rows a custodian reads (a data owner's, or the sponsor's
# validation rows): about 8 bytes per feature and class of a row. Sealing refuses more, so that
# nobody stakes or shares rows no custodian would read (a sponsor's validation shares over it
# left every node of its task waiting: the attacker review of the audit bond).
MAX_SEALED_ROWS_BYTES = 64 << 20


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


def node_context(chain_id: int, task_id: int, author: str, parent_id: int) -> bytes:
    """What a data owner's row shares are bound to: this chain, task, author and parent."""
    return f"bountytree rows {chain_id} {task_id} {author.lower()} {parent_id}".encode()


def validation_context(chain_id: int, task_id: int) -> bytes:
    """What a sponsor's validation shares are bound to."""
    return f"bountytree validation {chain_id} {task_id}".encode()


def validation_seed(salt: bytes, chain_id: int, task_id: int) -> bytes:
    """What a sponsor's validation shares are made from: its commitment's salt, which stays
    secret until it publishes the file after finalize (`bountytree audit publish`). Then anyone
    makes the two sealed shares again from the published file and compares them with the CIDs
    the custodians scored on (`bountytree audit`): shares of other rows than the committed file's
    show."""
    return derive(bytes(salt), f"validation shares {chain_id} {task_id}")


def seal_rows(
    X: np.ndarray,
    y: np.ndarray,
    classes: int,
    keys: tuple[bytes, bytes],
    context: bytes,
    seed: bytes | None = None,
) -> tuple[bytes, bytes]:
    """The owner's rows as two sealed shares, share i to custodian key i, bound to `context`;
    with `seed`, the same rows and keys always give the same two files (`validation_seed`)."""
    onehot = np.eye(classes, dtype=np.float32)[np.asarray(y, dtype=np.int64)]
    zero, one = split_state({"X": np.asarray(X, dtype=np.float32), "Y": onehot}, seed)
    sealed = (
        sealing.seal(zero.to_bytes(), keys[0], context, _ephemeral(seed, 0)),
        sealing.seal(one.to_bytes(), keys[1], context, _ephemeral(seed, 1)),
    )
    if max(len(s) for s in sealed) > MAX_SEALED_ROWS_BYTES:
        raise ShareError(
            f"{len(y)} rows of {np.shape(X)[1]} features and {classes} classes seal to "
            f"{max(len(s) for s in sealed) / (1 << 20):.0f} MiB a share, more than the "
            f"{MAX_SEALED_ROWS_BYTES >> 20} MiB a custodian reads: use fewer rows"
        )
    return sealed


def _ephemeral(seed: bytes | None, index: int) -> bytes | None:
    return derive(seed, f"seal {index}") if seed is not None else None


def open_rows(
    sealed: bytes, private_key: bytes, index: int, what: str, context: bytes, shape: tuple[int, int]
) -> Share:
    """Custodian `index`'s share of rows with `shape` = (features, classes); ShareError if it
    is not its share, for this context, of rows of that shape."""
    share = Share.from_bytes(sealing.open_sealed(sealed, private_key, what, context), what)
    if share.party != index or set(share.tensors) != {"X", "Y"}:
        raise ShareError(f"{what}: not custodian {index}'s share of rows")
    X, Y = share.tensors["X"], share.tensors["Y"]
    if X.ndim != 2 or Y.ndim != 2 or len(X) != len(Y) or (X.shape[1], Y.shape[1]) != shape:
        raise ShareError(f"{what}: not rows of {shape[0]} features and {shape[1]} classes")
    return share
