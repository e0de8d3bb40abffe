"""One three-party session of a custodian, in a fresh process (`python -m custodian session
JOB`): the job folder holds `job.json` (the session's address, this custodian's rank, what to
do); this custodian's shares come on standard input (safetensors, never written to disk); the
process writes `result.json`; what it computed it keeps itself, tentatively, in the custodian's
holdings (a trained child's share, a scoring's share of the best: see holdings.py). Nothing is
pickled on the way in or out.

The three parties talk over authenticated, encrypted links (bountytree/mpc/links.py): each
proves the X25519 key it accepted custody with, and accepts as its peers only the keys the chain
holds for them (`peers` in job.json). Rank 0 says what the session is for (kind, task, node),
rank 1 compares it with what it worked out itself from the chain and answers; both go on only
if they agree. The dealer deals for sessions of the custodians of the tasks it serves
(`dealer` below): it learns shapes, never values.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from safetensors.numpy import load

from bountytree.files import atomic_write_json
from bountytree.models.spec import parse_spec
from bountytree.mpc import private, session
from bountytree.mpc.links import HANDSHAKE_S, Identity
from bountytree.private.sealing import read_private_key
from bountytree.private.shares import Share

from .holdings import Holdings

TRAIN, SCORE = "train", "score"
SESSION_BUDGET = 1800.0  # what one session may take, start to end, before it is stopped


def own_budget(budget_s: float, timeout_s: float) -> float:
    """What a custodian's session process gives itself of its service's budget: it ends the
    session itself (links.OverBudget) with room left for the custodians' last words, which
    say whether the dealer made it slow (blame.py), before the service kills it."""
    return max(budget_s / 2, budget_s - 3 * (timeout_s + HANDSHAKE_S))


DEALER = session.DEALER_RANK
# who did not come to the session's rendezvous ([]: all came), or [DEALER] once the dealer
# failed the session after it came; with "over_budget" once the session ran over its budget
# with the dealer not to blame (see _note_ending)
RENDEZVOUS = "rendezvous.json"
# Fault injection for the recovery drills: "custodian-kept:RANK" ends custodian RANK's session
# process abruptly right after it kept its trained share tentatively, before it said so;
# "custodian-trained:RANK" ends custodian RANK's service right after a training session ended
# well, before it promoted its share and committed to it; "custodian-out-of-range:NODE" makes
# node NODE's record fall out of range, as a deviating custodian would; "custodian-scored:RANK"
# ends custodian RANK's service right after a scoring session ended well, before it attested;
# "custodian-withholds:RANK" ends every scoring session of custodian RANK once the record is
# revealed, before it says it kept its result (a deviating custodian after another comparison);
# "custodian-rejects:RANK:REASON" has custodian RANK reject every trained node it meets with
# REASON, first, whatever its files (a deviating custodian against honest nodes).
FAILPOINT = os.environ.get("BOUNTYTREE_FAILPOINT", "")


def identity(
    key_file: str,
    peers: dict[int, set[bytes]],
    pairs: set[tuple[bytes, bytes]] | None = None,
) -> Identity:
    return Identity(read_private_key(Path(key_file)), peers, pairs)


def run(job_dir: Path) -> int:
    job = json.loads((job_dir / "job.json").read_text())
    inputs = load(sys.stdin.buffer.read())  # through a pipe: never on disk
    rank = int(job["rank"])
    # what the session is for, which both must agree on: a score's best included (each adds
    # its share of the best kept after `best_from`; two different bests would add to noise)
    header = {k: job[k] for k in ("kind", "task", "node", "best_from")}
    peers = {int(r): {bytes.fromhex(k)} for r, k in job["peers"].items()}
    try:
        session.join(
            job["address"],
            rank,
            identity(job["key_file"], peers),
            dealer=True,
            timeout_s=float(job["timeout"]),
            budget_s=max(1.0, float(job["deadline"]) - time.monotonic())
            if "deadline" in job
            else None,
        )
    except session.PartyMissing as exc:  # who did not come: the service's word on the dealer
        atomic_write_json(job_dir / RENDEZVOUS, {"missing": list(exc.missing)})
        raise
    except session.LinkError as exc:  # the dealer came, and failed the session's start
        _note_ending(job_dir, rank, exc)
        raise
    atomic_write_json(job_dir / RENDEZVOUS, {"missing": []})  # the dealer came to this one
    started = time.perf_counter()
    try:
        theirs = session.send_json(header if rank == 0 else None, 0)
        answer = session.send_json({"ok": theirs == header} if rank == 1 else None, 1)
        if not answer.get("ok"):
            raise session.SessionRefused(f"the custodians disagree on the job: {theirs}")
        spec = parse_spec(job["spec"])
        weights = Share(rank, {k[2:]: v for k, v in inputs.items() if k.startswith("w:")})
        rows = private.SharedRows(inputs["X"], inputs["Y"])
        result: dict[str, object] = {"kind": job["kind"]}
        if job["kind"] == TRAIN:
            child = private.train(spec, weights, rows)
            # kept before either says so; a session ends well only once both have (holdings.py)
            _holdings(job).keep_tentatively(int(job["task"]), int(job["node"]), child)
            if f"custodian-kept:{rank}" == FAILPOINT:
                os._exit(137)
            _both_kept(rank)
        else:
            count = private.shared_count(spec, weights, rows)
            task_id, node_id = int(job["task"]), int(job["node"])
            try:
                if f"custodian-out-of-range:{node_id}" == FAILPOINT:
                    raise private.OutOfRange("failpoint")
                step = private.ladder(
                    count,
                    len(rows),
                    inputs["best"].reshape(()),
                    job["margin"],
                    job["parent_bps"],
                    before_reveal=lambda: _holdings(job).note_scoring_run(task_id, node_id),
                )
                result["recorded"] = step.recorded_bps
            except private.OutOfRange:
                result["out_of_range"] = True
            else:  # kept before either says so, as a trained share is (holdings.py)
                _holdings(job).keep_best_tentatively(
                    task_id, node_id, rank, step.best, step.recorded_bps
                )
                if f"custodian-withholds:{rank}" == FAILPOINT:
                    os._exit(137)
                _both_kept(rank)
        # written before the session is left: what both custodians learned is never lost to a
        # failure while leaving (one giving a node up while the other tries it again would keep
        # them out of step for good)
        result["seconds"] = time.perf_counter() - started
        atomic_write_json(job_dir / "result.json", result)
    except session.LinkError as exc:
        _note_ending(job_dir, rank, exc)
        raise
    finally:
        session.leave()
    return 0


def _note_ending(job_dir: Path, rank: int, exc: session.LinkError) -> None:
    """A session the dealer came to and then failed (it stopped answering, left, or sent what it
    should not) counts as one it missed. A dealer that joined each session and then went silent
    was counted as having come, which took back the custodians' word on its nodes: it held them
    pending and was paid all the same (a residue of the dealer's word, session 21). One that ran
    over its budget, the dealer not to blame, says so (`over_budget`): a training so counts
    against its node (service.MAX_OVER_BUDGET)."""
    ending = session.ending(exc, rank)
    if ending.dealer_at_fault:
        atomic_write_json(job_dir / RENDEZVOUS, {"missing": [DEALER]})
    elif ending.over_budget:
        atomic_write_json(job_dir / RENDEZVOUS, {"missing": [], "over_budget": True})


def _holdings(job: dict) -> Holdings:
    return Holdings(Path(job["holdings"]), read_private_key(Path(job["key_file"])))


def _both_kept(rank: int) -> None:
    """Each custodian says it kept its result (tentatively), custodian 0 first; a session ends
    well only for one that heard the other say so, so neither acts on a result (commits to a
    share, attests a record) that the other may lack."""
    for speaker in (0, 1):
        said = session.send_json({"kept": True} if rank == speaker else None, speaker)
        if said != {"kept": True}:
            raise session.SessionRefused(f"custodian {speaker} did not keep its result")


def dealer(address: str, timeout_s: float, key_file: str, pairs: str) -> int:
    """One session as the dealer (a fresh process each time, like the custodians'), accepting
    as custodians 0 and 1 the pairs of keys named (comma-separated `zero:one` hex: the
    custodians of its tasks), each pair together."""
    from bountytree.mpc import dealer as dealing

    both = {
        (bytes.fromhex(zero), bytes.fromhex(one))
        for zero, _, one in (pair.partition(":") for pair in pairs.split(",") if pair)
    }
    peers = {r: {pair[r] for pair in both} for r in (0, 1)}
    session.join(address, DEALER, identity(key_file, peers, both), dealer=True, timeout_s=timeout_s)
    answered = dealing.serve()
    session.leave()
    print(f"dealt {answered} requests", flush=True)
    return 0
