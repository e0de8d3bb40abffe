"""One module per `bountytree` subcommand: `register(subparsers, common)` adds it, and its
`run(args, settings)` calls the same core functions the app calls.

A module's top level imports nothing heavy (web3, torch): `bountytree --help` and `bountytree ipfs
add` start in a fraction of a second, and each command imports what it uses when it runs."""

from __future__ import annotations

import argparse
from typing import TypeAlias

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
