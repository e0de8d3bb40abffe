"""The parties' tasks of tests/mpc/test_private.py (module-level: spawned processes import them)."""

from __future__ import annotations

from bountytree.models.spec import parse_spec
from bountytree.private.shares import Share


def score(rank, spec_json, weights, rows_x, rows_y, best, margin, parent):
    from bountytree.mpc import private

    spec = parse_spec(spec_json)
    count = private.shared_count(spec, Share(rank, weights), private.SharedRows(rows_x, rows_y))
    step = private.ladder(count, len(rows_x), best, margin, parent)
    return {"recorded": step.recorded_bps, "best": step.best}


def train(rank, spec_json, weights, rows_x, rows_y):
    from bountytree.mpc import private

    spec = parse_spec(spec_json)
    child = private.train(spec, Share(rank, weights), private.SharedRows(rows_x, rows_y))
    return {f"w:{k}": v for k, v in child.tensors.items()}


def train_twice(rank, spec_json, weights, rows_x, rows_y):
    """Two children of one parent's share: they must be the same child."""
    from bountytree.mpc import private

    spec = parse_spec(spec_json)
    rows = private.SharedRows(rows_x, rows_y)
    parent = Share(rank, weights)
    first = private.train(spec, parent, rows)
    second = private.train(spec, parent, rows)
    return {
        **{f"w:{k}": v for k, v in first.tensors.items()},
        **{f"again:{k}": v for k, v in second.tensors.items()},
    }
