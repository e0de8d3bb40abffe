"""`python -m custodian serve --key-file FILE --peer HOST:PORT [--task T …] [--once]`
(a custodian), `python -m custodian dealer --key-file FILE --peer HOST:PORT [--sessions N]`
(the dealer), and `python -m custodian session JOB` (one session, run by `serve`).

Custodian 0 listens at --peer; custodian 1 and the dealer connect there. Every link between
the three is authenticated by the keys they accepted custody with and encrypted
(bountytree/mpc/links.py), so they may run on different machines: --peer is then an address
the others can reach."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from bountytree.cli import common_options, run
from bountytree.errors import UserError
from bountytree.mpc.links import HANDSHAKE_S
from bountytree.processes import die_with_parent

from .service import DEALER_TIMEOUT, FETCH_TIMEOUT
from .session import SESSION_BUDGET

SESSION_TIMEOUT = 60.0


def seconds(text: str) -> float:
    """A time option: a positive, finite number of seconds (a clear error otherwise)."""
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


def session_options(p: argparse.ArgumentParser) -> None:
    """A session's step timeout and budget, alike for the custodians and the dealer (whose
    budget must be at least theirs: a shorter one cut their sessions, and they named it)."""
    p.add_argument("--session-timeout", type=seconds, default=SESSION_TIMEOUT)
    p.add_argument(
        "--session-budget",
        type=seconds,
        default=SESSION_BUDGET,
        help="seconds one session may take, start to end, before it is stopped",
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m custodian", description="a private task's custodian or dealer"
    )
    verbs = p.add_subparsers(dest="verb", required=True)
    s = verbs.add_parser("serve", parents=[common_options()], help="a custodian's rounds")
    s.add_argument("--key-file", required=True, help="the key this custodian accepted with")
    s.add_argument(
        "--peer", required=True, help="host:port of the sessions (custodian 0 listens there)"
    )
    s.add_argument("--task", type=int, action="append", help="only these tasks (repeatable)")
    s.add_argument("--once", action="store_true", help="one round, then exit")
    s.add_argument("--interval", type=seconds, default=2.0, help="seconds between rounds")
    session_options(s)
    s.add_argument(
        "--fetch-timeout",
        type=seconds,
        default=FETCH_TIMEOUT,
        help="seconds a file may stay missing from the store before its owner is blamed",
    )
    s.add_argument(
        "--dealer-timeout",
        type=seconds,
        default=DEALER_TIMEOUT,
        help="seconds the dealer may miss every session before it is said not to come",
    )
    s.set_defaults(run=run_serve)
    d = verbs.add_parser("dealer", parents=[common_options()], help="the dealer")
    d.add_argument("--key-file", required=True, help="the key this dealer accepted with")
    d.add_argument("--peer", required=True, help="host:port of custodian 0's sessions")
    d.add_argument("--interval", type=seconds, default=2.0, help="seconds between looks for tasks")
    d.add_argument("--sessions", type=int, default=0, help="stop after N sessions (0: never)")
    session_options(d)
    d.set_defaults(run=run_dealer)
    j = verbs.add_parser("session", help=argparse.SUPPRESS)
    j.add_argument("job")
    j.set_defaults(run=run_session)
    return p


def least_budget(session_timeout: float) -> float:
    """The shortest session budget that leaves a session over it room to end itself and hear
    the other custodian's last word (links.OverBudget, blame.exchange: at most two step
    timeouts and handshakes) and to leave (one more) before its service stops it: what the
    session gives itself (session.own_budget) is then the budget less three. A session stopped
    before its words is counted against its node, whoever made it slow (attacker review)."""
    return 6 * (session_timeout + HANDSHAKE_S)


def run_serve(args: argparse.Namespace, settings) -> int:
    from bountytree.market.actions import open_market

    from .service import Custodian

    if args.session_budget < least_budget(args.session_timeout):
        raise UserError(
            f"--session-budget {args.session_budget:g} is too short for --session-timeout "
            f"{args.session_timeout:g}: at least {least_budget(args.session_timeout):g} s"
        )

    custodian = Custodian(
        open_market(settings),
        Path(args.key_file),
        args.peer,
        session_timeout=args.session_timeout,
        session_budget=args.session_budget,
        fetch_timeout=args.fetch_timeout,
        dealer_timeout=args.dealer_timeout,
        tasks=args.task,
        log=lambda line: print(line, flush=True),
    )
    print(f"custodian {custodian.me}: sessions at {args.peer}", flush=True)
    failures = 0
    while True:
        try:
            custodian.run_round()
            failures = 0
        except Exception as exc:  # the chain or the store is down: wait and try again
            if args.once:
                raise
            failures += 1
            print(f"round failed ({type(exc).__name__}: {exc}); retrying", flush=True)
        if args.once:
            return 0
        time.sleep(min(60.0, args.interval * 2**failures))


PAIRS_REFRESH_S = 30.0  # how old the dealer's list of custodian pairs may be


def custodian_keys(custody, me: str, mine: bytes) -> set[tuple[bytes, bytes]]:
    """The keys of custodians 0 and 1, pair by pair, of the ready, unsettled tasks this account
    deals for with this key: the only parties whose sessions it joins, each pair together."""
    pairs: set[tuple[bytes, bytes]] = set()
    for task_id in custody.market.task_ids():
        view = custody.of(task_id)
        if not view or view.party_of(me) != 2 or not view.ready or view.settled:
            continue
        if view.keys[2] == mine and view.keys[0] and view.keys[1]:
            pairs.add((view.keys[0], view.keys[1]))
    return pairs


def run_dealer(args: argparse.Namespace, settings) -> int:
    from bountytree.market.actions import open_market
    from bountytree.market.custody import Custody
    from bountytree.private.sealing import public_key, read_private_key

    key_file = Path(args.key_file).resolve()
    mine = public_key(read_private_key(key_file))
    custody = Custody(open_market(settings))
    print(f"dealer {custody.market.chain.address}: sessions at {args.peer}", flush=True)
    served = 0
    pairs: set[tuple[bytes, bytes]] = set()
    read_at = -PAIRS_REFRESH_S
    while args.sessions == 0 or served < args.sessions:
        # read again at most every PAIRS_REFRESH_S while there are pairs: a scan of every task
        # before each session delayed the dealer's link on a large market, and time before it
        # links counts against it in a session over its budget (attacker review)
        if not pairs or time.monotonic() - read_at > PAIRS_REFRESH_S:
            try:
                pairs = custodian_keys(custody, custody.market.chain.address, mine)
                read_at = time.monotonic()
            except Exception as exc:  # the chain is down: wait and look again
                print(
                    f"could not read the tasks ({type(exc).__name__}: {exc}); retrying", flush=True
                )
                pairs = set()
        if not pairs:
            time.sleep(args.interval)
            continue
        try:
            status = _dealer_session(args, key_file, pairs)
        except subprocess.TimeoutExpired:  # a session a custodian kept alive without end
            print(f"a session ran over {args.session_budget:.0f} s and was stopped", flush=True)
            continue
        if status.returncode == 0:
            served += 1
            print(status.stdout.decode().strip(), flush=True)
    return 0


def _dealer_session(args, key_file: Path, pairs: set[tuple[bytes, bytes]]):
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "custodian",
            "session-dealer",
            args.peer,
            str(args.session_timeout),
            str(key_file),
            ",".join(sorted(f"{zero.hex()}:{one.hex()}" for zero, one in pairs)),
        ],
        preexec_fn=die_with_parent(),
        capture_output=True,
        # stopped at the budget only: one shorter than the custodians' cut their sessions, and
        # they named an honest dealer for it (attacker review)
        timeout=args.session_budget,
    )


def run_session(args: argparse.Namespace, settings) -> int:
    from .session import run as run_job

    return run_job(Path(args.job))


def main() -> int:
    if len(sys.argv) == 6 and sys.argv[1] == "session-dealer":
        from .session import dealer

        return dealer(sys.argv[2], float(sys.argv[3]), *sys.argv[4:])
    return run(build_parser())


if __name__ == "__main__":
    sys.exit(main())
