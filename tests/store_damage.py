"""Damaging a store behind its back, as a failing disk or a careless hand would: flip a byte of
a block, or make a block vanish. For the embedded store (a block file, or a block in a pack
found through the index) and for a js-ipfs daemon's repo (its flatfs files)."""

from __future__ import annotations

import base64
import sqlite3
from pathlib import Path

from bountytree.storage.daemon import IpfsDaemon
from bountytree.storage.embedded import EmbeddedStore


def daemon_block_file(daemon: IpfsDaemon, digest: bytes) -> Path:
    """js-ipfs's flatfs: base32 of the multihash, sharded by the two characters before the last."""
    key = base64.b32encode(b"\x12\x20" + digest).decode().rstrip("=")
    return daemon.repo / "blocks" / key[-3:-1] / f"{key}.data"


def _flip(path: Path, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 1]))


def corrupt(target: EmbeddedStore | IpfsDaemon, digest: bytes, at: int = 5) -> None:
    """Flips the block's byte `at`."""
    if isinstance(target, IpfsDaemon):
        _flip(daemon_block_file(target, digest), at)
        return
    where = target.index.locate(digest)
    if where is None:
        _flip(target._block_path(digest), at)
    else:
        _flip(target.index.packs / where.pack, where.offset + at)


def remove(target: EmbeddedStore, digest: bytes) -> None:
    """The block is gone from the embedded store (for a daemon: unpin, then `block/rm`)."""
    if target.index.locate(digest) is None:
        target._block_path(digest).unlink()
        return
    with sqlite3.connect(target.index.path) as db:
        db.execute("DELETE FROM blocks WHERE digest = ?", (digest,))
