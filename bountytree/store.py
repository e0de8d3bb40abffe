"""Content-addressed storage: one interface, an embedded store (default) and an IPFS node.

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
import hashlib
import io
import os
import queue
import sqlite3
import threading
from collections import deque
from collections.abc import Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO, Protocol

from .cid import cid_from_digest, digest_from_cid
from .errors import UserError
from .files import atomic_write
from .packs import Location, PackIndex, PackWriter
from .unixfs import (
    CHUNK_SIZE,
    BlockFormatError,
    Bytes,
    DagBuilder,
    Decoded,
    LeafBuffer,
    Link,
    decode_block,
)

MAX_DEPTH = 32  # kubo's balanced DAG of 174 links per node needs 6 levels for 10 PB
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


def _aside(path: Path) -> Path:
    """Where the embedded store moves a block that failed its hash."""
    return path.with_name(path.name + ".corrupt")


def _which(cid: str, block: str) -> str:
    """How an error names a block: the file's CID, and the block's when it is not the root."""
    return cid if block == cid else f"{cid}: block {block}"


def _decode(cid: str, block: bytes) -> Decoded:
    try:
        return decode_block(block)
    except BlockFormatError as exc:
        raise StoreError(f"{cid}: not a UnixFS file ({exc})") from None


# Blocks a file may take per KiB it declares (plus a few): kubo's chunks are 256 KiB, and no
# chunker makes them smaller than 1 KiB. It bounds a walk over a DAG built to be walked forever.
MIN_CHUNK = 1024
SPARE_BLOCKS = 64


def read_file(cid: str, source: BlockSource, limit: int | None = None) -> Iterator[bytes]:
    """The file's bytes in order, walking its DAG depth first from verified blocks. The root's
    declared size is checked against `limit` before anything below it is fetched, and every
    block's size against what its parent declared, so the file cannot outgrow its root; the
    blocks read are bounded by the declared size, so a DAG whose links repeat cannot keep a
    reader walking."""
    root = _decode(cid, source.get_block(cid, digest_from_cid(cid)))
    if limit is not None and root.filesize > limit:
        raise TooLarge(f"{cid} is larger than the {limit}-byte limit ({root.filesize} bytes)")
    budget = [root.filesize // MIN_CHUNK + SPARE_BLOCKS]
    yield from _below(cid, root, source, 0, budget)


def _below(
    cid: str, node: Decoded, source: BlockSource, depth: int, budget: list[int]
) -> Iterator[bytes]:
    if node.data:
        yield node.data
    if not node.links:
        return
    if depth >= MAX_DEPTH:
        raise StoreError(f"{cid}: not a UnixFS file (deeper than {MAX_DEPTH} levels)")
    if min(node.blocksizes) <= 0 or len(node.data) + sum(node.blocksizes) != node.filesize:
        raise StoreError(f"{cid}: not a UnixFS file (its blocks' sizes do not add up)")
    budget[0] -= len(node.links)
    if budget[0] < 0:
        raise StoreError(f"{cid}: not a UnixFS file (more blocks than its size needs)")
    with contextlib.closing(source.get_blocks(cid, node.links)) as blocks:
        for block, declared in zip(blocks, node.blocksizes, strict=True):
            child = _decode(cid, block)
            if child.filesize != declared:
                raise StoreError(f"{cid}: not a UnixFS file (a block's size is not its parent's)")
            yield from _below(cid, child, source, depth + 1, budget)


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


# ─────────────────────────────── embedded ───────────────────────────────


class EmbeddedStore:
    """Blocks in a local directory, shared by every process on the machine.

    A file of one block (up to 256 KiB: specs, small weights, datasets) is a block file,
    `blocks/<first 2 hex digits>/<sha256 hex>`, written through a temporary file and a rename.
    The blocks of a larger file go into one pack file per add, indexed in SQLite
    (`bountytree/packs.py`): one new file per add rather than one per 256 KiB. Either way no
    half-written block is ever visible, two processes adding the same blocks both succeed,
    blocks already present are not written again, and every read checks the block's hash. A
    block that fails it is set aside (a block file renamed `<block>.corrupt`, a packed block
    marked in the index): reads go on calling it corrupted, not missing, and adding the file
    again repairs it. Stores made with 4096 three-digit folders are still read.
    """

    WRITE_AHEAD = 8  # chunks read ahead of the workers: memory is 8 × 256 KiB
    WORKERS = 2  # threads hashing and writing leaves
    SHARD = 2  # hex digits naming a block file's folder (3 in stores made before)

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.blocks = self.root / "blocks"
        self.pin_dir = self.root / "pins"
        self.index = PackIndex(self.root)
        self._folders: set[str] = set()

    def __repr__(self) -> str:
        return f"EmbeddedStore({str(self.root)!r})"

    def _block_path(self, digest: bytes, shard: int = SHARD) -> Path:
        hexdigest = digest.hex()
        return self.blocks / hexdigest[:shard] / hexdigest

    def _unwritable(self, exc: OSError | sqlite3.Error) -> StoreUnavailable:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return StoreUnavailable(f"the embedded store at {self.root} cannot be written ({why})")

    def _unreadable(self, exc: OSError | sqlite3.Error) -> StoreUnavailable:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return StoreUnavailable(f"the embedded store at {self.root} cannot be read ({why})")

    # writing

    def _put(self, digest: bytes, block: Bytes) -> None:
        """Stores one block file unless it is already there (temporary file, then rename)."""
        hexdigest = digest.hex()
        folder = os.path.join(self.blocks, hexdigest[: self.SHARD])
        path = os.path.join(folder, hexdigest)
        if os.path.exists(path):
            return
        try:
            if folder not in self._folders:
                os.makedirs(folder, exist_ok=True)
                self._folders.add(folder)
            tmp = f"{path}.{os.getpid()}-{threading.get_ident()}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
            try:
                try:
                    view = memoryview(block)
                    while view:
                        view = view[os.write(fd, view) :]
                finally:
                    os.close(fd)
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError as exc:
            raise self._unwritable(exc) from None

    def add(self, stream: BinaryIO) -> str:
        first, second = LeafBuffer(), LeafBuffer()
        if first.fill(stream) < CHUNK_SIZE or second.fill(stream) == 0:
            block = first.block()  # the whole file is one block (the empty file too)
            digest = hashlib.sha256(block).digest()
            self._put(digest, block)
            return cid_from_digest(digest)
        try:
            pack = PackWriter(self.index)
        except OSError as exc:
            raise self._unwritable(exc) from None
        try:
            root = self._add_packed(stream, pack, [first, second])
            pack.finish()
        except (OSError, sqlite3.Error) as exc:
            pack.abandon()
            raise self._unwritable(exc) from None
        except BaseException:
            pack.abandon()
            raise
        return cid_from_digest(root.digest)

    def _add_packed(self, stream: BinaryIO, pack: PackWriter, filled: list[LeafBuffer]) -> Link:
        """This thread reads chunks into buffers; two workers each hash a leaf and write it into
        the pack if it is new (hashlib, reads and writes release the GIL, so all three run at
        once on two cores); the leaves' links reach the DAG builder in file order."""
        free: queue.SimpleQueue[LeafBuffer] = queue.SimpleQueue()
        for _ in range(self.WRITE_AHEAD - len(filled)):
            free.put(LeafBuffer())
        lock = threading.Lock()
        packed: set[bytes] = set()

        def store(digest: bytes, block: Bytes) -> None:
            """Writes the block into the pack unless it is there already, or earlier in it."""
            with lock:
                if digest in packed or self.index.has_good(digest):
                    return
                packed.add(digest)
                offset = pack.reserve(digest, len(block))
            pack.write_at(block, offset)

        def leaf(buf: LeafBuffer) -> Link:
            try:
                block = buf.block()
                digest = hashlib.sha256(block).digest()
                store(digest, block)
                return Link(digest, len(block), buf.size)
            finally:
                free.put(buf)

        builder = DagBuilder(store)  # parents: small, stored from this thread
        leaves: deque[Future[Link]] = deque()
        with ThreadPoolExecutor(self.WORKERS, thread_name_prefix="store-add") as workers:
            try:
                while True:
                    while leaves and leaves[0].done():
                        builder.add_leaf(leaves.popleft().result())
                    if filled:  # the chunks `add` read to tell a one-block file
                        buf = filled.pop(0)
                        n = buf.size
                    else:
                        buf = free.get()
                        n = buf.fill(stream)
                    if n == 0:
                        break
                    leaves.append(workers.submit(leaf, buf))
                    if n < CHUNK_SIZE:
                        break
                while leaves:
                    builder.add_leaf(leaves.popleft().result())
            finally:
                for pending in leaves:
                    pending.cancel()
        return builder.finish()

    # reading

    def get_block(self, cid: str, digest: bytes) -> bytes:
        name = cid_from_digest(digest)
        try:
            where = self.index.locate(digest)
        except sqlite3.Error as exc:
            raise self._unreadable(exc) from None
        if where is not None:
            return self._packed(cid, name, digest, where)
        paths = (self._block_path(digest), self._block_path(digest, 3))  # (3: older stores)
        for path in paths:
            try:
                block = path.read_bytes()
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise self._unreadable(exc) from None
            if hashlib.sha256(block).digest() != digest:
                with contextlib.suppress(OSError):
                    os.replace(path, _aside(path))
                raise BlockCorrupted(
                    f"{_which(cid, name)} is corrupted (its bytes do not hash to its CID)"
                )
            return block
        if any(_aside(path).exists() for path in paths):
            raise BlockCorrupted(
                f"{_which(cid, name)} is corrupted in the store (add the file again to repair it)"
            )
        raise BlockMissing(f"{_which(cid, name)} is not in the store")

    def _packed(self, cid: str, name: str, digest: bytes, where: Location) -> bytes:
        if where.corrupt:
            raise BlockCorrupted(
                f"{_which(cid, name)} is corrupted in the store (add the file again to repair it)"
            )
        try:
            block = self.index.read(where)
        except FileNotFoundError:
            block = b""  # its pack is gone: lost by the store, as good as corrupted
        except OSError as exc:
            raise self._unreadable(exc) from None
        if hashlib.sha256(block).digest() != digest:
            with contextlib.suppress(sqlite3.Error):
                self.index.mark_corrupt(digest)
            raise BlockCorrupted(
                f"{_which(cid, name)} is corrupted (its bytes in the store do not hash to its CID)"
            )
        return block

    def get_blocks(self, cid: str, digests: list[bytes]) -> Generator[bytes, None, None]:
        for digest in digests:
            yield self.get_block(cid, digest)

    def cat(self, cid: str, limit: int | None = None) -> Iterator[bytes]:
        return read_file(cid, self, limit)

    def has(self, cid: str) -> bool:
        return check_readable(self, cid)

    def pin(self, cid: str) -> None:
        """Records the pin once the whole file is here and verified (as kubo's pin fetches it)."""
        for _ in self.cat(cid):
            pass
        try:
            atomic_write(self.pin_dir / cid, b"")
        except OSError as exc:
            raise self._unwritable(exc) from None

    def pins(self) -> list[str]:
        try:
            return sorted(p.name for p in self.pin_dir.glob("Qm*")) if self.pin_dir.is_dir() else []
        except OSError as exc:
            raise StoreUnavailable(
                f"the embedded store at {self.root} cannot be read ({exc.strerror or exc})"
            ) from None


def open_store(spec: str, timeout: float = 30.0) -> Store:
    """An http(s) URL selects an IPFS node's RPC API (`timeout`: how long it may look for a
    block before the block counts as missing); anything else is the embedded store's directory."""
    if spec.startswith(("http://", "https://")):
        from .kubo import KuboStore

        return KuboStore(spec, timeout)
    if spec == "ipfs":
        raise UserError(
            "--store ipfs starts a daemon only with `bountytree up`; elsewhere give the "
            "daemon's RPC URL (e.g. --store http://127.0.0.1:5001)"
        )
    return EmbeddedStore(spec)


__all__ = [
    "BlockCorrupted",
    "BlockMissing",
    "EmbeddedStore",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "TooLarge",
    "add_bytes",
    "add_file",
    "check_readable",
    "get_bytes",
    "open_store",
    "read_file",
]
