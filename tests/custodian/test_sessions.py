"""What a custodian's service makes of how its sessions ended (custodian/service.py): a dealer
that makes every session run to the budget is said not to come; the budget leaves room for the
custodians' last words. Unit tests of the service's own rules, with the chain faked."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

from bountytree.market.custody import REJECT
from bountytree.reasons import Reason
from custodian import clocks, session
from custodian.clocks import Clocks
from custodian.service import Custodian, Job


class _Words:
    """The chain's record of the custodians' word on the dealer, per node."""

    def __init__(self) -> None:
        self.said: list[tuple[int, bool]] = []

    def dealer_wait(self, node_id: int) -> int:
        return 0

    def report_dealer(self, node_id: int, waits: bool) -> None:
        self.said.append((node_id, waits))


def _custodian(tmp_path, monkeypatch) -> tuple[Custodian, _Words, list[float]]:
    """A custodian's rule on the dealer alone (no chain, no store), and the wall clock."""
    now = [0.0]
    monkeypatch.setattr(clocks.time, "time", lambda: now[0])
    custodian = object.__new__(Custodian)
    words = _Words()
    custodian.custody = words
    custodian.clocks = Clocks(tmp_path / "clocks.json")
    custodian.log = lambda line: None
    custodian.dealer_timeout, custodian.session_timeout, custodian.session_budget = 600, 60, 1800
    custodian._round, custodian._dealer_found = 0, {}
    return custodian, words, now


def test_a_dealer_that_makes_each_session_run_to_the_budget_is_said_not_to_come(
    tmp_path, monkeypatch
):
    """Both custodians name the dealer after each session, and each lasts the whole budget
    (1800 s, three times the dealer timeout). Findings further apart than the dealer timeout
    started a new streak each, so the word was never said: the dealer held the node, and every
    node behind it, and was paid (attacker review). The gap is measured to the next session's
    start: sessions one after another are a streak."""
    custodian, words, now = _custodian(tmp_path, monkeypatch)
    job = Job(session.TRAIN, 1, 5, None, {})  # type: ignore[arg-type]
    for began, ended in ((0.0, 1800.0), (1810.0, 3610.0)):  # one session, then the next
        now[0] = ended
        custodian._note_dealer(job, 0, False, [session.DEALER], began)
    assert words.said == [(5, True)]


def test_findings_with_an_outage_between_them_are_no_streak(tmp_path, monkeypatch):
    """The custodian held no session for an hour between two findings (it was down, or ran
    rounds that did not try the task): the second starts a new streak, and the dealer is not
    said to be missing for the hour."""
    custodian, words, now = _custodian(tmp_path, monkeypatch)
    job = Job(session.TRAIN, 1, 5, None, {})  # type: ignore[arg-type]
    for began, ended in ((0.0, 100.0), (3700.0, 3800.0)):
        custodian._round += 100
        now[0] = ended
        custodian._note_dealer(job, 0, False, [session.DEALER], began)
    assert words.said == []


def test_a_dealer_that_never_comes_to_one_task_is_said_missing_while_it_serves_another_slowly(
    tmp_path, monkeypatch
):
    """Each round, the custodians first hold a session of task 2 that the dealer comes to and
    makes last the whole budget, then wait a rendezvous (60 s) for it in vain for task 1's
    node. Findings of task 1 were a budget apart, further than the gap, so each round started
    task 1's streak again: the dealer never served task 1's node and was never said to
    (attacker review). Findings in rounds one after another keep the streak, counting their own
    time only: the word is said once they add up to the dealer timeout (600 s: the first
    finding starts the clock, ten more), not after two findings a round apart (attacker review
    of the fix). Across a restart (a new process, no rounds known) the gap decides, as before."""
    custodian, words, now = _custodian(tmp_path, monkeypatch)
    job = Job(session.TRAIN, 1, 5, None, {})  # type: ignore[arg-type]

    def round_of(custodian, start: float) -> None:
        custodian._round += 1
        began = start + 1800.0  # task 2's session took the budget
        now[0] = began + 60.0
        custodian._note_dealer(job, 0, False, [session.DEALER], began)

    for k in range(11):
        round_of(custodian, k * 1860.0)
        assert words.said == ([(5, True)] if k == 10 else []), k
    # a round whose session the dealer came to and failed unnamed keeps the next finding in step
    custodian, words, now = _custodian(tmp_path / "came", monkeypatch)
    for k in range(21):
        if k % 2:
            custodian._round += 1
            now[0] = k * 1860.0 + 1860.0
            custodian._note_dealer(job, 0, False, [], now[0] - 60.0)
        else:
            round_of(custodian, k * 1860.0)
    assert words.said == [(5, True)]
    restarted, words, now = _custodian(tmp_path / "again", monkeypatch)
    for k in range(20):  # a new process each round (cron's `--once`)
        restarted._round, restarted._dealer_found = 0, {}
        round_of(restarted, k * 1860.0)
    assert words.said == []


class _Chain:
    """The chain's attestations of one custodian (custodian 0), and its counts on disk."""

    def __init__(self, scorings_over: int) -> None:
        self.attested: list[tuple[int, int, int]] = []
        self.given_up: list[int] = []
        self.scorings_over = scorings_over

    def require(self, task_id: int):
        return SimpleNamespace(party_of=lambda account: 0)

    def attestation(self, node_id: int, index: int):
        return None

    def attest(self, node_id: int, kind: int, value: int) -> None:
        self.attested.append((node_id, kind, value))

    def over_budget(self, task_id: int, node_id: int, kind: str) -> int:
        return self.scorings_over if kind == session.SCORE else 0

    def give_up(self, task_id: int, node_id: int) -> None:
        self.given_up.append(node_id)


def test_a_scoring_too_slow_is_followed_only_after_a_session_of_ones_own_ran_over(
    tmp_path, monkeypatch
):
    """The other custodian attests `too-slow` of a node both committed to. Said right after
    both committed, with no scoring session over the budget, following it turned a node a
    deviating custodian could only stall into one rejected, its fee in the winner's pool
    (attacker review): this custodian gives the node up instead. Once one of its own scoring
    sessions of the node ran over too, it follows (the two counted apart by a session)."""
    node = SimpleNamespace(id=7, task_id=1)
    for scorings_over, attested, given_up in (
        (0, [], [7]),
        (1, [(7, REJECT, Reason.TOO_SLOW)], []),
    ):
        custodian, _, _ = _custodian(tmp_path, monkeypatch)
        chain = _Chain(scorings_over)
        custodian.custody = custodian.holdings = chain  # type: ignore[assignment]
        custodian.me = "0xc0"
        assert custodian._follow_too_slow(node) is True  # type: ignore[arg-type]
        assert chain.attested == attested and chain.given_up == given_up


def test_a_session_budget_too_short_for_the_last_words_is_refused_in_one_line(tmp_path):
    """A budget under six step timeouts and handshakes would have the service stop a session
    over it before the custodians' last words: counted against its node, whoever made it
    slow."""
    out = subprocess.run(
        [sys.executable, "-m", "custodian", "serve", "--key-file", str(tmp_path / "k"),
         "--peer", "127.0.0.1:1", "--session-timeout", "30", "--session-budget", "100"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 2, out
    lines = out.stderr.strip().splitlines()
    assert lines == [
        "error: --session-budget 100 is too short for --session-timeout 30: at least 240 s"
    ]
