"""Content-addressed storage: one interface, an embedded store (default) and a Kubo node.

Both give a file the CID kubo's `ipfs add` prints, so a user can move between them without
re-uploading. The embedded store keeps one file per block under `blocks/`, written through a
temporary file and a rename (no half-written block is ever visible; two processes adding the
same block write the same bytes) and checks every block against its hash when read.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO, Protocol

from .cid import cid_from_digest, digest_from_cid
from .errors import UserError
from .files import atomic_write
from .unixfs import BlockFormatError, build_file, decode_block, read_chunks


class StoreError(UserError):
    """A CID that cannot be read: missing, corrupted, or not a UnixFS file."""


class BlockMissing(StoreError):
    """A block of the file is not (yet) in the store; unlike corruption, it may still arrive."""


class TooLarge(StoreError):
    """A file over the reader's size limit (refused before it is read further)."""


class StoreUnavailable(StoreError):
    """The store itself cannot be reached (a Kubo node down): retry later, blame no file."""


class Store(Protocol):
    """What every part of bountytree needs from IPFS."""

    def add(self, stream: BinaryIO) -> str:
        """Store the stream's bytes; return their CIDv0."""

    def cat(self, cid: str, limit: int | None = None) -> Iterator[bytes]:
        """The file's bytes, in order, each piece verified before it is yielded; with `limit`,
        the node is asked for no more than that many bytes (a reader's cap, not a truncation
        the caller cannot see: get_bytes refuses a file that reaches it)."""

    def has(self, cid: str) -> bool:
        """Whether the whole file is readable here now."""

    def pin(self, cid: str) -> None:
        """Keep the file (the embedded store never collects; pins are recorded for `pins`)."""

    def pins(self) -> list[str]:
        """Pinned CIDs."""


def add_bytes(store: Store, data: bytes) -> str:
    return store.add(io.BytesIO(data))


def add_file(store: Store, path: str | Path) -> str:
    try:
        with open(path, "rb") as f:
            return store.add(f)
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a directory, not a file") from None


def get_bytes(store: Store, cid: str, max_size: int) -> bytes:
    """The whole file, refusing (before reading further) anything over `max_size` bytes."""
    out = bytearray()
    for piece in store.cat(cid, limit=max_size + 1):
        out += piece
        if len(out) > max_size:
            raise TooLarge(f"{cid} is larger than the {max_size}-byte limit")
    return bytes(out)


class EmbeddedStore:
    """Blocks in a local directory, shared by every process on the machine."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.blocks = self.root / "blocks"
        self.pin_dir = self.root / "pins"

    def __repr__(self) -> str:
        return f"EmbeddedStore({str(self.root)!r})"

    def _block_path(self, digest: bytes) -> Path:
        hexdigest = digest.hex()
        return self.blocks / hexdigest[:3] / hexdigest

    def _put(self, digest: bytes, block: bytes) -> None:
        path = self._block_path(digest)
        if not path.exists():
            atomic_write(path, block, durable=False)

    def _get(self, digest: bytes, cid: str) -> bytes:
        try:
            block = self._block_path(digest).read_bytes()
        except FileNotFoundError:
            raise BlockMissing(
                f"{cid}: block {cid_from_digest(digest)} is not in the store"
            ) from None
        if hashlib.sha256(block).digest() != digest:
            raise StoreError(f"{cid}: block {cid_from_digest(digest)} is corrupted (hash mismatch)")
        return block

    def add(self, stream: BinaryIO) -> str:
        # Two threads: one chunk is hashed while the previous one is written.
        with ThreadPoolExecutor(max_workers=2) as pool:
            root = build_file(read_chunks(stream), self._put, pool)
        return cid_from_digest(root.digest)

    def cat(self, cid: str, limit: int | None = None) -> Iterator[bytes]:
        root = digest_from_cid(cid)
        stack = [root]
        while stack:
            digest = stack.pop()
            try:
                node = decode_block(self._get(digest, cid))
            except BlockFormatError as exc:
                raise StoreError(f"{cid}: not a UnixFS file ({exc})") from None
            if node.links:
                stack.extend(reversed(node.links))
            elif node.data:
                yield node.data

    def has(self, cid: str) -> bool:
        """A complete, verified copy of the file is here."""
        try:
            for _ in self.cat(cid):
                pass
        except StoreError:
            return False
        return True

    def pin(self, cid: str) -> None:
        digest_from_cid(cid)
        atomic_write(self.pin_dir / cid, b"")

    def pins(self) -> list[str]:
        return sorted(p.name for p in self.pin_dir.glob("Qm*")) if self.pin_dir.is_dir() else []


class KuboStore:
    """Any IPFS node speaking the Kubo RPC API (e.g. http://127.0.0.1:5001).

    Uses `ipfshttpclient.Client` directly: its `connect()` refuses kubo versions after 0.9.
    Adds with kubo's defaults (CIDv0, 256 KiB chunks, balanced DAG), the CIDs the embedded
    store gives.
    """

    def __init__(self, url: str, timeout: float = 30.0):
        import ipfshttpclient
        from multiaddr import Multiaddr

        self.url = url
        host_port = url.split("://", 1)[1].rstrip("/").split("/")[0]
        host, _, port = host_port.rpartition(":")
        scheme = "https" if url.startswith("https") else "http"
        addr = Multiaddr(f"/dns/{host}/tcp/{port or 5001}/{scheme}")
        self.client = ipfshttpclient.Client(addr, timeout=timeout)
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"KuboStore({self.url!r})"

    def add(self, stream: BinaryIO) -> str:
        result = self.client.add(
            stream, cid_version=0, chunker="size-262144", raw_leaves=False, pin=True
        )
        return result["Hash"]

    def cat(self, cid: str, limit: int | None = None) -> Iterator[bytes]:
        digest_from_cid(cid)
        import ipfshttpclient.exceptions as kubo_errors

        try:  # with a limit, the node sends at most that much: a huge DAG cannot fill our memory
            data = self.client.cat(cid, length=limit if limit else -1, timeout=self.timeout)
        except kubo_errors.TimeoutError:
            raise BlockMissing(
                f"{cid}: not found by {self.url} within {self.timeout:.0f}s"
            ) from None
        except kubo_errors.ConnectionError as exc:
            raise StoreUnavailable(
                f"cannot reach the Kubo node at {self.url} ({type(exc).__name__})"
            ) from None
        except Exception as exc:
            raise StoreError(
                f"{cid}: not readable from {self.url} ({type(exc).__name__})"
            ) from None
        yield data

    def has(self, cid: str) -> bool:
        try:
            self.client.block.stat(cid, timeout=self.timeout)
            return True
        except Exception:
            return False

    def pin(self, cid: str) -> None:
        self.client.pin.add(cid)

    def pins(self) -> list[str]:
        return sorted(self.client.pin.ls(type="recursive")["Keys"])


def open_store(spec: str) -> Store:
    """A Kubo RPC URL selects a Kubo node; anything else is the embedded store's directory."""
    if spec.startswith(("http://", "https://")):
        return KuboStore(spec)
    return EmbeddedStore(spec)


__all__ = [
    "EmbeddedStore",
    "KuboStore",
    "Store",
    "StoreError",
    "add_bytes",
    "add_file",
    "get_bytes",
    "open_store",
]
