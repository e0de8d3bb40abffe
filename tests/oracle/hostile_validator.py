"""A sponsor's validator (party 0) that shifts every count it helps reveal, run by the tests as a
process of its own:

    python tests/oracle/hostile_validator.py --shift ROWS [--own-key] [--no-best] validator \
        --task N --validation FILE --address HOST:PORT --one-session

It is the real validator (`python -m oracle validator`: commitment check, ticket admission, rows
in a secret order) except for one thing: before a count is revealed it adds ROWS to its own
share of it. Adding a public constant in CrypTen changes party 0's share only, so party 1 and
the oracle see nothing unusual: the count stays inside [0, rows] and is recorded. Only an audit
against the published validation file can tell.

With `--own-key` it is someone else at the validator's address: it proves a link key of its own,
not the one the task names (it holds the rows here only so that it can run the real code).

With `--no-best` it says it cannot count the task's best node (whose count the Ladder compares
against) in every session, whatever files it holds or the model party would give it; with
`--tiny-limit` as well, it asks the model party for the best's weights within one byte.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from bountytree.cli import run
from bountytree.private.sealing import new_private_key
from oracle import admission, mpc, parties
from oracle.__main__ import build_parser


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--shift", type=int, required=True)
    p.add_argument("--own-key", action="store_true")
    p.add_argument("--no-best", action="store_true")
    p.add_argument("--tiny-limit", action="store_true")
    args, rest = p.parse_known_args()
    honest_reveal = mpc._reveal_count

    def shifted(total, plain: int | None) -> tuple[int, float | None]:
        # the oracle is told party 0's own count: shifted
        return honest_reveal(total + args.shift, None if plain is None else plain + args.shift)

    mpc._reveal_count = shifted
    if args.no_best:
        counted = admission.Gate._best

        def uncounted(self, ticket, nodes):
            best = counted(self, ticket, nodes)
            return None if best is None else admission.Best(best.node_id, None)

        admission.Gate._best = uncounted
    if args.tiny_limit:
        admit = admission.Gate.admit

        def asks_within_a_byte(self, header, *a, **k):
            admitted = admit(self, header, *a, **k)
            nodes = self.market.nodes(self.task_id)
            best = self.market.task(self.task_id, with_info=False).released_best
            spec = self._spec(admission._architecture(nodes, best))
            tiny = admission.Wanted(nodes[best].weights_cid(spec), 1)
            return dataclasses.replace(admitted, wanted=(*admitted.wanted, tiny))

        admission.Gate.admit = asks_within_a_byte
    if args.own_key:
        parties.link_identity = lambda *_: new_private_key()
    sys.exit(run(build_parser(), rest))


if __name__ == "__main__":
    main()
