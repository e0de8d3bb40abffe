"""The rule both custodians apply to their last words when a session ends on a link
(bountytree/mpc/blame.py): the dealer is at fault when it owed something and neither custodian
was late, however it failed (silent, a link cut, a last word of its own, at the keys)."""

from __future__ import annotations

import pytest

from bountytree.mpc.blame import PREFIX, Word, dealer_at_fault

T = 60.0  # both custodians' step timeout: in step means less than 30 s apart


def word(asked, lags, answered=False, idle=1.0, cut=False, timeout=T) -> Word:
    return Word(asked, tuple(lags), answered, idle, cut, timeout)


@pytest.mark.parametrize(
    ("zero", "one", "at_fault"),
    [
        # party 0 waits on request 3, which both sent in step: silent, slow or cut alike, and
        # whenever each custodian wrote its word (the second review: one cut, one left silent)
        (word(3, [0.1, 0.4]), word(3, [0.2, 0.4]), True),
        (word(3, [0.1, 0.4]), word(3, [0.1, 0.4], cut=True), True),
        (word(0, [0.01]), word(0, [0.02], answered=True, cut=True), True),  # at the keys
        # party 1 asked 40 s after their last exchange, party 0 at once: the dealer waited on it
        (word(3, [0.1, 0.4]), word(3, [40.1, 0.4]), False),
        (word(3, [0.1, 0.4]), word(2, [0.4]), False),  # party 1 has not asked it at all
        (word(3, [45.0, 0.4]), word(3, [0.1, 0.4]), False),  # party 0 asked 45 s late
        (word(3, [0.1], idle=40.0), word(3, [0.1]), False),  # after 40 s without asking
        # the dealer owed party 0 nothing: no link cut, or party 0 idle long enough for an
        # honest dealer to give up on it
        (word(3, [0.1], answered=True), word(3, [0.1]), False),
        (word(3, [0.1], answered=True), word(3, [0.1], cut=True), True),
        (word(3, [0.1], answered=True, idle=50.0), word(4, [0.1, 0.1], cut=True), False),
        (word(3, [0.1], answered=True), word(4, [0.1, 0.1], cut=True), True),
        # a shorter timeout makes "in step" shorter, for the pair
        (word(3, [0.1]), word(3, [6.0], timeout=10), False),
    ],
)
def test_the_dealer_is_blamed_only_when_it_owed_something_and_both_custodians_were_in_step(
    zero, one, at_fault
):
    assert dealer_at_fault(zero, one) is at_fault


def test_a_last_word_is_read_back_exactly_and_nothing_else_is_one():
    said = word(7, [1.5, 2.25, 3] + [123456.789] * 5, answered=True, cut=True, timeout=30)
    assert Word.parse(said.text()) == said
    assert len(said.text()) < 300  # it fits a link's last word
    fields = '"answered": false, "idle": 1, "cut": false, "timeout": 1'
    for junk in (
        "the dealer stopped answering",
        PREFIX + "{",
        PREFIX + '{"asked": -1, "lags": [], ' + fields + "}",
        PREFIX + '{"asked": 1, "lags": [1e300], ' + fields + "}",
        PREFIX + '{"asked": 1, "lags": "xx", ' + fields + "}",
        PREFIX + "[]",
    ):
        assert Word.parse(junk) is None, junk
