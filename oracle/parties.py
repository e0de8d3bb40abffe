"""The two processes of a scoring session: `python -m oracle validator` (party 0, the sponsor's
host) and `python -m oracle model-party` (party 1, started by the oracle)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bountytree.errors import UserError
from bountytree.files import atomic_write_json
from bountytree.market.actions import open_market
from bountytree.market.taskinfo import TaskInfo
from bountytree.market.validation import (
    check_commitment,
    registered_salt,
    registered_test,
    validator_folder,
    validator_key_path,
)
from bountytree.models import datasets
from bountytree.models.spec import parse_spec
from bountytree.private.sealing import new_private_key, public_key, read_private_key
from bountytree.processes import die_with_parent
from bountytree.storage.connect import open_store
from bountytree.storage.store import StoreError, cid_of, get_bytes

from .admission import TEST, VALIDATION, Gate
from .session import LINK_KEY, PROGRESS

# Connections turned away said on the validator's output per minute; the rest are counted.
REFUSALS_PER_MINUTE = 10


class RefusalLines:
    """Says why connections were turned away, at most REFUSALS_PER_MINUTE a minute, and how many
    more once the minute is over: any stranger can be refused, 58 times a second from one
    client, and the validator's output (unlike its rotated sessions.log) grew without bound
    (found by the attacker review of the servers)."""

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, say: Callable[[str], None] | None = None
    ):
        self.clock = clock
        self.say = say or (lambda line: print(line, flush=True))
        self.minute, self.said, self.held = -1, 0, 0

    def __call__(self, line: str) -> None:
        minute = int(self.clock() // 60)
        if minute != self.minute:
            if self.held:
                self.say(f"… and {self.held} more connection(s) turned away in that minute")
            self.minute, self.said, self.held = minute, 0, 0
        if self.said < REFUSALS_PER_MINUTE:
            self.said += 1
            self.say(line)
        else:
            self.held += 1

    def close(self) -> None:
        """Says how many more were turned away since the last line said, before the session
        ends (a session that ended idle, its minute not over, used to leave them unsaid)."""
        if self.held:
            self.say(f"… and {self.held} more connection(s) turned away")
            self.held = 0


SALT_ENV = "BOUNTYTREE_VALIDATION_SALT"
# A session's exit status when no oracle came to it (EX_TEMPFAIL): the validator waits again,
# and the wait counts against no --sessions.
IDLE = 75


def _rows(path: str | Path, info: TaskInfo, expected_rows: int) -> datasets.Dataset:
    """A part of the sponsor's data, checked against the task: features, classes, row count,
    and the input range the task declares (the oracle bounds logits on it)."""
    rows = datasets.load_file(path, info.label_column)
    datasets.check_against(rows, info.num_features, info.num_classes, str(path))
    if expected_rows and len(rows) != expected_rows:
        raise UserError(f"{path}: {len(rows)} rows, the task says {expected_rows}")
    box = info.input_box
    if box is not None and len(rows) and (feature := box.outside(rows.X)) is not None:
        raise UserError(
            f"{path}: feature {feature} leaves the task's declared range "
            f"[{box.low[feature]:g}, {box.high[feature]:g}]"
        )
    return rows


def link_identity(settings, chain_id: int, info: TaskInfo, key_file: str | Path | None) -> bytes:
    """The validator's link key: the one the task names (`validator_key`), from `key_file` or
    where `task create` kept it on this machine. A key the task does not name is refused here,
    before any session (the oracle would refuse the link anyway). A task that names none (an
    older description, or one another client posted) gets a fresh key per session."""
    if info.validator_key is None:
        return new_private_key()
    path = (
        Path(key_file)
        if key_file
        else validator_key_path(settings.home, chain_id, info.validator_key)
    )
    if not path.exists():
        raise UserError(
            f"{path}: no validator link key here; the task names {info.validator_key[:16]}…, "
            "kept by `task create` on the machine that posted it (in validator/<chain>/link-keys/: "
            "copy that file here, or pass --link-key)"
        )
    private = read_private_key(path)
    if public_key(private).hex() != info.validator_key:
        raise UserError(
            f"{path}: this link key is not the one the task names ({info.validator_key[:16]}…); "
            "the oracle would not talk to this validator"
        )
    return private


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def run_validator(
    settings,
    task_id: int,
    validation: str,
    address: str,
    sessions: int,
    salt: bytes | None = None,
    test: str | None = None,
    wait_s: float = 120.0,
    one_session: bool = False,
    link_key: str | None = None,
) -> int:
    """Party 0. Checks the file and its salt (by default the one `task create` kept on this
    machine) against the task's commitment before anything else, then serves `sessions` scoring
    sessions (0: until stopped), each in a fresh process; a session no oracle joined within
    `wait_s` is opened afresh and not counted. `one_session`: this process is one session (what
    the loop, and an oracle scoring with its own validator, start). `test` is the test part (by
    default the one `task create --split` kept here, if any): scored once, for the winner only.
    `link_key`: the key file the link proves (default: the one `task create` kept here)."""
    market = open_market(settings)
    task = market.task(task_id)
    if salt is None and os.environ.get(SALT_ENV):
        salt = bytes.fromhex(os.environ[SALT_ENV])
    if salt is None:
        salt = registered_salt(settings.home, market.chain.chain_id, task_id)
    salt = check_commitment(validation, salt, task.commitment)
    rows = _rows(validation, task.info, task.info.validation_rows)
    if test is None and (kept := registered_test(settings.home, market.chain.chain_id, task_id)):
        test = str(kept)
    test_rows = _rows(test, task.info, task.info.test_rows) if test else None
    link = link_identity(settings, market.chain.chain_id, task.info, link_key)
    if one_session:  # this process is the session
        from . import mpc

        gate = Gate(
            market,
            task_id,
            validator_folder(settings.home, market.chain.chain_id) / "sessions.log",
            parts=(VALIDATION, TEST) if test_rows is not None else (VALIDATION,),
        )
        refusals = RefusalLines()
        admission = mpc.Admission(
            lambda header, key: gate.admit(header, link_key=key),
            rows.X.shape[1],
            task.info.num_classes,
            has_test=test_rows is not None,
            log=refusals,
            screen=lambda header, key: gate.screen(header, link_key=key),
        )
        try:
            # the oracle is known by its signed ticket, which names the key its own link
            # proves; this party by the key the task names
            mpc.join(
                address,
                mpc.DATA_PARTY,
                mpc.Identity(link, {mpc.MODEL_PARTY: None}),
                rendezvous_s=wait_s,
                admission=admission,
            )
        except mpc.PartyMissing:
            return IDLE
        except Exception as exc:  # a peer that was let in, then stalled or sent garbage
            raise UserError(f"session failed: {_first_line(exc)}") from None
        finally:
            refusals.close()
        assert admission.admitted is not None
        try:
            mpc.data_party(
                rows.X,
                rows.y,
                task.info.num_classes,
                admission.admitted,
                test=(test_rows.X, test_rows.y) if test_rows is not None else None,
                log=lambda line: print(line, flush=True),
                complete=lambda admitted, given: admission.fit(gate.complete(admitted, given)),
            )
        except mpc.SessionRefused as exc:
            raise UserError(f"session refused: {exc}") from None
        finally:
            mpc.leave()
        return 0
    served = failed = 0
    held = f", test part {len(test_rows)} rows" if test_rows is not None else ""
    print(
        f"validator for task {task_id} on {address} ({len(rows)} rows, commitment checked{held}); "
        "waiting for the oracle",
        flush=True,
    )
    while sessions == 0 or served < sessions:
        argv = [
            sys.executable,
            "-m",
            "oracle",
            "validator",
            "--task",
            str(task_id),
            "--validation",
            validation,
            "--address",
            address,
            "--one-session",
            "--wait",
            str(wait_s),
        ]
        if test:
            argv += ["--test", test]
        if link_key:
            argv += ["--link-key", link_key]
        if getattr(settings, "rpc", None):
            argv += ["--rpc", settings.rpc]
        # the salt goes by environment (readable by this user only), never on a command line
        # The session dies with this process, however it is stopped (it holds the MPC port).
        status = subprocess.run(
            argv, env={**os.environ, SALT_ENV: salt.hex()}, preexec_fn=die_with_parent()
        ).returncode
        if status == IDLE:  # nobody came: wait again, silently (said once above)
            continue
        served += 1
        failed += status != 0
        print(
            f"session {served} {'done' if status == 0 else f'failed (exit {status})'}", flush=True
        )
    return 1 if failed else 0


def run_model_party(job_dir: str, settings) -> int:
    """Party 1: takes part in the evaluation of the job's nodes and writes the revealed counts."""
    from . import mpc

    job_path = Path(job_dir)
    job = json.loads((job_path / "job.json").read_text())
    allowed = {str(cid): int(limit) for cid, limit in job.get("files", {}).items()}
    store = open_store(settings.store) if allowed else None
    failed: set[str] = set()  # asked of it and not given: its store's doing, the oracle is told
    given: set[str] = set()

    def files(cid: str, limit: int) -> bytes:
        """A file the validator could not read itself, from this oracle's store: only those of
        the job's nodes (and the best's), which the oracle read before it asked for a session.
        Read within this oracle's own limit, whatever the validator asked: a file this store
        holds whole, under its CID, counts as given, though a validator asking it within a
        smaller limit gets nothing (its own doing; asking for the best's weights within one
        byte made them undelivered, and so excused a validator that would not count the best:
        the second attacker review)."""
        if store is None or cid not in allowed:
            return b""
        try:
            data = get_bytes(store, cid, allowed[cid])
        except StoreError:
            failed.add(cid)
            return b""
        if cid_of(data) != cid:  # laid out otherwise: the validator would not take it
            failed.add(cid)
            return b""
        given.add(cid)
        return data if len(data) <= limit else b""

    # the specs only: party 0 shares each node's weights, read by itself from the store
    models = [(int(node["id"]), parse_spec(node["spec"])) for node in job["nodes"]]
    # the validator the task names, by its link key (any, for a task that names none)
    named = job.get("validator_key")
    validators = [bytes.fromhex(named)] if named else None
    identity = mpc.Identity(read_private_key(job_path / LINK_KEY), {mpc.DATA_PARTY: validators})
    try:
        mpc.join(job["address"], mpc.MODEL_PARTY, identity, ticket=job["header"])
    except mpc.PartyMissing as exc:  # the validator never took part
        raise UserError(
            f"no session with a validator at {job['address']} ({_first_line(exc)}): is "
            "`python -m oracle validator` running there?"
        ) from None
    except mpc.SessionRefused as exc:
        raise UserError(f"the validator refused the session: {exc}") from None
    progress = open(job_path / PROGRESS, "a", buffering=1)  # noqa: SIM115 (closed below)
    try:
        # the best node the signed ticket named: the validator must count that one
        expect = {**job["expect"], "best": int(job["header"]["ticket"].get("best", 0))}
        scores, info = mpc.model_party(
            models, expect, lambda line: print(line, file=progress), files
        )
    except mpc.SessionRefused as exc:
        raise UserError(f"the validator refused the session: {exc}") from None
    finally:
        mpc.leave()
        progress.close()
    atomic_write_json(
        job_path / "result.json",
        {
            "rows": info["rows"],
            "share_rows_s": info["share_rows_s"],
            "best": info["best"],
            "correct": {str(s.node_id): s.correct for s in scores},
            "seconds": {str(s.node_id): s.seconds for s in scores},
            "undelivered": sorted(failed - given),
        },
    )
    return 0
