"""What the oracle and the validator say while they wait: a lasting state once, never a
traceback, and a validator that nobody calls keeps listening without using up its sessions."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import subprocess
import sys
import time
from datetime import timedelta
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


def test_a_peer_that_joins_and_stalls_is_a_failed_session_not_an_idle_one(
    settings, deployed, files
):
    """Only an empty rendezvous is "nobody came". A peer that joins the rendezvous and then does
    nothing used to be taken for nobody too: silent, and never counted against --sessions."""
    import torch.distributed as dist

    task_id = new_task(settings, files["validation"], "stalled peer")
    port = free_port()
    proc = _validator(settings, task_id, files, port, wait_s=10)
    try:
        deadline = time.monotonic() + 120
        store = None
        while store is None and time.monotonic() < deadline:
            try:  # join the rendezvous as party 1 would, then never go on
                store = dist.TCPStore("127.0.0.1", port, 2, False, timeout=timedelta(seconds=5))
            except (RuntimeError, dist.DistError):
                store = None
                time.sleep(0.5)
        assert store is not None, "the validator never listened"
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    text = out.decode() + err.decode()
    assert proc.returncode == 1, text
    assert "session 1 failed" in text and "session failed:" in text, text
    assert "Traceback" not in text, text
