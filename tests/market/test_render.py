"""What `task show` prints of a finalized task's credits."""

from __future__ import annotations

from bountytree.market.records import Payout
from bountytree.market.render import summed


def test_finalize_and_claims_credits_show_once_per_account_and_kind():
    credits = [
        Payout(1, "0xA", 300, "data"),  # finalize: the winning path
        Payout(1, "0xB", 50, "expertise"),
        Payout(1, "0xA", 200, "data"),  # a claim: a node off the path
        Payout(1, "0xA", 7, "expertise"),
        Payout(1, "0xB", 25, "expertise"),
    ]
    assert summed(credits) == [
        Payout(1, "0xA", 500, "data"),
        Payout(1, "0xB", 75, "expertise"),
        Payout(1, "0xA", 7, "expertise"),
    ]
