"""`bountytree ipfs add FILE` prints the CID; `bountytree ipfs cat CID` writes the bytes to stdout."""

from __future__ import annotations

import sys

from ..store import add_file, open_store


def register(sub, common) -> None:
    p = sub.add_parser(
        "ipfs", parents=[common], help="content-addressed storage (embedded or Kubo)"
    )
    verbs = p.add_subparsers(dest="verb", required=True)
    add = verbs.add_parser("add", parents=[common], help="store a file and print its CIDv0")
    add.add_argument("file")
    add.set_defaults(run=run_add)
    cat = verbs.add_parser("cat", parents=[common], help="write a stored file to stdout")
    cat.add_argument("cid")
    cat.set_defaults(run=run_cat)


def run_add(args, settings) -> int:
    store = open_store(settings.store)
    cid = add_file(store, args.file)
    store.pin(cid)
    print(cid)
    return 0


def run_cat(args, settings) -> int:
    store = open_store(settings.store)
    out = sys.stdout.buffer
    # Pieces are verified before they are yielded; a corrupted block stops the output with an
    # error naming the CID (bytes already written were verified).
    for piece in store.cat(args.cid):
        out.write(piece)
    out.flush()
    return 0
