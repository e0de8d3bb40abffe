"""How often the oracle tries again what did not work: a node whose session failed, a task whose
every session failed, a task whose best node the validator could not count (chain time)."""

from __future__ import annotations

from dataclasses import dataclass

# A node whose session failed is tried again after RETRY_BASE_S, then twice as long after each
# further failure, up to RETRY_MAX_S: a node that keeps failing (its weights readable by the
# oracle's store but not the validator's, say) costs the validator's hourly sessions a few a
# day, not one a round.
RETRY_BASE_S = 30.0
RETRY_MAX_S = 3600.0
# A failed node is given up on (finalize may leave it pending) only once its sessions have
# failed GIVE_UP_TRIES times over at least GIVE_UP_S, and a session of its task succeeded since
# it first failed (or in that round): a failure is the validator's as often as the node's, and
# one brought about at the right moment (the validator kept busy during one session) must not
# let a task be finalized without an honest node, nor a validator that was away.
GIVE_UP_S = 3600.0
GIVE_UP_TRIES = 4
# A task whose every session failed in a round (the validator away, or only nodes that each
# fail) rests before its next session, from TASK_RETRY_BASE_S doubling to TASK_RETRY_MAX_S (chain
# time, as for nodes): such a round costs a session per node.
TASK_RETRY_BASE_S = 10.0
TASK_RETRY_MAX_S = 600.0


@dataclass
class Failing:
    """What failed (a node's session, a task's sessions, a count of its best): since when
    (chain time), how often, and when it may be tried again."""

    since: float
    count: int = 0
    next_try: float = 0.0
    base_s: float = RETRY_BASE_S
    max_s: float = RETRY_MAX_S

    def failed(self, now: float, hold_ends: float) -> None:
        """One more failure at `now`. While it still holds later nodes (until `hold_ends`) it
        is tried again by then at the latest, so that it is recorded before them if it can be
        (a copy revealed after it could otherwise take its raise)."""
        self.count += 1
        wait = min(self.base_s * 2 ** min(self.count - 1, 16), self.max_s)
        self.next_try = now + wait if now >= hold_ends else min(now + wait, hold_ends)

    def resting(self, now: float) -> bool:
        return now < self.next_try

    def given_up(self, now: float, last_success: float) -> bool:
        """Whether finalize may leave the node: it failed often and long enough, and the
        validator worked for its task since it first failed (`last_success`)."""
        return (
            self.count >= GIVE_UP_TRIES
            and now - self.since >= GIVE_UP_S
            and last_success >= self.since
        )
