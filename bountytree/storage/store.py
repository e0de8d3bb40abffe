"""Content-addressed storage's interface: the `Store` protocol, its three kinds of error, and
the verified reader both stores use (the embedded store is `embedded.py`, an IPFS node `kubo.py`,
and `connect.open_store` picks one).

Both give a file the CID kubo's `ipfs add` prints, so a user can move between them without
re-uploading, and both read a file the same way: block by block, each block checked against
its hash before any of its bytes are used (`read_file`).

Every failure is one of three kinds, because each kind has a different culprit:

- `BlockMissing`: a block is not in the store (the node did not find it within its timeout).
  It may still arrive; only this, and only past a node's fetch timeout, is ever held against
  the participant who published the CID.
- `BlockCorrupted`: bytes came back that do not hash to their CID. A CID is the hash of its
  bytes, so whoever published it cannot have caused this: the store, its disk or the wire did.
- `StoreUnavailable`: the store cannot be reached or answered something no store should (a
  daemon down, killed mid-transfer, a connection cut mid-stream, a disk that cannot be written).

A file whose blocks all verify but do not form a UnixFS file, or that is over a reader's
limit (`TooLarge`), is what its publisher made: a plain `StoreError`.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

from bountytree.errors import UserError
from bountytree.storage.cid import cid_from_digest, digest_from_cid
from bountytree.storage.unixfs import (
    CHUNK_SIZE,
    MAX_LINKS,
    BlockFormatError,
    Decoded,
    build_file,
    decode_block,
    read_chunks,
)

MAX_BLOCK = 2 * 1024 * 1024  # bitswap's limit: no IPFS block is larger


class StoreError(UserError):
    """A CID that cannot be read: the base of every store failure."""


class BlockMissing(StoreError):
    """A block of the file is not (yet) in the store; unlike corruption, it may still arrive."""


class BlockCorrupted(StoreError):
    """Bytes that do not hash to their CID: the store's or the wire's fault, never the
    publisher's (a CID is the hash of its bytes)."""


class TooLarge(StoreError):
    """A file over the reader's size limit (refused from its declared size, before its data)."""


class StoreUnavailable(StoreError):
    """The store itself cannot be reached or misbehaves: retry later, blame no file."""


class Store(Protocol):
    """What every part of bountytree needs from IPFS."""

    def add(self, stream: BinaryIO) -> str:
        """Store the stream's bytes; return their CIDv0."""
        ...

    def cat(self, cid: str, limit: int | None = None) -> Iterator[bytes]:
        """The file's bytes, in order, each piece verified before it is yielded; with `limit`,
        a file declaring more bytes raises TooLarge before any of its data is fetched."""
        ...

    def has(self, cid: str) -> bool:
        """Whether the whole file is readable here now (False if missing or corrupted;
        StoreUnavailable if the store cannot say)."""
        ...

    def pin(self, cid: str) -> None:
        """Keep the file (the embedded store never collects; pins are recorded for `pins`)."""
        ...

    def pins(self) -> list[str]:
        """Pinned CIDs."""
        ...


def add_bytes(store: Store, data: bytes) -> str:
    return store.add(io.BytesIO(data))


def cid_of(data: bytes) -> str:
    """The CID `add_bytes` gives these bytes (kubo's defaults), computed here and stored nowhere:
    what is put on a task is committed to before its bytes reach a store that could show the CID
    to a watcher."""
    root = build_file(read_chunks(io.BytesIO(data)), lambda digest, block: None)
    return cid_from_digest(root.digest)


def add_file(store: Store, path: str | Path) -> str:
    try:
        f = open(path, "rb")  # noqa: SIM115 (closed below; only opening errors are the user's)
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a directory, not a file") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    with f:
        return store.add(f)


def get_bytes(store: Store, cid: str, max_size: int) -> bytes:
    """The whole file, refusing anything over `max_size` bytes before reading its data."""
    out = bytearray()
    for piece in store.cat(cid, limit=max_size):
        out += piece
        if len(out) > max_size:  # a store that ignores `limit`
            raise TooLarge(f"{cid} is larger than the {max_size}-byte limit")
    return bytes(out)


# ─────────────────────────── reading a file's DAG ───────────────────────────


class BlockSource(Protocol):
    """Where `read_file` gets verified blocks from; `cid` (the file's) names errors."""

    def get_block(self, cid: str, digest: bytes) -> bytes: ...

    def get_blocks(self, cid: str, digests: list[bytes]) -> Generator[bytes, None, None]: ...


def which_block(cid: str, block: str) -> str:
    """How an error names a block: the file's CID, and the block's when it is not the root."""
    return cid if block == cid else f"{cid}: block {block}"


def _decode(cid: str, block: bytes) -> Decoded:
    try:
        return decode_block(block)
    except BlockFormatError as exc:
        raise StoreError(f"{cid}: not a UnixFS file ({exc})") from None


# Every file is read as kubo adds it by default (both stores add that way, and `add` refuses a
# node that does not): each block's links, but the last, lead to whole 256 KiB chunks or to full
# subtrees of them. A DAG of 1 KiB leaves, each served by a peer just inside the node's timeout,
# once made one read last hours; now a file takes at most two blocks per chunk it declares (plus
# a few), fetched AHEAD at a time, so a read's time is bounded by its declared size.
SPARE_BLOCKS = 64


def read_file(cid: str, source: BlockSource, limit: int | None = None) -> Iterator[bytes]:
    """The file's bytes in order, walking its DAG depth first from verified blocks. The root's
    declared size is checked against `limit` before anything below it is fetched, and every
    block's size against what its parent declared, so the file cannot outgrow its root; every
    link but a block's last must hold whole chunks, and the blocks read are bounded by the
    declared size, so neither tiny leaves nor links that repeat can keep a reader walking."""
    root = _decode(cid, source.get_block(cid, digest_from_cid(cid)))
    if limit is not None and root.filesize > limit:
        raise TooLarge(f"{cid} is larger than the {limit}-byte limit ({root.filesize} bytes)")
    budget = [2 * (root.filesize // CHUNK_SIZE) + SPARE_BLOCKS]
    yield from _below(cid, root, source, 0, budget, _levels(root.filesize))


def _levels(filesize: int) -> int:
    """How deep kubo's balanced DAG of a file this size is: its chunks, MAX_LINKS per block."""
    blocks, levels = max(1, -(-filesize // CHUNK_SIZE)), 0
    while blocks > 1:
        blocks, levels = -(-blocks // MAX_LINKS), levels + 1
    return levels


def _below(
    cid: str, node: Decoded, source: BlockSource, depth: int, budget: list[int], levels: int
) -> Iterator[bytes]:
    if not node.links:
        if node.data:
            yield node.data
        return
    if node.data or depth >= levels:
        # kubo's balanced layout keeps data in its leaves only, all at the depth the file's
        # size needs (at most a handful of levels): a chain of tiny blocks, each fetched in
        # turn, cannot stretch a read
        raise _not_as_added(
            cid, f"data above its leaves, or deeper than the {levels} level(s) its size needs"
        )
    if min(node.blocksizes) <= 0 or len(node.data) + sum(node.blocksizes) != node.filesize:
        raise StoreError(f"{cid}: not a UnixFS file (its blocks' sizes do not add up)")
    partial = next((size for size in node.blocksizes[:-1] if size % CHUNK_SIZE), None)
    if partial is not None:
        raise _not_as_added(
            cid,
            f"a block before the last holds {partial} bytes, not whole {CHUNK_SIZE}-byte chunks",
        )
    budget[0] -= len(node.links)
    if budget[0] < 0:
        raise StoreError(f"{cid}: not a UnixFS file (more blocks than its size needs)")
    with contextlib.closing(source.get_blocks(cid, node.links)) as blocks:
        for block, declared in zip(blocks, node.blocksizes, strict=True):
            child = _decode(cid, block)
            if child.filesize != declared:
                raise StoreError(f"{cid}: not a UnixFS file (a block's size is not its parent's)")
            yield from _below(cid, child, source, depth + 1, budget, levels)


def _not_as_added(cid: str, why: str) -> StoreError:
    return StoreError(
        f"{cid}: not a UnixFS file as IPFS adds it by default ({why}); add it again with "
        "`bountytree ipfs add` or kubo's defaults"
    )


def check_readable(store: Store, cid: str) -> bool:
    """`has` for any store: reads the file through; missing, corrupted or malformed is False,
    a store that cannot answer raises StoreUnavailable."""
    try:
        for _ in store.cat(cid):
            pass
    except StoreUnavailable:
        raise
    except StoreError:
        return False
    return True
