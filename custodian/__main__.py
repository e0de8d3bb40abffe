"""`python -m custodian serve --key-file FILE --peer 127.0.0.1:PORT [--task T …] [--once]`
(a custodian), `python -m custodian dealer --peer 127.0.0.1:PORT [--sessions N]` (the
dealer), and `python -m custodian session JOB` (one session, run by `serve`)."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from bountytree.cli import common_options, run
from bountytree.processes import die_with_parent

SESSION_TIMEOUT = 60.0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m custodian", description="a private task's custodian or dealer"
    )
    verbs = p.add_subparsers(dest="verb", required=True)
    s = verbs.add_parser("serve", parents=[common_options()], help="a custodian's rounds")
    s.add_argument("--key-file", required=True, help="the key this custodian accepted with")
    s.add_argument(
        "--peer",
        required=True,
        help="host:port of the sessions (custodian 0 listens there; loopback only)",
    )
    s.add_argument("--task", type=int, action="append", help="only these tasks (repeatable)")
    s.add_argument("--once", action="store_true", help="one round, then exit")
    s.add_argument("--interval", type=float, default=2.0, help="seconds between rounds")
    s.add_argument("--session-timeout", type=float, default=SESSION_TIMEOUT)
    s.set_defaults(run=run_serve)
    d = verbs.add_parser("dealer", parents=[common_options()], help="the dealer")
    d.add_argument("--peer", required=True, help="host:port of custodian 0's sessions")
    d.add_argument("--sessions", type=int, default=0, help="stop after N sessions (0: never)")
    d.add_argument("--session-timeout", type=float, default=SESSION_TIMEOUT)
    d.set_defaults(run=run_dealer)
    j = verbs.add_parser("session", help=argparse.SUPPRESS)
    j.add_argument("job")
    j.set_defaults(run=run_session)
    return p


def run_serve(args: argparse.Namespace, settings) -> int:
    from bountytree.market.actions import open_market
    from bountytree.mpc.session import check_loopback
    from bountytree.private.sealing import read_private_key

    from .service import Custodian

    check_loopback(args.peer)
    custodian = Custodian(
        open_market(settings),
        read_private_key(Path(args.key_file)),
        args.peer,
        session_timeout=args.session_timeout,
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


def run_dealer(args: argparse.Namespace, settings) -> int:
    from bountytree.mpc.session import check_loopback

    check_loopback(args.peer)
    print(f"dealer: sessions at {args.peer}", flush=True)
    served = 0
    while args.sessions == 0 or served < args.sessions:
        status = subprocess.run(
            [
                sys.executable,
                "-m",
                "custodian",
                "session-dealer",
                args.peer,
                str(args.session_timeout),
            ],
            preexec_fn=die_with_parent(),
            capture_output=True,
        )
        if status.returncode == 0:
            served += 1
            print(status.stdout.decode().strip(), flush=True)
    return 0


def run_session(args: argparse.Namespace, settings) -> int:
    from .session import run as run_job

    return run_job(Path(args.job))


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "session-dealer":
        from .session import dealer

        return dealer(sys.argv[2], float(sys.argv[3]))
    return run(build_parser())


if __name__ == "__main__":
    sys.exit(main())
