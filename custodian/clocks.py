"""When a custodian first found something missing, kept on disk: a node's file, the sponsor's
validation share, the dealer (`clocks.json` in the custodian's folder, wall-clock seconds).

Each clock decides when a party is blamed: a node rejected for files that never came, the
sponsor's share said unreadable on-chain, a node said to wait for the dealer. In memory only,
they started again with every restart, so a custodian restarted more often than the timeout
(by a supervisor, or run `--once` from cron) never blamed anyone: a sponsor that never served
its share kept its bond, and a node whose files never came stayed pending (attacker review of
the validation word). A file that cannot be read or written starts the clocks afresh, which
only ever delays a word.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from bountytree.files import atomic_write_json

Key = tuple[str, int]  # ("node", id), ("validation", task), ("dealer", task)
MAX_CLOCKS = 100_000  # a bound on the file; the oldest give way


class Clocks:
    def __init__(self, path: Path, log=print):
        self.path = Path(path)
        self.log = log
        self._first: dict[Key, float] = _read(self.path)

    def still_waiting(self, key: Key, timeout: float) -> bool:
        """Whether what `key` names, found missing now, is still within `timeout` seconds of
        when it was first found missing (the clock starts now if it was not running)."""
        now = time.time()
        if key not in self._first:
            self._first[key] = now
            if len(self._first) > MAX_CLOCKS:
                del self._first[min(self._first, key=self._first.__getitem__)]
            self._save()
        return now - self._first[key] < timeout

    def stop(self, key: Key) -> None:
        """What `key` names is there (or no longer counts): its clock starts again next time."""
        if self._first.pop(key, None) is not None:
            self._save()

    def _save(self) -> None:
        record = {f"{kind}:{number}": first for (kind, number), first in self._first.items()}
        try:
            atomic_write_json(self.path, record)
        except OSError as exc:  # kept in memory: this process still blames in time
            self.log(f"the clocks are not kept on disk ({exc})")


def _read(path: Path) -> dict[Key, float]:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    first: dict[Key, float] = {}
    if isinstance(record, dict):
        for name, seconds in record.items():
            kind, _, number = str(name).partition(":")
            if number.isdigit() and isinstance(seconds, int | float):
                first[(kind, int(number))] = float(seconds)
    return first
