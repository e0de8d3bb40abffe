"""UnixFS files in dag-pb blocks, byte for byte as kubo's `ipfs add` writes them by default.

Defaults reproduced: fixed 256 KiB chunks, leaves wrapped in dag-pb (no raw leaves), the
balanced layout with at most 174 links per node, CIDv0. Encoding details that decide the CID:
links are serialized before data, each link carries an empty Name, `blocksizes` is an
unpacked repeated field, and the empty file is `Type=File, filesize=0` with no Data field.

The builder is push-style and streaming (`DagBuilder`): it keeps at most 174 pending links per
tree level, so memory does not grow with the file, and it leaves reading, hashing and writing
leaves to its caller, which can then overlap them. `LeafBuffer` reads a chunk into a buffer
that already has room for the leaf's header and trailer, so a leaf is hashed and written
without the chunk ever being copied in Python.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, Protocol

CHUNK_SIZE = 256 * 1024
MAX_LINKS = 174
TYPE_FILE = 2
SHA256_MULTIHASH = b"\x12\x20"  # sha2-256, 32 bytes: the only hash a CIDv0 carries

Bytes = bytes | bytearray | memoryview


class BlockFormatError(ValueError):
    """A block that is not a well-formed dag-pb/UnixFS node."""


# ───────────────────────────── protobuf, minimal ─────────────────────────────


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field_bytes(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _field_varint(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value)


def _read_varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise BlockFormatError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


@dataclass(frozen=True, slots=True)
class _Field:
    number: int
    wire: int  # 0: varint (in `number_value`), 2: length-delimited (in `payload`)
    number_value: int
    payload: memoryview


def _fields(data: Bytes) -> Iterator[_Field]:
    buf = memoryview(data)
    empty = buf[:0]
    pos = 0
    while pos < len(buf):
        key, pos = _read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _read_varint(buf, pos)
            yield _Field(number, wire, value, empty)
        elif wire == 2:
            length, pos = _read_varint(buf, pos)
            if pos + length > len(buf):
                raise BlockFormatError("truncated field")
            yield _Field(number, wire, 0, buf[pos : pos + length])
            pos += length
        else:
            raise BlockFormatError(f"unsupported wire type {wire}")


# ─────────────────────────────── nodes ───────────────────────────────


@dataclass(frozen=True, slots=True)
class Link:
    digest: bytes  # sha256 of the child block
    tsize: int  # the child block plus everything below it
    filesize: int  # file bytes below the child


def _leaf_head(n: int) -> bytes:
    """Everything a leaf holding `n` file bytes has before them."""
    kind = _field_varint(1, TYPE_FILE)
    data_head = _varint(2 << 3 | 2) + _varint(n) if n else b""
    unixfs_len = len(kind) + len(data_head) + n + len(_leaf_tail(n))
    return _varint(1 << 3 | 2) + _varint(unixfs_len) + kind + data_head


def _leaf_tail(n: int) -> bytes:
    return _field_varint(3, n)


HEAD_ROOM = len(_leaf_head(CHUNK_SIZE))  # the longest head a chunk can have
TAIL_ROOM = len(_leaf_tail(CHUNK_SIZE))


def leaf_block(chunk: Bytes) -> bytes:
    """PBNode{Data: UnixFS{Type: File, Data: chunk, filesize}}."""
    n = len(chunk)
    return b"".join((_leaf_head(n), chunk, _leaf_tail(n)))


def parent_block(links: list[Link]) -> bytes:
    out = bytearray()
    for link in links:
        pb_link = (
            _field_bytes(1, SHA256_MULTIHASH + link.digest)
            + _field_bytes(2, b"")
            + _field_varint(3, link.tsize)
        )
        out += _field_bytes(2, pb_link)
    unixfs = _field_varint(1, TYPE_FILE) + _field_varint(3, sum(x.filesize for x in links))
    for link in links:
        unixfs += _field_varint(4, link.filesize)
    out += _field_bytes(1, unixfs)
    return bytes(out)


@dataclass(frozen=True)
class Decoded:
    links: list[bytes]  # child digests, in file order
    blocksizes: list[int]  # file bytes below each child, as the node declares them
    data: bytes  # file bytes held in this block (leaves)
    filesize: int  # file bytes this node declares: its data and everything below it


def decode_block(block: Bytes) -> Decoded:
    links: list[bytes] = []
    unixfs: memoryview | None = None
    for field in _fields(block):
        if field.number == 2 and field.wire == 2:
            digest = None
            for sub in _fields(field.payload):
                if sub.number == 1 and sub.wire == 2:
                    mh = bytes(sub.payload)
                    if len(mh) != 34 or mh[:2] != SHA256_MULTIHASH:
                        raise BlockFormatError("link is not a sha2-256 multihash")
                    digest = mh[2:]
            if digest is None:
                raise BlockFormatError("link without hash")
            links.append(digest)
        elif field.number == 1 and field.wire == 2:
            unixfs = field.payload
        else:
            raise BlockFormatError(f"unexpected dag-pb field {field.number}")
    if unixfs is None:
        raise BlockFormatError("dag-pb node without UnixFS data")
    kind: int | None = None
    data = b""
    filesize = 0
    blocksizes: list[int] = []
    for field in _fields(unixfs):
        if field.number == 1 and field.wire == 0:
            kind = field.number_value
        elif field.number == 2 and field.wire == 2:
            data = bytes(field.payload)
        elif field.number == 3 and field.wire == 0:
            filesize = field.number_value
        elif field.number == 4 and field.wire == 0:
            blocksizes.append(field.number_value)
    if kind != TYPE_FILE:
        raise BlockFormatError(f"UnixFS type {kind} is not a file")
    if len(blocksizes) != len(links):
        raise BlockFormatError(f"{len(links)} links but {len(blocksizes)} block sizes")
    if filesize != len(data) + sum(blocksizes):
        raise BlockFormatError("declared file size does not add up")
    return Decoded(links, blocksizes, data, filesize)


# ────────────────────────────── builder ──────────────────────────────


class PutBlock(Protocol):
    def __call__(self, digest: bytes, block: Bytes) -> None: ...


class DagBuilder:
    """Lays leaves out as kubo's balanced DAG as they come, calling put(digest, block) for every
    parent block (leaves are the caller's: it has already hashed and stored them)."""

    def __init__(self, put: PutBlock):
        self._put = put
        self._levels: list[list[Link]] = [[]]
        self._count = 0

    def add_leaf(self, link: Link) -> None:
        self._count += 1
        self._push(0, link)

    def _push(self, level: int, link: Link) -> None:
        if level == len(self._levels):
            self._levels.append([])
        self._levels[level].append(link)
        if len(self._levels[level]) == MAX_LINKS:
            self._flush(level)

    def _flush(self, level: int) -> None:
        links = self._levels[level]
        block = parent_block(links)
        digest = hashlib.sha256(block).digest()
        self._put(digest, block)
        self._levels[level] = []
        tsize = len(block) + sum(x.tsize for x in links)
        self._push(level + 1, Link(digest, tsize, sum(x.filesize for x in links)))

    def finish(self) -> Link:
        """The root's link (the empty file's if no leaf came)."""
        if self._count == 0:
            return hash_leaf(b"", self._put)
        levels = self._levels
        # Close the right edge: wrap what is pending at each level while anything remains above.
        for level in range(len(levels)):
            pending = levels[level]
            above = any(levels[h] for h in range(level + 1, len(levels)))
            if pending and (above or len(pending) > 1):
                self._flush(level)
        top = next(level for level in reversed(levels) if level)
        if len(top) != 1:
            raise AssertionError("a balanced DAG has one root")
        return top[0]


def hash_leaf(chunk: Bytes, put: PutBlock | None = None) -> Link:
    block = leaf_block(chunk)
    digest = hashlib.sha256(block).digest()
    if put is not None:
        put(digest, block)
    return Link(digest, len(block), len(chunk))


def build_file(chunks: Iterator[Bytes], put: PutBlock) -> Link:
    """Every block of the file made of `chunks` (leaves before their parents) through put;
    the root's link. The simple, unpipelined form: the reference the stores are tested against."""
    builder = DagBuilder(put)
    for chunk in chunks:
        builder.add_leaf(hash_leaf(chunk, put))
    return builder.finish()


class LeafBuffer:
    """A reusable buffer a chunk is read into, with room before and after it for its leaf's
    header and trailer: `block()` is then a view of the whole leaf, no copy of the chunk."""

    def __init__(self) -> None:
        self._buf = bytearray(HEAD_ROOM + CHUNK_SIZE + TAIL_ROOM)
        self._view = memoryview(self._buf)
        self.size = 0  # file bytes in the buffer

    def fill(self, stream: BinaryIO) -> int:
        """Reads the next chunk (full reads, as kubo's size-262144 chunker cuts: only the last
        chunk is short); returns its length, 0 at the end of the stream."""
        target = self._view[HEAD_ROOM : HEAD_ROOM + CHUNK_SIZE]
        got = 0
        while got < CHUNK_SIZE:
            n = self._readinto(stream, target[got:])
            if not n:
                break
            got += n
        self.size = got
        return got

    @staticmethod
    def _readinto(stream: BinaryIO, target: memoryview) -> int:
        """readinto where the stream has one (files, BytesIO), read() and a copy otherwise (a
        RawIOBase that implements only read() raises NotImplementedError from readinto)."""
        try:
            n = stream.readinto(target)  # type: ignore[attr-defined]
            if n is not None:
                return int(n)
        except (AttributeError, NotImplementedError):
            pass
        piece = stream.read(len(target))
        target[: len(piece)] = piece
        return len(piece)

    def block(self) -> memoryview:
        """The leaf block of the chunk last read."""
        n = self.size
        head, tail = _leaf_head(n), _leaf_tail(n)
        start = HEAD_ROOM - len(head)
        self._view[start:HEAD_ROOM] = head
        self._view[HEAD_ROOM + n : HEAD_ROOM + n + len(tail)] = tail
        return self._view[start : HEAD_ROOM + n + len(tail)]

    def chunk(self) -> memoryview:
        return self._view[HEAD_ROOM : HEAD_ROOM + self.size]


def read_chunks(stream: BinaryIO, size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """Fixed-size chunks as kubo's size-262144 chunker cuts them (full reads, last one short)."""
    while True:
        chunk = stream.read(size)
        while chunk and len(chunk) < size:
            more = stream.read(size - len(chunk))
            if not more:
                break
            chunk += more
        if not chunk:
            return
        yield chunk
        if len(chunk) < size:
            return


__all__ = [
    "CHUNK_SIZE",
    "MAX_LINKS",
    "BlockFormatError",
    "DagBuilder",
    "Decoded",
    "LeafBuffer",
    "Link",
    "build_file",
    "decode_block",
    "hash_leaf",
    "leaf_block",
    "read_chunks",
]
