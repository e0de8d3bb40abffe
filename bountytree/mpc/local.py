"""Running a three-party computation on this machine: two custodians (ranks 0 and 1) and the
dealer (rank 2), each a fresh process (spawned, never forked: each holds only what it is
given). What the bench and the tests use to drive the private engine; the custodians of a task
are long-running processes of their own.

A party's task is a module-level function `task(rank, *args) -> dict[str, np.ndarray | float]`;
its result comes back through a safetensors file (arrays) and a JSON file (numbers) in `work`,
nothing pickled on the way back.
"""

from __future__ import annotations

import json
import multiprocessing
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bountytree.files import atomic_write, atomic_write_json
from bountytree.private.sealing import new_private_key, public_key
from bountytree.processes import free_port

from .links import Identity

Result = dict[str, Any]


def _party(
    rank: int,
    address: str,
    work: str,
    task: Callable[..., Result] | None,
    args: tuple[Any, ...],
    identity: Identity,
    dealer_on: bool,
) -> None:
    from safetensors.numpy import save

    from . import dealer, session

    out = Path(work)
    try:
        session.join(address, rank, identity, dealer=dealer_on)
        if task is None:
            answered = dealer.serve()
            session.leave()
            atomic_write_json(out / f"rank{rank}.json", {"answered": answered})
            return
        started = time.perf_counter()
        result = task(rank, *args)
        session.leave()
        arrays = {
            k: np.ascontiguousarray(v) for k, v in result.items() if isinstance(v, np.ndarray)
        }
        numbers = {k: v for k, v in result.items() if not isinstance(v, np.ndarray)}
        numbers["party_s"] = time.perf_counter() - started
        atomic_write(out / f"rank{rank}.safetensors", save(arrays))
        atomic_write_json(out / f"rank{rank}.json", numbers)
    except BaseException:
        atomic_write(out / f"rank{rank}.error", traceback.format_exc().encode())
        raise


def _identities(parties: int) -> list[Identity]:
    """Fresh keys for each party, each accepting exactly the others' (a session on one
    machine, run by one operator)."""
    keys = [new_private_key() for _ in range(parties)]
    public = [public_key(k) for k in keys]
    return [
        Identity(keys[r], {p: {public[p]} for p in range(parties) if p != r})
        for r in range(parties)
    ]


def run_parties(
    task: Callable[..., Result],
    args: list[tuple[Any, ...]],
    work: Path,
    *,
    dealer: bool = True,
    timeout_s: float = 600,
) -> list[Result]:
    """Runs `task` on ranks 0 and 1 (with `args[rank]`) and the dealer on rank 2 (without a
    dealer: rank 0 deals, as in the public-weights oracle); returns the two parties' results.
    Raises RuntimeError with a party's error if one fails."""
    from safetensors.numpy import load

    work.mkdir(parents=True, exist_ok=True)
    for stale in work.glob("rank*.*"):  # a previous run's results are not this run's
        stale.unlink()
    address = f"127.0.0.1:{free_port()}"
    identities = _identities(3 if dealer else 2)
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(
            target=_party, args=(r, address, str(work), task, args[r], identities[r], dealer)
        )
        for r in (0, 1)
    ]
    if dealer:
        processes.append(
            context.Process(
                target=_party, args=(2, address, str(work), None, (), identities[2], True)
            )
        )
    for p in processes:
        p.start()
    deadline = time.monotonic() + timeout_s
    for p in processes:
        p.join(max(0.0, deadline - time.monotonic()))
    for p in processes:
        if p.is_alive():
            p.kill()
            p.join()
    errors = [(work / f"rank{r}.error") for r in range(len(processes))]
    failed = [e.read_text() for e in errors if e.exists()]
    if failed or any(p.exitcode != 0 for p in processes):
        raise RuntimeError("a party failed:\n" + "\n".join(failed or ["(killed or timed out)"]))
    results = []
    for r in (0, 1):
        result: Result = json.loads((work / f"rank{r}.json").read_text())
        result.update(load((work / f"rank{r}.safetensors").read_bytes()))
        results.append(result)
    return results
