"""When a custodian first found something missing, kept on disk: a node's file, the sponsor's
validation share, the dealer (`clocks.json` in the custodian's folder: when first and last
found missing, wall-clock seconds; a node's clock stops once its files are read, or once it is
no longer pending).

Each clock decides when a party is blamed: a node rejected for files that never came, the
sponsor's share said unreadable on-chain, a node said to wait for the dealer. In memory only,
they started again with every restart, so a custodian restarted more often than the timeout
(by a supervisor, or run `--once` from cron) never blamed anyone: a sponsor that never served
its share kept its bond, and a node whose files never came stayed pending (attacker review of
the validation word). A file that cannot be read or written starts the clocks afresh, which
only ever delays a word. Processes of one account on one home (one per `--task` shard) share
the file: each writes only the clock it moved, under a lock, into the file as it finds it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import time
from collections.abc import Iterator
from pathlib import Path

from bountytree.files import atomic_write_json

Key = tuple[str, int]  # ("node", id), ("validation", task), ("dealer", task)
MAX_CLOCKS = 100_000  # a bound on the file; the oldest give way


class Clocks:
    def __init__(self, path: Path, log=print):
        self.path = Path(path)
        self.log = log
        self._seen: dict[Key, tuple[float, float]] = _read(self.path)  # (first, last)

    def still_waiting(
        self,
        key: Key,
        timeout: float,
        *,
        gap: float | None = None,
        since: float | None = None,
        in_step: bool = False,
    ) -> bool:
        """Whether what `key` names, found missing now, is still within `timeout` seconds of
        when it was first found missing (the clock starts now if it was not running). With
        `gap`, a clock last touched more than `gap` seconds before `since` (the look that found
        it missing began then; default now) starts again: findings that far apart are no streak
        (the dealer's: a custodian that held no session for a while says nothing of the dealer
        meanwhile; attacker review of the clocks). Findings `in_step` (the look before came
        just before this one, busy elsewhere meanwhile) keep the streak, but the time between
        them is not counted: the clock's start moves forward by it."""
        now = time.time()
        started = key not in self._seen
        first, last = self._seen.get(key, (now, now))
        look = now if since is None else since
        if gap is not None and look - last > gap:
            first = first + (look - last) if in_step else now
        self._seen[key] = (first, now)
        _bound(self._seen, key)
        if started or gap is not None:  # written when it matters on restart, not each round
            self._save(key)
        return now - first < timeout

    def stop(self, key: Key) -> None:
        """What `key` names is there (or no longer counts): its clock starts again next time."""
        if self._seen.pop(key, None) is not None:
            self._save(key)

    def _save(self, key: Key) -> None:
        """Writes `key`'s clock, or its end, into the file as it is on disk now: a whole-file
        write from memory dropped the clocks another process of this account had started."""
        try:
            with _locked(self.path):
                record = _read(self.path)
                if key in self._seen:
                    record[key] = self._seen[key]
                    _bound(record, key)
                else:
                    record.pop(key, None)
                atomic_write_json(
                    self.path, {f"{kind}:{n}": list(seen) for (kind, n), seen in record.items()}
                )
        except OSError as exc:  # kept in memory: this process still blames in time
            self.log(f"the clocks are not kept on disk ({exc})")


def _bound(seen: dict[Key, tuple[float, float]], key: Key) -> None:
    """Past MAX_CLOCKS, the longest untouched clock gives way, never `key` (just moved)."""
    if len(seen) > MAX_CLOCKS:
        del seen[min((k for k in seen if k != key), key=lambda k: seen[k][1])]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield  # closing the file releases the lock


def _read(path: Path) -> dict[Key, tuple[float, float]]:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    seen: dict[Key, tuple[float, float]] = {}
    if isinstance(record, dict):
        for name, times in record.items():
            kind, _, number = str(name).partition(":")
            if (
                number.isdigit()
                and isinstance(times, list)
                and len(times) == 2
                and all(isinstance(t, int | float) for t in times)
            ):
                seen[(kind, int(number))] = (float(times[0]), float(times[1]))
    return seen
