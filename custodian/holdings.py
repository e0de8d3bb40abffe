"""What a custodian keeps on disk: its share of each node (and the salt of its commitment),
and its share of each task's exact best after each scored node, all sealed to its own key.

A copied disk, a backup or a store holds nothing readable without the key file. Files are
written atomically; a holding is never overwritten once its commitment is on-chain.

A trained node's share is kept in two steps, so that a custodian killed at any point never
leaves the other committed to a share it lacks: the training session keeps it *tentatively*
(`node-N.tentative.sealed`), the two custodians then tell each other so, and only a session that
got that word from the other ends well; the custodian then promotes its share (`node-N.sealed`)
and commits to it. A custodian that finds the other committed while it holds a tentative share
promotes it: the other committed only after hearing it was kept.

A scoring session's share of the task's best after the node (with the record it revealed) is
kept the same way, the other's attestation standing for its commitment: the two custodians'
shares of a best then always come from one run. A custodian whose scoring of a node ended well
never scores it again, whatever the chain shows (it attests what it kept), and one whose scoring
revealed the record without ending well gives the node up (`MAX_SCORING_RUNS` in service.py,
counted on disk right before each reveal): each run lets a deviating custodian choose what its
record compares, and re-running until the other attested used to give it a comparison a round,
and could leave the two holding shares of different runs.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

import numpy as np

from bountytree.errors import UserError
from bountytree.files import atomic_write
from bountytree.private import handover, sealing
from bountytree.private.shares import Share, new_salt

# The counts' file names per session kind ("training-over-budget-N" is the name trainings were
# counted under before scorings were counted too: counts on disk carry over)
_COUNTED_AS = {"train": "training", "score": "scoring"}


class Holdings:
    def __init__(self, folder: Path, private_key: bytes):
        self.folder = Path(folder)
        self.key = private_key
        self.public = sealing.public_key(private_key)

    def _node(self, task_id: int, node_id: int) -> Path:
        return self.folder / f"task-{task_id}" / f"node-{node_id}.sealed"

    def share(self, task_id: int, node_id: int) -> handover.Opened | None:
        path = self._node(task_id, node_id)
        if not path.exists():
            return None
        return handover.open_share(path.read_bytes(), self.key, str(path))

    def keep(self, task_id: int, node_id: int, share: Share) -> handover.Opened:
        salt = new_salt()
        atomic_write(self._node(task_id, node_id), handover.seal_share(share, salt, self.public))
        return handover.Opened(share, salt)

    def _tentative(self, task_id: int, node_id: int) -> Path:
        return self.folder / f"task-{task_id}" / f"node-{node_id}.tentative.sealed"

    def keep_tentatively(self, task_id: int, node_id: int, share: Share) -> None:
        """A trained share, before the other custodian has said it kept its own."""
        sealed = handover.seal_share(share, new_salt(), self.public)
        atomic_write(self._tentative(task_id, node_id), sealed)

    def promote(self, task_id: int, node_id: int) -> handover.Opened | None:
        """The tentative share made the node's holding (None if there is none)."""
        tentative = self._tentative(task_id, node_id)
        if tentative.exists():
            tentative.replace(self._node(task_id, node_id))
        return self.share(task_id, node_id)

    def _best(self, task_id: int, node_id: int) -> Path:
        return self.folder / f"task-{task_id}" / f"best-after-{node_id}.sealed"

    @staticmethod
    def best_source(node_id: int, scored: Collection[int]) -> int:
        """The node whose kept best `node_id` is compared with: the last node before it that
        the chain records as scored (`scored`), or 0 (none: a best of zero). From the chain
        alone, so that both custodians name the same one (in their session's header: neither
        adds its share of another best); a node whose record never landed (the two
        attestations differed, say) raises no bar for the nodes after it."""
        return max((n for n in scored if n < node_id), default=0)

    def best_before(self, task_id: int, node_id: int, index: int, source: int) -> np.ndarray:
        """This custodian's share of the task's exact best as kept after node `source`
        (`best_source`; 0: a share of zero). Every scored node's best was kept by both
        custodians before they attested; one missing here is said, not replaced by another."""
        if not source:
            return np.zeros((), dtype=np.int64)
        path = self._best(task_id, source)
        if not path.exists():
            raise UserError(f"{path}: no kept best after node {source}; node {node_id} waits")
        opened = Share.from_bytes(sealing.open_sealed(path.read_bytes(), self.key, str(path)))
        if opened.party != index:
            raise ValueError(f"{path}: another custodian's share")
        return opened.tensors["best"].reshape(())

    def _given_up(self, task_id: int, node_id: int) -> Path:
        return self.folder / f"task-{task_id}" / f"given-up-{node_id}"

    def give_up(self, task_id: int, node_id: int) -> None:
        """Marks a node this custodian will never score again (its record fell out of range,
        say): kept on disk, so that a restart does not score it again (each retry would give a
        deviating custodian one more bit of its score) nor fall out of step with the other."""
        path = self._given_up(task_id, node_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()

    def given_up(self, task_id: int) -> set[int]:
        folder = self.folder / f"task-{task_id}"
        return {int(p.name[len("given-up-") :]) for p in folder.glob("given-up-*")}

    def _validation_word(self, task_id: int) -> Path:
        return self.folder / f"task-{task_id}" / "validation-word"

    def say_validation_word(self, task_id: int) -> None:
        """This custodian says it cannot read its share of the sponsor's validation rows (kept
        before the word is sent: a word on-chain always has its record here)."""
        atomic_write(self._validation_word(task_id), b"0\n")

    def note_validation_read(self, task_id: int, newest: int) -> None:
        """It read the share again while the task's newest node was `newest`: nodes after it
        never waited on the rows."""
        atomic_write(self._validation_word(task_id), f"{newest}\n".encode())

    def validation_word(self, task_id: int) -> int | None:
        """None: no word said (or done with); 0: said, not read since; else the newest node
        when it was read again, up to which the pending nodes hold the word. On disk, so that
        a restart keeps the word on the nodes it held."""
        path = self._validation_word(task_id)
        if not path.exists():
            return None
        try:  # anything but a node id (a damaged file) is a word not read since: read again
            return max(0, int(path.read_text()))
        except ValueError:
            return 0

    def forget_validation_word(self, task_id: int) -> None:
        self._validation_word(task_id).unlink(missing_ok=True)

    def _best_tentative(self, task_id: int, node_id: int) -> Path:
        return self.folder / f"task-{task_id}" / f"best-after-{node_id}.tentative.sealed"

    def keep_best_tentatively(
        self, task_id: int, node_id: int, index: int, best: np.ndarray, recorded: int
    ) -> None:
        """A scoring session's share of the best after the node and the record it revealed,
        before the other custodian has said it kept its own."""
        share = Share(
            index,
            {
                "best": np.asarray(best, dtype=np.int64).reshape(1),
                "recorded": np.array([recorded], dtype=np.int64),
            },
        )
        sealed = sealing.seal(share.to_bytes(), self.public)
        atomic_write(self._best_tentative(task_id, node_id), sealed)

    def promote_best(self, task_id: int, node_id: int, index: int) -> int | None:
        """The tentative best made the one kept after the node; the record it goes with (None:
        no scoring of the node was kept)."""
        tentative = self._best_tentative(task_id, node_id)
        if tentative.exists():
            tentative.replace(self._best(task_id, node_id))
        return self.scored(task_id, node_id, index)

    def scored(self, task_id: int, node_id: int, index: int) -> int | None:
        """The record of this custodian's scoring of the node that ended well (its best
        promoted), or None: it never scores the node again once there is one."""
        path = self._best(task_id, node_id)
        if not path.exists():
            return None
        opened = Share.from_bytes(sealing.open_sealed(path.read_bytes(), self.key, str(path)))
        if opened.party != index:
            raise ValueError(f"{path}: another custodian's share")
        if "recorded" not in opened.tensors:  # kept by a version that did not keep the record
            return None
        return int(opened.tensors["recorded"].reshape(-1)[0])

    def _count(self, task_id: int, name: str) -> Path:
        return self.folder / f"task-{task_id}" / name

    def _add_one(self, path: Path) -> None:
        atomic_write(path, str(self._read_count(path) + 1).encode())

    def note_scoring_run(self, task_id: int, node_id: int) -> None:
        """Counts a scoring session of the node that goes on to reveal its record (written
        before it does, by the session)."""
        self._add_one(self._count(task_id, f"scoring-runs-{node_id}"))

    def scoring_runs(self, task_id: int, node_id: int) -> int:
        return self._read_count(self._count(task_id, f"scoring-runs-{node_id}"))

    @staticmethod
    def _read_count(path: Path) -> int:
        return int(path.read_text()) if path.exists() else 0

    def note_attestation_sent(self, task_id: int, node_id: int) -> None:
        """Counts an attestation of the node's kept record that landed on the chain."""
        self._add_one(self._count(task_id, f"attestations-{node_id}"))

    def attestations_sent(self, task_id: int, node_id: int) -> int:
        return self._read_count(self._count(task_id, f"attestations-{node_id}"))

    def note_over_budget(self, task_id: int, node_id: int, kind: str) -> None:
        """Counts a session of the node of `kind` ("train" or "score") that ran over its
        budget, the dealer not to blame. Each kind is counted apart: a training that ran over
        once and then ended well does not count against the node's scoring (attacker review:
        one count had a node refused at its first scoring)."""
        self._add_one(self._over_budget(task_id, node_id, kind))

    def over_budget(self, task_id: int, node_id: int, kind: str) -> int:
        return self._read_count(self._over_budget(task_id, node_id, kind))

    def _over_budget(self, task_id: int, node_id: int, kind: str) -> Path:
        return self._count(task_id, f"{_COUNTED_AS[kind]}-over-budget-{node_id}")
