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
        held[2].sendall(b"bountytree-link-v1\n" + bytes([1]) + bytes(64))  # a hello, no key
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
