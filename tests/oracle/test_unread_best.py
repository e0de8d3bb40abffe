"""The record of tasks whose best the validator could not count (oracle/unread_best.py): kept
across oracle processes, paced as a failing node, never another deployment's."""

from __future__ import annotations

import json

from oracle import pacing
from oracle.unread_best import UnreadBests


def test_the_record_outlives_the_process_and_paces_the_task(tmp_path):
    path = tmp_path / "unread-best.json"
    lines: list[str] = []
    first = UnreadBests(path, "tree@abc", lines.append)
    first.unread(3, best_node=7, now=1000.0, hold_ends=5000.0)
    # a fresh process (an oracle run from cron) rests as long, for the same best only
    again = UnreadBests(path, "tree@abc", lines.append)
    assert again.resting(3, 7, 1000.0 + pacing.RETRY_BASE_S - 1) is not None
    assert again.resting(3, 7, 1000.0 + pacing.RETRY_BASE_S) is None  # due
    assert again.resting(3, 8, 1001.0) is None  # another best: nothing known of it
    again.unread(3, 7, now=1100.0, hold_ends=1130.0)  # doubled, but not past the first hold's end
    assert again.resting(3, 7, 1129.0) is not None and again.resting(3, 7, 1130.0) is None
    assert again.since(3, 7, 2000.0) == 1000.0  # when it was first found unread
    assert again.since(3, 8, 2000.0) == 2000.0
    again.read(3)
    assert UnreadBests(path, "tree@abc", lines.append).tasks == {}
    assert not lines


def test_another_deployment_s_or_a_damaged_record_is_nothing(tmp_path):
    path = tmp_path / "unread-best.json"
    UnreadBests(path, "tree@abc", print).unread(3, 7, now=1000.0, hold_ends=5000.0)
    assert UnreadBests(path, "tree@def", print).tasks == {}  # a dev chain reset: ids reused
    assert UnreadBests(path, "", print).tasks == {}  # a chain that did not say which
    path.write_text('{"deployment": "tree@abc", "tasks": {"3": {"best_node": 7}}}')
    assert UnreadBests(path, "tree@abc", print).tasks == {}
    path.write_text(
        '{"deployment": "tree@abc", "tasks": {"3": {"best_node": 7, "pacing": ["x", 1, 2]}}}'
    )
    assert UnreadBests(path, "tree@abc", print).tasks == {}
    for damaged in (["Infinity", 1, 2], [1, 1, "Infinity"], [1, float("inf"), 2]):
        record = {"best_node": 7, "pacing": damaged}
        path.write_text(json.dumps({"deployment": "tree@abc", "tasks": {"3": record}}))
        assert UnreadBests(path, "tree@abc", print).tasks == {}, damaged  # never rests for good
    path.write_text("not json")
    assert UnreadBests(path, "tree@abc", print).tasks == {}


def test_a_record_that_cannot_be_written_is_said_and_kept_in_memory(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("")
    lines: list[str] = []
    unread = UnreadBests(blocked / "unread-best.json", "tree@abc", lines.append)
    unread.unread(3, 7, now=1000.0, hold_ends=5000.0)
    assert unread.resting(3, 7, 1001.0) is not None
    assert len(lines) == 1 and "not kept" in lines[0]
