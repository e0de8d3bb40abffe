"""The Ladder (Blum and Hardt, "The Ladder: A Reliable Leaderboard for Machine Learning
Competitions", 2015): what the oracle records of a node's exact validation score.

An exact score for every node leaks the validation set: many adaptive submissions can learn its
labels, and the best of many submissions overfits it. The Ladder publishes a score only when it
beats the task's best exact score (the exact score of the node that set the best recorded one)
by the task's margin η, and then only rounded down to a multiple of η. Any other node records
its parent's score (0 for an architecture): that reveals
one bit, cannot fall below the parent (so no stake is forfeited for it) and gains nothing on the
path. At most 10000 / η improvements can happen in a task, so what all its nodes reveal together
grows with the logarithm of their number, not with the number.

The margin is counted from the exact best, not from its rounded release: from the rounded one, a
near-copy only a few rows better than a best sitting just under the next multiple of η took a
whole margin's release and its payout (noise mining at the Ladder's edge, the second attack
round); from the exact one, every release is at least η of exact score above the last. The exact
best is never published: a public task's oracle holds it (the validator counts the best node
again in every session, so the oracle keeps no state of its own), a private task's custodians
hold it secret-shared.

The rule lives here, in the core, because two parties apply it: the oracle when it records
scores, and `bountytree audit` when it checks them against the published validation file.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

BPS = 10_000
DEFAULT_MARGIN_BPS = 100


def carried(recorded_bps: int, parent_bps: int | None) -> bool:
    """Whether a recorded score is its parent's carried by the Ladder, not the node's own: a
    released score beats the task's best by the margin, so it is above its parent's (and above
    0 for an architecture); a carried one equals it. `parent_bps` None: an architecture."""
    return recorded_bps == (0 if parent_bps is None else parent_bps)


def shown_score(recorded_bps: int, parent_bps: int | None) -> str:
    """A recorded score as people should read it: its own, or marked as carried."""
    text = f"{recorded_bps / 100:.2f} %"
    if carried(recorded_bps, parent_bps):
        whose = "none released" if parent_bps is None else "parent's, carried"
        return f"{text} ({whose}: not a new best by the margin)"
    return text


def round_down(bps: int, margin_bps: int) -> int:
    return bps - bps % margin_bps


def bps(correct: int, rows: int) -> int:
    """A count of correct rows as an exact score in basis points (rounded down)."""
    return correct * BPS // rows


def recorded_score(exact_bps: int, *, best_bps: int, margin_bps: int, parent_bps: int) -> int:
    """What goes on-chain for one node: its score rounded down to the margin if it beats the
    task's exact best `best_bps` by the margin, otherwise its parent's recorded score."""
    if exact_bps >= best_bps + margin_bps:
        return round_down(exact_bps, margin_bps)
    return parent_bps


@dataclass(frozen=True)
class Entry:
    """One node to record: its parent (0 for an architecture) and its exact score."""

    node_id: int
    parent_id: int
    exact_bps: int


@dataclass(frozen=True)
class Step:
    node_id: int
    exact_bps: int
    recorded_bps: int
    improved: bool


def climb(
    entries: Iterable[Entry], *, best_bps: int, margin_bps: int, recorded: Mapping[int, int]
) -> list[Step]:
    """Applies the rule to `entries` in the order given (the order they are recorded in), from
    the task's exact best `best_bps` (0 with no best yet), each new best's exact score becoming
    the best; a parent is looked up in `recorded` (scores already on-chain) or among the
    entries before it."""
    known = dict(recorded)
    steps = []
    for e in entries:
        parent = known.get(e.parent_id, 0) if e.parent_id else 0
        value = recorded_score(
            e.exact_bps, best_bps=best_bps, margin_bps=margin_bps, parent_bps=parent
        )
        improved = e.exact_bps >= best_bps + margin_bps
        if improved:
            best_bps = e.exact_bps
        known[e.node_id] = value
        steps.append(Step(e.node_id, e.exact_bps, value, improved))
    return steps


def possible_records(
    correct: int,
    rows: int,
    tolerance_rows: int,
    *,
    bests_bps: Iterable[int],
    margin_bps: int,
    parent_bps: int,
) -> set[int]:
    """Every score the rule could record for a count within `tolerance_rows` of `correct` and
    an exact best among `bests_bps` (`near_scores` of the best's own count): what an audit
    accepts. The tolerance is the node's undecided rows (`models.counting.Counted`), which
    another machine's float arithmetic may decide the other way, and nothing more: a wider one
    on both the node and the best lets a validator that shifts two counts pass."""
    bests = set(bests_bps)
    return {
        recorded_score(c, best_bps=b, margin_bps=margin_bps, parent_bps=parent_bps)
        for c in near_scores(correct, rows, tolerance_rows)
        for b in bests
    }


def near_scores(correct: int, rows: int, tolerance_rows: int) -> set[int]:
    """The exact scores of every count within `tolerance_rows` of `correct`."""
    low, high = max(0, correct - tolerance_rows), min(rows, correct + tolerance_rows)
    return {bps(c, rows) for c in range(low, high + 1)}
