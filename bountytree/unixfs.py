"""UnixFS files in dag-pb blocks, byte for byte as kubo's `ipfs add` writes them by default.

Defaults reproduced: fixed 256 KiB chunks, leaves wrapped in dag-pb (no raw leaves), the
balanced layout with at most 174 links per node, CIDv0. Encoding details that decide the CID:
links are serialized before data, each link carries an empty Name, `blocksizes` is an
unpacked repeated field, and the empty file is `Type=File, filesize=0` with no Data field.

The builder is streaming: it keeps at most 174 pending links per tree level, so memory does
not grow with the file.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future
from dataclasses import dataclass

CHUNK_SIZE = 256 * 1024
MAX_LINKS = 174
TYPE_FILE = 2


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


def _fields(data: bytes) -> Iterator[tuple[int, int, object]]:
    """(field number, wire type, value) for each field; values are int or memoryview."""
    buf = memoryview(data)
    pos = 0
    while pos < len(buf):
        key, pos = _read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _read_varint(buf, pos)
        elif wire == 2:
            length, pos = _read_varint(buf, pos)
            if pos + length > len(buf):
                raise BlockFormatError("truncated field")
            value, pos = buf[pos : pos + length], pos + length
        else:
            raise BlockFormatError(f"unsupported wire type {wire}")
        yield number, wire, value


# ─────────────────────────────── nodes ───────────────────────────────


@dataclass(frozen=True)
class Link:
    digest: bytes  # sha256 of the child block
    tsize: int  # the child block plus everything below it
    filesize: int  # file bytes below the child


def leaf_block(chunk: bytes) -> bytes:
    """PBNode{Data: UnixFS{Type: File, Data: chunk, filesize}}, assembled with one copy of the
    chunk (the headers' lengths are known up front)."""
    kind = _field_varint(1, TYPE_FILE)
    data_head = _varint(2 << 3 | 2) + _varint(len(chunk)) if chunk else b""
    size = _field_varint(3, len(chunk))
    unixfs_len = len(kind) + len(data_head) + len(chunk) + len(size)
    return b"".join((_varint(1 << 3 | 2), _varint(unixfs_len), kind, data_head, chunk, size))


def parent_block(links: list[Link]) -> bytes:
    out = bytearray()
    for link in links:
        pb_link = (
            _field_bytes(1, b"\x12\x20" + link.digest)
            + _field_bytes(2, b"")
            + _field_varint(3, link.tsize)
        )
        out += _field_bytes(2, pb_link)
    unixfs = _field_varint(1, TYPE_FILE) + _field_varint(3, sum(l.filesize for l in links))
    for link in links:
        unixfs += _field_varint(4, link.filesize)
    out += _field_bytes(1, unixfs)
    return bytes(out)


@dataclass
class Decoded:
    links: list[bytes]  # child digests, in file order
    data: bytes  # file bytes held in this block (leaves)
    filesize: int


def decode_block(block: bytes) -> Decoded:
    links: list[bytes] = []
    unixfs = None
    for number, wire, value in _fields(block):
        if number == 2 and wire == 2:
            digest = None
            for n2, w2, v2 in _fields(bytes(value)):
                if n2 == 1 and w2 == 2:
                    mh = bytes(v2)
                    if len(mh) != 34 or mh[:2] != b"\x12\x20":
                        raise BlockFormatError("link is not a sha2-256 multihash")
                    digest = mh[2:]
            if digest is None:
                raise BlockFormatError("link without hash")
            links.append(digest)
        elif number == 1 and wire == 2:
            unixfs = bytes(value)
        else:
            raise BlockFormatError(f"unexpected dag-pb field {number}")
    if unixfs is None:
        raise BlockFormatError("dag-pb node without UnixFS data")
    kind, data, filesize = None, b"", 0
    for number, wire, value in _fields(unixfs):
        if number == 1 and wire == 0:
            kind = value
        elif number == 2 and wire == 2:
            data = bytes(value)
        elif number == 3 and wire == 0:
            filesize = value
    if kind != TYPE_FILE:
        raise BlockFormatError(f"UnixFS type {kind} is not a file")
    return Decoded(links, data, filesize)


# ────────────────────────────── builder ──────────────────────────────


def _leaf(chunk: bytes, put: Callable[[bytes, bytes], None]) -> Link:
    block = leaf_block(chunk)
    digest = hashlib.sha256(block).digest()
    put(digest, block)
    return Link(digest, len(block), len(chunk))


def _leaves(chunks: Iterator[bytes], put, pool: Executor | None, ahead: int = 4) -> Iterator[Link]:
    """Leaf links in order. With a thread pool, up to `ahead` chunks are hashed and written at
    once (hashlib and file writes release the GIL), so memory stays bounded by `ahead` chunks."""
    if pool is None:
        for chunk in chunks:
            yield _leaf(chunk, put)
        return
    pending: deque[Future] = deque()
    for chunk in chunks:
        pending.append(pool.submit(_leaf, chunk, put))
        if len(pending) >= ahead:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def build_file(
    chunks: Iterator[bytes], put: Callable[[bytes, bytes], None], pool: Executor | None = None
) -> Link:
    """Lays `chunks` out as kubo's balanced DAG, calling put(digest, block) for every block
    (leaves before their parents); returns the root's link."""
    levels: list[list[Link]] = [[]]

    def push(level: int, link: Link) -> None:
        if level == len(levels):
            levels.append([])
        levels[level].append(link)
        if len(levels[level]) == MAX_LINKS:
            flush(level)

    def flush(level: int) -> None:
        block = parent_block(levels[level])
        digest = hashlib.sha256(block).digest()
        put(digest, block)
        link = Link(
            digest,
            len(block) + sum(l.tsize for l in levels[level]),
            sum(l.filesize for l in levels[level]),
        )
        levels[level] = []
        push(level + 1, link)

    count = 0
    for link in _leaves(chunks, put, pool):
        push(0, link)
        count += 1
    if count == 0:
        return _leaf(b"", put)
    # Close the right edge: wrap what is pending at each level while anything remains above it.
    for level in range(len(levels)):
        pending = levels[level]
        above = any(levels[h] for h in range(level + 1, len(levels)))
        if pending and (above or len(pending) > 1):
            flush(level)
    top = next(level for level in reversed(levels) if level)
    assert len(top) == 1
    return top[0]


def read_chunks(stream, size: int = CHUNK_SIZE) -> Iterator[bytes]:
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
