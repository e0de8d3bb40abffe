"""`bountytree ipfs add FILE | cat CID | pin CID | pins`: the store, embedded or an IPFS node.

Every failure is one line on stderr naming its kind (not in the store, corrupted, cannot reach
the node) and exit status 2; bytes `cat` wrote before a failure were verified.
"""

from __future__ import annotations

import argparse
import sys

from bountytree.config import Settings
from bountytree.storage.connect import open_store
from bountytree.storage.store import Store, add_file


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    p = sub.add_parser(
        "ipfs", parents=[common], help="content-addressed storage (embedded or an IPFS node)"
    )
    verbs = p.add_subparsers(dest="verb", required=True)
    timeout = argparse.ArgumentParser(add_help=False)
    timeout.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        help="seconds an IPFS node may look for a block before it counts as missing (default 30)",
    )
    add = verbs.add_parser(
        "add", parents=[common, timeout], help="store and pin a file, print its CIDv0"
    )
    add.add_argument("file")
    add.set_defaults(run=run_add)
    cat = verbs.add_parser("cat", parents=[common, timeout], help="write a stored file to stdout")
    cat.add_argument("cid")
    cat.set_defaults(run=run_cat)
    pin = verbs.add_parser("pin", parents=[common, timeout], help="keep a stored file")
    pin.add_argument("cid")
    pin.set_defaults(run=run_pin)
    pins = verbs.add_parser("pins", parents=[common, timeout], help="list pinned CIDs")
    pins.set_defaults(run=run_pins)


def _store(args: argparse.Namespace, settings: Settings) -> Store:
    return open_store(settings.store, timeout=args.timeout)


def run_add(args: argparse.Namespace, settings: Settings) -> int:
    store = _store(args, settings)
    cid = add_file(store, args.file)
    store.pin(cid)
    print(cid)
    return 0


def run_cat(args: argparse.Namespace, settings: Settings) -> int:
    out = sys.stdout.buffer
    for piece in _store(args, settings).cat(args.cid):
        out.write(piece)
    out.flush()
    return 0


def run_pin(args: argparse.Namespace, settings: Settings) -> int:
    _store(args, settings).pin(args.cid)
    print(f"pinned {args.cid}")
    return 0


def run_pins(args: argparse.Namespace, settings: Settings) -> int:
    for cid in _store(args, settings).pins():
        print(cid)
    return 0
