"""Pack files: where the embedded store keeps the blocks of files larger than one block.

Profiling `add` showed that one file per 256 KiB block makes ext4's inode allocator the bulk of
an add's time on a busy machine (kernel time in `find_inode_bit` and `recently_deleted`,
scanning for a free inode; 1–2 s of system time for 256 MiB). A multi-block add instead writes
its new blocks into one pack file, at offsets reserved in order (so several threads can write
at once), then records them in a SQLite index (`index.sqlite`, WAL) in one transaction. A block
is visible only once its bytes are in place; two processes adding the same blocks at once both
succeed (the first record stays); a pack whose add failed is deleted and never indexed.

A block found corrupted is marked so in the index: reads go on calling it corrupted, never
missing, and an add of the same bytes writes it again and clears the mark.
"""

from __future__ import annotations

import contextlib
import io
import os
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bountytree.storage.unixfs import Bytes

_SCHEMA = """CREATE TABLE IF NOT EXISTS blocks (
    digest BLOB PRIMARY KEY,
    pack TEXT NOT NULL,
    offset INTEGER NOT NULL,
    length INTEGER NOT NULL,
    corrupt INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID"""
_RECORD = """INSERT INTO blocks (digest, pack, offset, length) VALUES (?, ?, ?, ?)
ON CONFLICT (digest) DO UPDATE SET pack = excluded.pack, offset = excluded.offset,
    length = excluded.length, corrupt = 0
WHERE blocks.corrupt = 1"""
LOCK_WAIT_S = 60  # how long a busy index is waited for


@dataclass(frozen=True)
class Location:
    pack: str  # the pack file's name in packs/
    offset: int
    length: int
    corrupt: bool


@dataclass(frozen=True)
class Entry:
    digest: bytes
    offset: int
    length: int


def _open(path: Path) -> sqlite3.Connection:
    """A connection to the index, in WAL mode, its table made. Two processes opening a new index
    at once can be refused at once (`database is locked`): switching the journal mode and
    creating the table take a lock SQLite does not wait for while another process holds it,
    so that is tried again, within the same LOCK_WAIT_S a busy index is waited for."""
    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        left = max(0.1, deadline - time.monotonic())  # one minute in all, not one per try
        db = sqlite3.connect(path, timeout=left, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # fsync at checkpoints only: blocks are
            db.execute(_SCHEMA)  # checked on every read, an index is never corrupted by a crash
            return db
        except sqlite3.OperationalError as exc:
            db.close()
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class PackIndex:
    """The index of every packed block, and reads from packs. One SQLite connection per thread
    and process (a connection may cross neither); nothing is created until the first pack is
    recorded."""

    def __init__(self, root: Path):
        self.path = root / "index.sqlite"
        self.packs = root / "packs"
        self._local = threading.local()

    def _db(self, create: bool = False) -> sqlite3.Connection | None:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if getattr(self._local, "pid", None) != os.getpid():  # never a parent's, after fork
            db = None
        if db is None:
            if not create and not self.path.exists():
                return None
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = _open(self.path)
            self._local.db, self._local.pid = db, os.getpid()
        return db

    def locate(self, digest: bytes) -> Location | None:
        db = self._db()
        if db is None:
            return None
        row = db.execute(
            "SELECT pack, offset, length, corrupt FROM blocks WHERE digest = ?", (digest,)
        ).fetchone()
        return Location(row[0], row[1], row[2], bool(row[3])) if row else None

    def has_good(self, digest: bytes) -> bool:
        where = self.locate(digest)
        return where is not None and not where.corrupt

    def read(self, where: Location) -> bytes:
        """The block's bytes as the pack holds them (the caller checks their hash); a pack
        shorter than its index says gives fewer bytes, which then fail that check. The last
        few packs read stay open, per thread (a file's blocks are mostly in one pack)."""
        files: dict[str, io.FileIO] = self._local.__dict__.setdefault("files", {})
        f = files.get(where.pack)
        if f is None:
            f = io.FileIO(self.packs / where.pack, "r")
            files[where.pack] = f
            if len(files) > 4:
                files.pop(next(iter(files))).close()
        return os.pread(f.fileno(), where.length, where.offset)

    def mark_corrupt(self, digest: bytes) -> None:
        db = self._db()
        if db is not None:
            db.execute("UPDATE blocks SET corrupt = 1 WHERE digest = ?", (digest,))

    def record(self, pack: str, entries: list[Entry]) -> None:
        db = self._db(create=True)
        assert db is not None
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(_RECORD, [(e.digest, pack, e.offset, e.length) for e in entries])
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")


class PackWriter:
    """One add's pack: offsets are reserved in order by the adding thread, blocks written at
    them by any thread; `finish` records the blocks once all are written, `abandon` deletes."""

    def __init__(self, index: PackIndex):
        self.index = index
        index.packs.mkdir(parents=True, exist_ok=True)
        self.name = f"{os.getpid()}-{secrets.token_hex(8)}.pack"
        self._fd = os.open(
            index.packs / self.name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644
        )
        self._end = 0
        self.entries: list[Entry] = []

    def reserve(self, digest: bytes, length: int) -> int:
        offset = self._end
        self._end += length
        self.entries.append(Entry(digest, offset, length))
        return offset

    def write_at(self, block: Bytes, offset: int) -> None:
        view = memoryview(block)
        while view:
            written = os.pwrite(self._fd, view, offset)
            view, offset = view[written:], offset + written

    def finish(self) -> None:
        os.close(self._fd)
        if self.entries:
            self.index.record(self.name, self.entries)
        else:
            os.unlink(self.index.packs / self.name)

    def abandon(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)
        with contextlib.suppress(OSError):
            os.unlink(self.index.packs / self.name)


__all__ = ["Entry", "Location", "PackIndex", "PackWriter"]
