"""The embedded store: blocks in a local directory (single-block files and SQLite-indexed pack
files), shared by every process on the machine; the default store of every command."""

from __future__ import annotations

import contextlib
import hashlib
import os
import queue
import sqlite3
import threading
from collections import deque
from collections.abc import Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

from bountytree.files import atomic_write
from bountytree.storage.cid import cid_from_digest
from bountytree.storage.packs import Location, PackIndex, PackWriter
from bountytree.storage.store import (
    BlockCorrupted,
    BlockMissing,
    StoreUnavailable,
    check_readable,
    read_file,
    which_block,
)
from bountytree.storage.unixfs import (
    CHUNK_SIZE,
    Bytes,
    DagBuilder,
    LeafBuffer,
    Link,
)


def _aside(path: Path) -> Path:
    """Where the embedded store moves a block that failed its hash."""
    return path.with_name(path.name + ".corrupt")


class EmbeddedStore:
    """Blocks in a local directory, shared by every process on the machine.

    A file of one block (up to 256 KiB: specs, small weights, datasets) is a block file,
    `blocks/<first 2 hex digits>/<sha256 hex>`, written through a temporary file and a rename.
    The blocks of a larger file go into one pack file per add, indexed in SQLite
    (`bountytree/storage/packs.py`): one new file per add rather than one per 256 KiB. Either way no
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
                    f"{which_block(cid, name)} is corrupted (its bytes do not hash to its CID)"
                )
            return block
        if any(_aside(path).exists() for path in paths):
            raise BlockCorrupted(
                f"{which_block(cid, name)} is corrupted in the store (add the file again to repair it)"
            )
        raise BlockMissing(f"{which_block(cid, name)} is not in the store")

    def _packed(self, cid: str, name: str, digest: bytes, where: Location) -> bytes:
        if where.corrupt:
            raise BlockCorrupted(
                f"{which_block(cid, name)} is corrupted in the store (add the file again to repair it)"
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
                f"{which_block(cid, name)} is corrupted (its bytes in the store do not hash to its CID)"
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
