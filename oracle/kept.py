"""The validator's own copies of the files it admitted (trained nodes' weights, architectures'
specs), so that the task's best node can be counted in every session after its author withdraws
a file from the store (the Ladder's exact best, docs/design.md). One owner-only folder per task
(`validator/<chainId>/weights/<contract>-task-N/`, a file per CID). As sessions are admitted, the
copies of trained nodes settled since are removed unless a node that may still be counted (a
pending one, the best, an architecture) names the same file: the folder holds the pending
nodes, the best and the specs. An architecture's weights need no copy: they follow from its
spec's seed.

Keeping is best effort: a full or read-only disk costs the copy, never the session (the first
version let the write's error end every admission). A copy is used only if it is a regular file
within the spec's size limit whose bytes have the CID it is named by; anything else in its place
is replaced from the store.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
from collections.abc import Iterable
from pathlib import Path

from bountytree.files import atomic_write
from bountytree.storage.store import cid_of

CIDV0 = re.compile(r"^Qm[1-9A-HJ-NP-Za-km-z]{44}$")  # a weights CID, safe as a file name


class KeptFiles:
    def __init__(self, folder: Path):
        self.folder = folder

    def read(self, cid: str, max_bytes: int) -> bytes | None:
        """The kept copy of `cid`, if there is a good one."""
        if not CIDV0.match(cid):
            return None
        try:
            fd = os.open(self.folder / cid, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            return None
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode) or st.st_size > max_bytes:
                return None
            data = f.read(max_bytes + 1)
        return data if len(data) <= max_bytes and cid_of(data) == cid else None

    def keep(self, cid: str, data: bytes) -> str | None:
        """Keeps a copy of `data` (whose CID is `cid`); why it could not, if it could not."""
        if not CIDV0.match(cid):
            return None
        try:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            if (self.folder / cid).is_symlink():
                (self.folder / cid).unlink()
            atomic_write(self.folder / cid, data, durable=False)
        except OSError as exc:
            return f"no copy kept of {cid}: {exc.strerror or exc}"
        return None

    def drop(self, cids: Iterable[str]) -> None:
        """Removes the copies of `cids` (nodes settled since they were kept), as far as it can."""
        for cid in cids:
            if CIDV0.match(cid):
                with contextlib.suppress(OSError):
                    (self.folder / cid).unlink(missing_ok=True)
