"""The custodian's clocks (custodian/clocks.py): kept across restarts, so that a custodian
restarted more often than its timeouts still blames a party whose file never comes."""

from __future__ import annotations

import json

from custodian import clocks
from custodian.clocks import Clocks


def test_a_clock_runs_on_across_a_restart_and_stops_when_told(tmp_path, monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(clocks.time, "time", lambda: now[0])
    path = tmp_path / "c" / "clocks.json"
    first = Clocks(path)
    assert first.still_waiting(("validation", 3), 60)  # starts now
    now[0] += 50
    assert Clocks(path).still_waiting(("validation", 3), 60)  # restarted: 50 s of 60
    now[0] += 11
    restarted = Clocks(path)
    assert not restarted.still_waiting(("validation", 3), 60)  # 61 s: its owner is blamed
    assert restarted.still_waiting(("node", 3), 60)  # another clock, its own start
    restarted.stop(("validation", 3))
    assert json.loads(path.read_text()) == {"node:3": [1061.0, 1061.0]}
    assert Clocks(path).still_waiting(("validation", 3), 60)  # stopped: it starts again


def test_findings_further_apart_than_the_gap_are_no_streak(tmp_path, monkeypatch):
    """The dealer found missing once, then no session for a while: the next finding alone used
    to say the word at once (attacker review of the clocks). Findings more than `gap` apart
    start the clock again; the word needs a streak as long as the timeout."""
    now = [0.0]
    monkeypatch.setattr(clocks.time, "time", lambda: now[0])
    dealer = Clocks(tmp_path / "clocks.json")
    assert dealer.still_waiting(("dealer", 1), 600, gap=600)
    now[0] = 5000.0  # the next session, long after
    assert dealer.still_waiting(("dealer", 1), 600, gap=600)  # a new streak
    for t in range(5060, 5600, 60):
        now[0] = float(t)
        assert dealer.still_waiting(("dealer", 1), 600, gap=600)
    now[0] = 5600.0  # 600 s of findings, the streak kept across a restart
    assert not Clocks(tmp_path / "clocks.json").still_waiting(("dealer", 1), 600, gap=600)


def test_a_full_record_gives_way_from_its_longest_untouched_clock(tmp_path, monkeypatch):
    now = [100.0]
    monkeypatch.setattr(clocks.time, "time", lambda: now[0])
    monkeypatch.setattr(clocks, "MAX_CLOCKS", 2)
    kept = Clocks(tmp_path / "clocks.json")
    kept.still_waiting(("node", 1), 60)
    now[0] = 200.0
    kept.still_waiting(("node", 2), 60)
    now[0] = 50.0  # the wall clock stepped back: the newcomer is the oldest, and still kept
    assert kept.still_waiting(("node", 3), 60)
    assert set(kept._seen) == {("node", 2), ("node", 3)}


def test_a_record_that_cannot_be_read_or_written_only_starts_the_clocks_again(tmp_path):
    path = tmp_path / "clocks.json"
    path.write_text('{"node:1": "soon", "dealer:x": [5, 5], "validation:2": [7.0, 8], "junk')
    assert Clocks(path)._seen == {}  # not JSON: nothing is taken from it
    path.write_text('{"node:1": "soon", "dealer:x": [5, 5], "validation:2": [7.0, 8]}')
    assert Clocks(path)._seen == {("validation", 2): (7.0, 8.0)}  # what is well formed
    blocked = tmp_path / "file"
    blocked.write_text("")
    said: list[str] = []
    unwritable = Clocks(blocked / "clocks.json", log=said.append)  # its folder is a file
    assert unwritable.still_waiting(("node", 1), 60)
    assert not unwritable.still_waiting(("node", 1), 0)  # kept in memory all the same
    assert said and "not kept on disk" in said[0]


def test_two_processes_of_one_account_keep_each_other_s_clocks(tmp_path, monkeypatch):
    """Two custodian processes of one account on one home (one per `--task`) share the file:
    each used to write its whole memory over it, dropping the clocks the other had started, and
    a node whose files never came was never rejected while both ran."""
    now = [0.0]
    monkeypatch.setattr(clocks.time, "time", lambda: now[0])
    path = tmp_path / "clocks.json"
    one, two = Clocks(path), Clocks(path)
    one.still_waiting(("node", 1), 60)
    now[0] = 30.0
    two.still_waiting(("node", 2), 60)
    two.stop(("validation", 9))  # not running: nothing written
    one.stop(("node", 7))
    assert set(json.loads(path.read_text())) == {"node:1", "node:2"}
    now[0] = 61.0
    assert not Clocks(path).still_waiting(("node", 1), 60)  # restarted: node 1 is due
    two.stop(("node", 2))
    assert set(json.loads(path.read_text())) == {"node:1"}
