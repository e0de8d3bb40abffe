"""What a custodian's service makes of how its sessions ended (custodian/service.py): a dealer
that makes every session run to the budget is said not to come; the budget leaves room for the
custodians' last words. Unit tests of the service's own rules, with the chain faked."""

from __future__ import annotations

import subprocess
import sys

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
    """The custodian held no session for an hour between two findings (it was down): the
    second starts a new streak, and the dealer is not said to be missing for the hour."""
    custodian, words, now = _custodian(tmp_path, monkeypatch)
    job = Job(session.TRAIN, 1, 5, None, {})  # type: ignore[arg-type]
    for began, ended in ((0.0, 100.0), (3700.0, 3800.0)):
        now[0] = ended
        custodian._note_dealer(job, 0, False, [session.DEALER], began)
    assert words.said == []


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
