"""Tasks whose best node the validator could not count, kept on disk: the nodes counted meanwhile
wait for a session that counts it, each for up to HOLD_S from its reveal (or from when the best
was first found unread, if later).

The Ladder compares a node against the exact score of the task's best (bountytree/market/
ladder.py). The validator counts the best in every session, from the copy it kept, its store or
the model party's; with all three lost it answers without the count, and the best's exact score
is then anything from its release to the next release less one. Recorded against the most it
can be (the second version), a node that had earned a release carried its parent's score
whenever the best was lost. Holding only the nodes whose record depends on the best showed, by
their wait, that their exact score lay within a margin of it: a threshold the Ladder does not
publish (attacker review of that version). So every node counted while the best is unread
waits, whatever its score, and is recorded against the most only once its own hour is over.

The record is on disk and paces the sessions (a retry that doubles, as a failing node's), so
that an oracle run from cron (`--once`) does not spend a session each round on nodes that wait
(the same review: 120 sessions an hour exhaust the validator's limit).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bountytree.files import atomic_write_json

from .pacing import GIVE_UP_S, Failing

# A counted node waits for the best's count this long (chain time): as long as a failing node's
# sessions are tried before it may be given up on.
HOLD_S = GIVE_UP_S


@dataclass
class Unread:
    """A task's best node that the validator could not count: which, and its pacing."""

    best_node: int
    pacing: Failing


class UnreadBests:
    """The tasks whose best is unread, by task id, in a file named for the deployment (a dev
    chain reset under the same address reuses task ids)."""

    def __init__(self, path: Path, deployment: str, log: Callable[[str], None]):
        self.path, self.deployment, self.log = path, deployment, log
        self.tasks: dict[int, Unread] = {}
        try:
            raw = json.loads(path.read_text())
            if deployment and raw["deployment"] == deployment:
                self.tasks = {int(t): _unread(u) for t, u in raw["tasks"].items()}
        except (OSError, ValueError, AttributeError, TypeError, KeyError, ArithmeticError):
            pass

    def _of(self, task_id: int, best_node: int) -> Failing | None:
        """The task's pacing, if a session could not count its best, still `best_node`."""
        unread = self.tasks.get(task_id)
        return unread.pacing if unread is not None and unread.best_node == best_node else None

    def resting(self, task_id: int, best_node: int, now: float) -> Failing | None:
        """The task's pacing, if its best was unread and is not due to be tried yet."""
        pacing = self._of(task_id, best_node)
        return pacing if pacing is not None and pacing.resting(now) else None

    def since(self, task_id: int, best_node: int, now: float) -> float:
        """When a session first could not count `best_node` (`now` if none has yet)."""
        pacing = self._of(task_id, best_node)
        return pacing.since if pacing is not None else now

    def unread(self, task_id: int, best_node: int, now: float, hold_ends: float) -> None:
        """A session could not count the best: tried again later, by `hold_ends` at the latest
        (when the first node that waits for it is recorded anyway)."""
        pacing = self._of(task_id, best_node)
        if pacing is None:
            pacing = Failing(since=now)
            self.tasks[task_id] = Unread(best_node, pacing)
        pacing.failed(now, hold_ends)
        self._save()

    def read(self, task_id: int) -> None:
        """A session counted the best."""
        if self.tasks.pop(task_id, None) is not None:
            self._save()

    def _save(self) -> None:
        tasks = {
            str(t): {
                "best_node": u.best_node,
                "pacing": [u.pacing.since, u.pacing.count, u.pacing.next_try],
            }
            for t, u in self.tasks.items()
        }
        try:
            atomic_write_json(self.path, {"deployment": self.deployment, "tasks": tasks})
        except OSError as exc:  # kept in memory: paced by this process, not the next
            self.log(f"the unread bests' record is not kept ({exc})")


def _unread(raw: dict) -> Unread:
    """One task's record as `_save` wrote it; ValueError for anything else (a next try at
    infinity would rest the task for good)."""
    since, count, next_try = raw["pacing"]
    times = (float(since), float(next_try))
    if not all(math.isfinite(t) for t in times):
        raise ValueError("not a time")
    return Unread(int(raw["best_node"]), Failing(times[0], int(count), times[1]))
