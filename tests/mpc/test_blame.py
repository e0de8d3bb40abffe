"""The rule both custodians apply to their last words when a session ends on a link
(bountytree/mpc/blame.py): the dealer is at fault when it owed something and neither custodian
was late, however it failed (silent, a link cut, a last word of its own, at the keys)."""

from __future__ import annotations

import pytest

from bountytree.mpc import links
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


def over(
    asked=40,
    waited=0.0,
    lagged=0.0,
    elapsed=1590.0,
    blocked=0.0,
    excused=0.0,
    paired=0.0,
    unanswered=0.0,
) -> Word:
    """A word of a session that ran over its budget (its totals in seconds)."""
    totals = (waited, lagged, elapsed, blocked, excused, paired, unanswered)
    return Word(asked, (0.1,), False, 0.1, False, T, True, *totals)


@pytest.mark.parametrize(
    ("zero", "one", "at_fault"),
    [
        # the dealer answered each request 40 s late: its waits are the session
        (over(waited=1560.0, lagged=0.0), over(lagged=2.0), True),
        # either custodian over its budget is enough (the other heard its last word)
        (over(waited=1560.0), word(40, [0.1]), True),
        (word(40, [0.1]), over(lagged=2.0), False),  # party 0 waited on nothing
        # custodians computing slowly: party 0 waited on party 1, whose lags say so
        (over(waited=900.0), over(lagged=850.0), False),
        # an honest dealer's own dealing, and a request cut unanswered at the budget: the old
        # rule would name it (in step, unanswered), the budget's does not
        (over(waited=40.0), over(lagged=30.0), False),
        # more than half of the session is the line
        (over(waited=796.0), over(lagged=0.0), True),
        (over(waited=795.0), over(lagged=0.0), False),
        # a dealer that reads party 1's requests slowly, and answers party 0 without them:
        # party 0 waits on party 1, party 1 on its sends to the dealer
        (over(waited=10.0), over(lagged=5.0, blocked=1200.0), True),
        # an earlier release's party 0 (no totals) and a party 1 over its budget: nothing known
        (word(40, [0.1]), over(), False),
        # both custodians compute 11 s per request, the dealer answers 28 s after both asked:
        # excusing every lag of party 1's left the dealer 680 s of 1590 (unnamed, the session
        # slowed 3.5-fold); paired with party 0's, none of them is excused
        (over(waited=1136.0, excused=0.0, paired=454.0), over(lagged=454.0), True),
        # custodians computing slowly, party 1 the slower on every request: its lateness paired
        (over(waited=900.0, excused=845.0, paired=880.0), over(lagged=880.0), False),
        # party 1's last lags, whose notes party 0 had not read, are excused whole
        (over(waited=1300.0, excused=400.0, paired=440.0), over(lagged=880.0), False),
        (over(waited=1300.0, excused=400.0, paired=880.0), over(lagged=880.0), True),
        # the session ended while party 1 computed before asking party 0's last request: party
        # 0's wait on it is party 1's, not the dealer's
        (over(waited=1300.0, unanswered=600.0), over(asked=39), False),
        (over(waited=1300.0, unanswered=600.0), over(asked=40), True),
    ],
)
def test_a_session_over_its_budget_is_the_dealers_when_half_of_it_went_on_waiting_for_it(
    zero, one, at_fault
):
    assert dealer_at_fault(zero, one) is at_fault


def test_a_last_word_is_read_back_exactly_and_nothing_else_is_one():
    said = word(7, [1.5, 2.25, 3] + [123456.789] * 5, answered=True, cut=True, timeout=30)
    assert Word.parse(said.text()) == said
    assert len(said.text()) < links.MAX_REASON  # it fits a link's last word
    long = Word(7, (123456.789,) * 8, False, 123456.789, True, 60, True, *(1234567.891,) * 7)
    assert Word.parse(long.text()) == long and len(long.text()) < links.MAX_REASON
    # an earlier release's word, without the budget's fields: not over, nothing waited
    earlier = said.text().split(',"over"')[0] + "}"
    assert Word.parse(earlier) == said
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
