"""`python -m oracle [--once] [--task TASK_ID]`: score pending nodes, finalize when due.
`python -m oracle validator --task TASK_ID --validation FILE`: the sponsor's party."""

from __future__ import annotations

import argparse
import os
import stat
import sys

from bountytree.cli import common_options, run
from bountytree.market.actions import open_market


def build_parser() -> argparse.ArgumentParser:
    common = common_options()
    p = argparse.ArgumentParser(
        prog="python -m oracle",
        parents=[common],
        description="score pending nodes with two-party CrypTen, finalize tasks that are due",
    )
    p.add_argument("--once", action="store_true", help="one round, then exit")
    p.add_argument("--task", type=int, action="append", help="only this task (repeatable)")
    p.add_argument(
        "--validator",
        help="HOST:PORT of a running validator party (default: start one here from the "
        "file `bountytree task create` registered)",
    )
    p.add_argument(
        "--fetch-timeout",
        type=float,
        default=60.0,
        help="seconds a node's files may take to reach the store before it is rejected (default 60)",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="nodes per scoring transaction (default and most: the contract's MAX_BATCH)",
    )
    p.add_argument("--interval", type=float, default=5.0, help="seconds between rounds (default 5)")
    p.set_defaults(run=run_oracle)
    sub = p.add_subparsers(dest="role")
    # No abbreviations: `--salt HEX` must be refused, not read as `--salt-file HEX`.
    v = sub.add_parser(
        "validator",
        parents=[common],
        allow_abbrev=False,
        help="party 0: holds the validation file (sponsor's host)",
    )
    v.add_argument("--task", type=int, required=True)
    v.add_argument("--validation", required=True)
    v.add_argument(
        "--test",
        help="the test part, scored once for the finalized winner (default: the one "
        "`bountytree task create --split` kept on this machine, if any)",
    )
    v.add_argument(
        "--address",
        default=os.environ.get("BOUNTYTREE_MPC_ADDRESS", "127.0.0.1:29500"),
        help="HOST:PORT this party listens on (default 127.0.0.1:29500; env BOUNTYTREE_MPC_ADDRESS); "
        "only sessions with a ticket signed by the task's oracle are admitted",
    )
    v.add_argument(
        "--sessions",
        type=int,
        default=0,
        help="serve this many sessions, then exit (0: forever); waits with no oracle do not count",
    )
    v.add_argument("--one-session", action="store_true", help=argparse.SUPPRESS)
    v.add_argument(
        "--wait",
        type=_seconds,
        default=120.0,
        help="seconds a session waits for the oracle to join before it listens afresh "
        "(default 120; each step of a session may take 120 s whatever this is)",
    )
    v.add_argument(
        "--salt-file",
        dest="salt",
        type=_salt_file,
        help="a file holding the validation file's salt in hex, readable by its owner only "
        "(default: env BOUNTYTREE_VALIDATION_SALT, else the salt `bountytree task create` kept "
        "on this machine); never on the command line, which every local user can read",
    )
    v.add_argument(
        "--link-key",
        help="the validator's link key file, whose public key the task names (default: the one "
        "`bountytree task create` made on this machine)",
    )
    v.set_defaults(run=lambda a, s: _validator(a, s))
    m = sub.add_parser("model-party", parents=[common], help=argparse.SUPPRESS)
    m.add_argument("--job", required=True)
    m.set_defaults(run=_model_party)
    return p


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 1 <= value <= 86_400:
        raise argparse.ArgumentTypeError(f"{text}: a number of seconds from 1 to 86400")
    return value


def _salt_file(path: str) -> bytes:
    """The salt from a file only its owner can read (a secret in argv is in /proc/<pid>/cmdline,
    readable by every local user for as long as the process runs)."""
    try:  # opened once, not followed if a link, never blocking (a FIFO), then checked
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"{path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
            raise argparse.ArgumentTypeError(f"{path} is not a regular file of yours")
        mode = st.st_mode
        if mode & 0o077:
            raise argparse.ArgumentTypeError(
                f"{path} is readable by others (mode {mode & 0o777:o}): chmod 600 {path}"
            )
        text = f.read(4096).decode(errors="replace").strip()
    try:
        return bytes.fromhex(text.removeprefix("0x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{path} does not hold a hex salt") from None


def _validator(args, settings) -> int:
    from .parties import run_validator

    return run_validator(
        settings,
        args.task,
        args.validation,
        args.address,
        args.sessions,
        args.salt,
        args.test,
        wait_s=args.wait,
        one_session=args.one_session,
        link_key=args.link_key,
    )


def _model_party(args, settings) -> int:
    from .parties import run_model_party

    return run_model_party(args.job, settings)


def run_oracle(args, settings) -> int:
    from .service import Oracle, serve

    env = settings.to_env()

    def make() -> Oracle:
        return Oracle(
            open_market(settings),
            validator=args.validator,
            fetch_timeout=args.fetch_timeout,
            settings_env=env,
            batch_size=args.batch_size,
            log=lambda line: print(line, flush=True),
        )

    if args.once:
        rounds = make().run_round(args.task)
        return 1 if any(r.error for r in rounds) else 0
    serve(make, args.task, args.interval, log=lambda line: print(line, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(run(build_parser()))
