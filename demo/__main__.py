"""`python -m demo`: plays the scripted market against the chain, store and oracle named by the
BOUNTYTREE_* settings (as `bountytree up --demo` passes them), then prints the task, the
withdrawals and the reputations."""

from __future__ import annotations

import sys
import time

from bountytree.config import Settings
from bountytree.errors import UserError

from .market import run, summary


def main() -> int:
    started_at = time.perf_counter()
    play = run
    if "--private-models" in sys.argv[1:]:
        from .private import run as play
    try:
        result = play(Settings(), log=lambda line: print(line, flush=True))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print()
    print(summary(result.market, result.task_id, result.withdrawn))
    spent = ", ".join(f"{phase} {seconds:.0f} s" for phase, seconds in result.spent.items())
    print(f"\nscripted market took {time.perf_counter() - started_at:.0f} s ({spent})")
    print("demo complete", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
