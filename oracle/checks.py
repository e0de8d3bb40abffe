"""What the oracle checks of one node's own files before it may be scored.

A node's files come from strangers, so each check is about safety as much as shape: the spec
must validate (never executed) and fit the task (features, classes); an architecture's weights
must be exactly its spec's seeded initialisation (an architecture carries no training); weights
must be safetensors (never unpickled), fit the spec exactly, be finite and under the size
limit, give finite outputs on the task's input shape, and keep every value within what
CrypTen's fixed-point encoding holds for inputs in the task's declared range (`bounds.py`). A
node whose files have not reached the store is given `fetch_timeout` seconds from its submission
before it is rejected as missing; a store that cannot be reached, or hands back bytes that do
not hash to their CID, is never the node's fault (see `Fetcher`). Checks that compare a node
with others (lineage, replay) live in `lineage.py` and `replay.py`.

Every rejection carries a `Reason`; the reason is chosen where the failure is detected, never
from the wording of a message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from bountytree.market.actions import NodeView
from bountytree.market.taskinfo import TaskInfo
from bountytree.models import weights as weights_io
from bountytree.models.bounds import check_evaluable
from bountytree.models.datasets import InputBox
from bountytree.models.spec import MAX_SPEC_BYTES, ModelSpec, SpecError, load_spec
from bountytree.reasons import Reason, Rejected
from bountytree.storage.store import (
    BlockCorrupted,
    BlockMissing,
    Store,
    StoreError,
    StoreUnavailable,
    TooLarge,
    cid_of,
    get_bytes,
)


@dataclass
class Ready:
    node: NodeView
    spec: ModelSpec
    weights: bytes
    flat: torch.Tensor  # the weights in one float64 vector, for lineage
    verified_ops: int = 0
    dataset_id: int = 0


@dataclass
class Reject:
    node: NodeView
    reason: Reason
    detail: str


@dataclass
class Wait:
    node: NodeView
    detail: str
    # Past its fetch timeout with nobody to blame (its file corrupted in the store): it is not
    # rejected, but no longer holds up an early finalize either.
    overdue: bool = False
    # Waits for files of its own not come yet (or under, or behind, a node that does), never for
    # the validator: it does not keep the word that the validator keeps work waiting
    # (service._held). A wait any store may cause (a file corrupted or not pinned there, an
    # older node's file it cannot read) is not own: a second oracle process on another store,
    # its files withheld, took the word back (attacker review).
    own: bool = False


class NotYet(Exception):
    """A file is not in the store yet, and the node is still inside its fetch timeout; or it is
    corrupted in the store (nobody's fault), `overdue` once past that timeout. `own` when what
    is missing is the node's own file inside its fetch timeout: its author's to serve
    (Wait.own)."""

    def __init__(self, detail: str, *, overdue: bool = False, own: bool = False):
        super().__init__(detail)
        self.overdue, self.own = overdue, own


@dataclass
class Fetcher:
    """Reads a node's files from the store. Of the store's three kinds of failure only one may
    ever reject a node: missing past the node's time limit (Reason.MISSING; before it, wait).
    Corrupted bytes (they do not hash to the CID, so the author cannot have made them) mean
    wait for a good copy; an unreachable store is nobody's fault (StoreUnavailable propagates,
    the round is retried). What the author did make is theirs: a file over the limit
    (TOO_LARGE) or verified blocks that are not a UnixFS file (CORRUPT)."""

    store: Store
    age: Callable[[], float]  # the node's age in chain seconds, asked only when a file is missing
    fetch_timeout: float
    own: bool = False  # the files are the node's own (not a parent's, spec's or dataset's)

    def get(self, cid: str, limit: int, what: str) -> bytes:
        try:
            data = get_bytes(self.store, cid, limit)
        except BlockMissing:
            age_s = self.age()
            if age_s < self.fetch_timeout:
                raise NotYet(
                    f"{what} {cid} not in the store yet ({age_s:.0f}s of {self.fetch_timeout:.0f}s)",
                    own=self.own,
                ) from None
            raise Rejected(Reason.MISSING, f"{what} {cid} never reached the store") from None
        except BlockCorrupted as exc:
            raise NotYet(
                f"{what}: {exc}; nobody's fault, waiting for a good copy",
                overdue=self.age() >= self.fetch_timeout,
            ) from None
        except StoreUnavailable:
            raise
        except TooLarge as exc:
            raise Rejected(Reason.TOO_LARGE, f"{what}: {exc}") from None
        except StoreError as exc:
            raise Rejected(Reason.CORRUPT, f"{what}: {exc}") from None
        if cid_of(data) != cid:
            # Blocks laid out other than as the store adds the bytes (another chunking): the
            # author's making. The validator takes a file its store lacks from the model party
            # only when the bytes give the chain's CID, so a file nobody else could check
            # would let one party's store alone serve it (admission.Gate.complete). The store's
            # reader refuses most other layouts (other chunk sizes, other depths), not all
            # (extra UnixFS fields, one oversized leaf: the attacker review of this check).
            raise Rejected(
                Reason.CORRUPT,
                f"{what} {cid}: its blocks are not laid out as the store adds its bytes "
                f"({cid_of(data)})",
            )
        return data

    def pin(self, cid: str, what: str) -> None:
        """Keeps the file in this store for good (its blocks read whole by `get` just before): a
        node is scored only once its files are pinned, so the task's best is always one whose
        files this oracle can give the validator (the Ladder's exact best). A pin that fails,
        whatever the store says (full, busy, collecting, down), makes the node wait like a file
        not come, overdue past its fetch timeout, and never rejects it: the file was read."""
        try:
            self.store.pin(cid)
        except StoreError as exc:
            raise NotYet(
                f"{what} {cid} cannot be pinned in this oracle's store ({exc}); nobody's fault",
                overdue=self.age() >= self.fetch_timeout,
            ) from None


def architecture_spec(fetch: Fetcher, node: NodeView, task: TaskInfo) -> ModelSpec:
    """An architecture's spec, checked against the task; raises Rejected or NotYet."""
    raw = fetch.get(node.cid, MAX_SPEC_BYTES, "spec")
    try:
        spec = load_spec(raw, f"spec {node.cid}")
    except SpecError as exc:
        raise Rejected(Reason.INVALID_SPEC, str(exc)) from None
    if spec.num_features != task.num_features or spec.num_classes != task.num_classes:
        raise Rejected(
            Reason.UNFIT_SPEC,
            f"spec takes {spec.num_features} features and {spec.num_classes} classes; "
            f"the task has {task.num_features} and {task.num_classes}",
        )
    if not spec.init_weights:
        raise Rejected(Reason.INVALID_SPEC, "spec names no init_weights")
    return spec


def check(
    fetch: Fetcher,
    node: NodeView,
    spec: ModelSpec,
    box: InputBox | None = None,
) -> Ready:
    """Checks one node's weights against its architecture's (already checked) spec and, given
    the task's input range, that its values stay within CrypTen's fixed-point range
    (bounds.py); raises Rejected or NotYet."""
    cid = node.weights_cid(spec)
    raw = fetch.get(cid, weights_io.max_bytes(spec), "weights")
    state = weights_io.load(raw, spec, f"weights {cid}")  # WeightsError is Rejected with its reason
    if node.kind == "architecture" and not weights_io.is_initial(state, spec):
        raise Rejected(
            Reason.NOT_INITIAL,
            f"weights {cid} are not the initialisation of seed "
            f"{spec.training['seed']}: an architecture carries no training",
        )
    check_evaluable(spec, state, box, f"weights {cid}")
    return Ready(node, spec, raw, weights_io.flatten(state))
