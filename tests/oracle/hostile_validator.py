"""A sponsor's validator (party 0) that shifts every count it helps reveal, run by the tests as a
process of its own:

    python tests/oracle/hostile_validator.py --shift ROWS validator --task N --validation FILE \
        --address HOST:PORT --one-session

It is the real validator (`python -m oracle validator`: commitment check, ticket admission, rows
in a secret order) except for one thing: before a count is revealed it adds ROWS to its own
share of it. Adding a public constant in CrypTen changes party 0's share only, so party 1 and
the oracle see nothing unusual: the count stays inside [0, rows] and is recorded. Only an audit
against the published validation file can tell.
"""

from __future__ import annotations

import argparse
import sys

from bountytree.cli import run
from oracle import mpc
from oracle.__main__ import build_parser


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--shift", type=int, required=True)
    args, rest = p.parse_known_args()
    honest_reveal = mpc._reveal_count

    def shifted(total, rows: int) -> int:
        return honest_reveal(total + args.shift, rows)

    mpc._reveal_count = shifted
    sys.exit(run(build_parser(), rest))


if __name__ == "__main__":
    main()
