"""One scoring session: the nodes of one task, evaluated by the two CrypTen parties.

Each party runs in a process of its own for the length of the session (CrypTen's global state
and torch.distributed's process group are set up once per process, and a fresh process cannot
inherit a stale one). The model party (1) is always started here; the validator party (0) is
started here too when this machine holds the task's registered validation file, otherwise the
sponsor runs it (`python -m oracle validator`) and `validator` gives its address.

What crosses between the oracle and its party-1 process is a folder (owner-only): the checked
specs as JSON (the validator reads each node's weights itself), the CIDs of the files party 1
may give the validator if its store lacks them, the signed ticket and the session's link key
(a fresh X25519 key the ticket names: the validator admits the ticket only over the link that
proves it), and back a JSON result. Nothing is pickled.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bountytree.errors import UserError
from bountytree.files import atomic_write_json
from bountytree.private.sealing import write_private_key
from bountytree.processes import die_with_parent, free_port

from .checks import Ready

# The model party's progress, a line per step, in the session's job folder (the oracle follows it).
PROGRESS = "progress.log"
LINK_KEY = "link.key"  # the model party's key for this session's link, in the job folder

SESSION_TIMEOUT_S = 1800
MAX_FAILURE = 300  # characters of a party's last stderr line quoted in the oracle's log


@dataclass(frozen=True)
class BestCount:
    """The validator's count of the node holding the task's best released score: the Ladder's
    exact best (bountytree/market/ladder.py); None when the validator could not read its
    weights."""

    node_id: int
    correct: int | None


@dataclass
class SessionResult:
    correct: dict[int, int]
    rows: int
    seconds: float
    per_node_s: dict[int, float]
    share_rows_s: float
    best: BestCount | None = None
    # the files the validator asked the model party for that it could not give (its store)
    undelivered: frozenset[str] = frozenset()


def _party_env() -> dict:
    # One thread per party: the two parties share the machine's cores.
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def run_session(
    task_id: int,
    ready: list[Ready],
    *,
    ticket: Callable[[bytes], dict],
    expect: dict,
    validator_key: str | None,
    validation_file: Path | None,
    validator: str | None,
    settings_env: dict,
    files: dict[str, int] | None = None,
    timeout_s: float = SESSION_TIMEOUT_S,
    progress: Callable[[str], None] = lambda line: None,
) -> SessionResult:
    """Scores `ready` (ordered by id) in one two-party session opened with the signed ticket
    `ticket(link key)` gives (admission.issue, for the session's fresh link key), checking the
    validator's answer against `expect`, with the validator proving `validator_key` on its link
    (the one the task names; any, for a task that names none); raises UserError on failure.
    `files` (CID: most bytes) are those the model party may give the validator when it cannot
    read them itself: the files the oracle read for these nodes. `progress` hears the model
    party's lines as they come (rows shared, each node evaluated)."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bountytree-session-") as folder:
        job = Path(folder)
        nodes = [{"id": r.node.id, "spec": r.spec.to_json()} for r in ready]
        address = validator or f"127.0.0.1:{free_port()}"
        link = write_private_key(job / LINK_KEY)
        atomic_write_json(
            job / "job.json",
            {
                "task": task_id,
                "address": address,
                "nodes": nodes,
                "header": ticket(link),
                "expect": expect,
                "validator_key": validator_key,
                "files": files or {},
            },
        )
        env = {**_party_env(), **settings_env}
        procs = []
        if validator is None:
            if validation_file is None:
                raise UserError(
                    f"task {task_id}: no validation file registered on this machine and no --validator"
                )
            validator_args = ["--validation", str(validation_file), "--address", address]
            procs.append(
                _start(
                    job,
                    "validator",
                    ["validator", "--task", str(task_id), *validator_args, "--one-session"],
                    env,
                )
            )
        procs.append(_start(job, "model party", ["model-party", "--job", str(job)], env))
        failure = _wait_all(procs, job, timeout_s, _Follower(job / PROGRESS, progress))
        if failure:
            raise UserError(f"task {task_id}: scoring session failed: {failure}")
        result = json.loads((job / "result.json").read_text())
    return SessionResult(
        {int(k): v for k, v in result["correct"].items()},
        result["rows"],
        time.perf_counter() - started,
        {int(k): v for k, v in result["seconds"].items()},
        result["share_rows_s"],
        BestCount(result["best"]["node"], result["best"]["correct"]) if result["best"] else None,
        frozenset(str(cid) for cid in result.get("undelivered", [])),
    )


class _Follower:
    """Hands on each whole line appended to a file (the model party's progress), as `tail -f`."""

    MAX_LINE = 512  # the model party is ours, but a line is printed: keep it short

    def __init__(self, path: Path, hear: Callable[[str], None]):
        self.path, self.hear, self.offset, self.partial = path, hear, 0, b""

    def poll(self) -> None:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read(1 << 16)
        except OSError:  # not written yet
            return
        self.offset += len(data)
        *lines, self.partial = (self.partial + data).split(b"\n")
        for line in lines:
            self.hear(line[: self.MAX_LINE].decode(errors="replace"))


def _start(job: Path, name: str, args: list[str], env: dict) -> tuple[str, subprocess.Popen]:
    """`python -m oracle ARGS` as the party `name`, its stderr in a file of the job's folder
    rather than a pipe: a pipe was read only once the party had ended, and one that filled
    (64 KiB: a validator's refusal that long, quoted by the model party) stopped the party until
    the session's timeout, half an hour per node (found by the attacker review of the servers).
    What it prints on stdout (the validator's refused connections) is not read."""
    with open(job / f"{name}.err", "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "oracle", *args],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
            preexec_fn=die_with_parent(),
        )
    return name, proc


def _last_line(job: Path, name: str, returncode: int) -> str:
    """The last line a party wrote to stderr, cut to MAX_FAILURE characters: it goes to the
    oracle's log and error, and a peer's words may be in it."""
    try:
        with open(job / f"{name}.err", "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 4 * MAX_FAILURE))
            lines = f.read().decode(errors="replace").strip().splitlines()
    except OSError:
        lines = []
    line = lines[-1] if lines else f"exit {returncode}"
    return line if len(line) <= MAX_FAILURE else line[:MAX_FAILURE] + "…"


def _wait_all(
    procs: list[tuple[str, subprocess.Popen]],
    job: Path,
    timeout_s: float,
    follower: _Follower | None = None,
) -> str | None:
    """Waits for every party; if one fails or time runs out, stops the others. Returns the first
    failure's last stderr line, or None."""
    deadline = time.monotonic() + timeout_s
    failure = None
    pending = dict(procs)
    while pending and failure is None:
        if follower is not None:
            follower.poll()
        for name, proc in list(pending.items()):
            if proc.poll() is not None:
                del pending[name]
                if proc.returncode != 0:
                    failure = f"{name}: {_last_line(job, name, proc.returncode)}"
        if time.monotonic() > deadline:
            failure = f"no result after {timeout_s:.0f}s"
        time.sleep(0.05)
    if follower is not None:
        follower.poll()  # the lines written just before the parties ended
    for _, proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    return failure
