"""What the oracle and the validator say while they wait: a lasting state once, never a
traceback, and a validator that nobody calls keeps listening without using up its sessions."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from bountytree.market.actions import open_market
from bountytree.mpc import links
from bountytree.processes import free_port
from oracle.service import Oracle
from tests.conftest import new_task


def _validator(settings, task_id: int, files, port: int, wait_s: int) -> subprocess.Popen:
    """`python -m oracle validator --sessions 1` for the task, listening on `port`."""
    argv = [sys.executable, "-m", "oracle", "validator", "--task", str(task_id)]
    argv += ["--validation", str(files["validation"]), "--sessions", "1", "--wait", str(wait_s)]
    argv += ["--address", f"127.0.0.1:{port}"]
    env = {**os.environ, **settings.to_env()}
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_a_lasting_state_is_said_once_and_again_when_it_changes(
    settings, deployed, files, tmp_path
):
    """An oracle on a machine where the task's validation file is not registered cannot score
    it: it used to say so every round (253 lines in 5 minutes at the default interval)."""
    task_id = new_task(settings, files["validation"], "said once")
    elsewhere = dataclasses.replace(settings, home=tmp_path)
    lines: list[str] = []
    oracle = Oracle(open_market(elsewhere), log=lines.append)
    for _ in range(4):
        oracle.run_round([task_id])
    said = [line for line in lines if f"no validator for task {task_id}" in line]
    assert len(said) == 1, lines
    assert "python -m oracle validator" in said[0]  # and what to do about it
    oracle.validator = "127.0.0.1:1"  # a validator named: the state ends (no node to score)
    oracle.run_round([task_id])
    oracle.validator = None  # and comes back: said again
    oracle.run_round([task_id])
    assert len([line for line in lines if f"no validator for task {task_id}" in line]) == 2


def test_an_idle_validator_keeps_listening_quietly(settings, deployed, files):
    """A validator no oracle calls: each session's wait ran out with a traceback (every two
    minutes by default) and counted against --sessions, so `--sessions 1` ended unused."""
    task_id = new_task(settings, files["validation"], "idle validator")
    proc = _validator(settings, task_id, files, free_port(), wait_s=1)
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    seen: set[str] = set()  # each idle session is a fresh child process
    try:
        deadline = time.monotonic() + 180
        while len(seen) < 3 and proc.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                seen |= set(children.read_text().split())
            time.sleep(0.2)
        assert proc.poll() is None, "the validator ended without any oracle calling"
        assert len(seen) >= 3, seen
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=60)
    text = out.decode() + err.decode()
    assert "Traceback" not in text, text
    assert out.decode().count("waiting for the oracle") == 1, text
    assert "session 1" not in text, text  # no session counted


def test_a_stranger_that_connects_and_stalls_neither_holds_nor_uses_up_a_session(
    settings, deployed, files
):
    """A stranger at the validator's port that connects and never speaks, or speaks junk,
    used to join torch's rendezvous and end a session as failed, counted against --sessions.
    Now nobody is let in before its handshake and its signed ticket: the stranger is dropped,
    the validator goes on waiting, and no session is counted."""
    task_id = new_task(settings, files["validation"], "stalled peer")
    port = free_port()
    proc = _validator(settings, task_id, files, port, wait_s=5)
    held: list[socket.socket] = []
    try:
        deadline = time.monotonic() + 120
        while len(held) < 3 and time.monotonic() < deadline:
            try:  # connect as party 1 would, then never go on (or send junk)
                held.append(socket.create_connection(("127.0.0.1", port), timeout=5))
            except OSError:
                time.sleep(0.5)
        assert len(held) == 3, "the validator never listened"
        held[1].sendall(b"GET / HTTP/1.1\r\n\r\n" + b"x" * 4096)
        held[2].sendall(links.HELLO + bytes([1]) + bytes(links.FIXED_BYTES - 20))  # no key
        time.sleep(12)  # past two waits of 5 s: each ends quietly, uncounted
        assert proc.poll() is None, "the validator ended"
    finally:
        for s in held:
            s.close()
        proc.terminate()
        out, err = proc.communicate(timeout=60)
    text = out.decode() + err.decode()
    assert "session 1" not in text, text  # nothing counted
    assert "Traceback" not in text, text


def test_what_a_peer_says_is_cut_short_and_a_party_that_writes_much_never_stalls(tmp_path):
    """A refusal quotes the peer, and goes to logs: it is cut to SessionRefused.MAX_CHARS (a
    custodian 0 sent an 8 MiB job header, which the other logged whole every round). A party's
    stderr goes to a file, not a pipe read only at its end: a party that wrote more than a pipe
    holds (a validator's refusal quoted at length) stopped until the session's timeout, half an
    hour a node (both found by the attacker review of the servers)."""
    from bountytree.mpc.links import SessionRefused
    from oracle.session import MAX_FAILURE, _wait_all

    assert len(str(SessionRefused("x" * (8 << 20)))) <= SessionRefused.MAX_CHARS + 1
    with open(tmp_path / "model party.err", "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-c", "import sys; sys.stderr.write('y' * (1 << 20)); sys.exit(3)"],
            stderr=err,
        )
    started = time.monotonic()
    failure = _wait_all([("model party", proc)], tmp_path, timeout_s=60)
    assert time.monotonic() - started < 20
    assert failure is not None and failure.startswith("model party: yyy")
    assert len(failure) <= len("model party: ") + MAX_FAILURE + 1


def test_connections_turned_away_are_said_a_few_a_minute_and_then_counted():
    """Any stranger can be turned away, 58 times a second from one client: the validator's
    output says REFUSALS_PER_MINUTE a minute, then how many more (the attacker review of the
    servers: it grew 20–65 MB an hour per client)."""
    from oracle.parties import REFUSALS_PER_MINUTE, RefusalLines

    now, said = [0.0], []
    lines = RefusalLines(clock=lambda: now[0], say=said.append)
    for i in range(1000):
        now[0] = i * 0.05  # 50 seconds of one refusal every 50 ms
        lines(f"refused a connection: {i}")
    assert len(said) == REFUSALS_PER_MINUTE
    now[0] = 61.0
    lines("refused a connection: later")
    assert said[-2:] == [
        f"… and {1000 - REFUSALS_PER_MINUTE} more connection(s) turned away in that minute",
        "refused a connection: later",
    ]
    for i in range(REFUSALS_PER_MINUTE + 5):  # then the session ends within the minute
        lines(f"refused again: {i}")
    lines.close()
    assert said[-1] == "… and 6 more connection(s) turned away"
    lines.close()  # said once
    assert said[-1] == "… and 6 more connection(s) turned away" and said.count(said[-1]) == 1


def test_a_validator_announcing_more_rows_than_party_1_holds_is_refused_first(monkeypatch):
    """Party 1 holds shares of every row the validator announces: a count the task does not state
    is held to MAX_UNSTATED_ROWS (10 million held about 6 GB: the attacker review of the
    servers), a stated one must match and stay within MAX_ROWS; refused before anything is
    shared, one line."""
    import pytest

    from bountytree.mpc.links import SessionRefused
    from oracle import mpc

    def refused(rows: int, stated: int) -> bool:
        answer = {"ok": True, "rows": rows, "features": 64, "classes": 10}
        monkeypatch.setattr(mpc, "send_json", lambda *_: answer)
        monkeypatch.setattr(mpc, "_best_count", lambda *_: pytest.fail("went past the check"))
        expect = {"rows": stated, "features": 64, "classes": 10}
        try:
            mpc.model_party([], expect)
        except SessionRefused as exc:
            assert "the validator announced" in str(exc)
            return True
        return False

    assert refused(mpc.MAX_UNSTATED_ROWS + 1, stated=0)
    assert refused(1_200_000, stated=1_000_000)  # not what the task says
    assert refused(mpc.MAX_ROWS + 1, stated=mpc.MAX_ROWS + 1)
    with pytest.raises(pytest.fail.Exception):  # a stated count within MAX_ROWS goes on
        refused(1_200_000, stated=1_200_000)
