"""A task description is a stranger's JSON: feature ranges that are missing, too few or beyond
what the secure evaluation holds make it unreadable (a task-level error), never a short box that
would crash a check and reject honest nodes; the published box never repeats a private row."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bountytree.errors import UserError
from bountytree.market.taskinfo import FORMAT, parse
from bountytree.models.datasets import InputBox
from bountytree.models.fixedpoint import SAFE_LIMIT


def _description(**extra) -> bytes:
    base = {"format": FORMAT, "name": "t", "input_shape": [3], "num_classes": 2}
    return json.dumps({**base, **extra}).encode()


@pytest.mark.parametrize(
    "ranges",
    [
        [[0, 1], None, None],  # entries missing: used to leave a box of one feature
        [[0, 1], [0, 1]],  # too few
        [[0, 1], [0, 1], [-2e6, 2e6]],  # beyond the secure evaluation: every model would fail
        [[0, 1], [0, 1], [1, 0]],  # low above high
        [[0, 1], [0, 1], [0, float("inf")]],
    ],
)
def test_bad_feature_ranges_make_the_description_unreadable(ranges):
    with pytest.raises(UserError, match="not a valid"):
        parse(_description(feature_ranges=ranges))


def test_one_range_beyond_the_secure_evaluation_is_unreadable_too():
    """The older single `input_range` is held to the same limit as per-feature ranges."""
    with pytest.raises(UserError, match="reaches beyond"):
        parse(_description(input_range=[-2e6, 2e6]))
    assert parse(_description(input_range=[0, 16])).input_box == InputBox((0.0,) * 3, (16.0,) * 3)


def test_good_ranges_give_the_box():
    info = parse(_description(feature_ranges=[[0, 1], [-2, 2], [0, SAFE_LIMIT]]))
    assert info.input_box == InputBox((0.0, -2.0, 0.0), (1.0, 2.0, SAFE_LIMIT))


def test_the_published_box_holds_every_row_and_repeats_none():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 5)) * [1, 10, 1000, 0.01, 3e5]
    box = InputBox.of_rows(X)
    assert (np.array(box.low) <= X.min(0)).all() and (np.array(box.high) >= X.max(0)).all()
    assert not set(box.low + box.high) & set(X.reshape(-1).tolist())
    # outward by at most an eighth of the power of two above each feature's magnitude
    magnitude = 2.0 ** np.ceil(np.log2(np.abs(X).max(0)))
    assert (X.min(0) - np.array(box.low) <= magnitude / 8).all()
