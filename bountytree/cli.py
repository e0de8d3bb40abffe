"""`bountytree`: the participants' command line. Each subcommand lives in bountytree/commands/.

Every command takes --rpc, --account and --store; a UserError (bad input, a call the contract
refuses) ends the command with one line on stderr and exit status 2, before anything is sent.
"""

from __future__ import annotations

import argparse
import sys

from bountytree.commands import audit as audit_cmd
from bountytree.commands import custody as custody_cmd
from bountytree.commands import dataset as dataset_cmd
from bountytree.commands import deploy as deploy_cmd
from bountytree.commands import ipfs as ipfs_cmd
from bountytree.commands import model as model_cmd
from bountytree.commands import propose as propose_cmd
from bountytree.commands import serve as serve_cmd
from bountytree.commands import settle as settle_cmd
from bountytree.commands import task as task_cmd
from bountytree.commands import up as up_cmd
from bountytree.config import Settings
from bountytree.errors import UserError
from bountytree.text import terminal

COMMANDS = [
    up_cmd,
    deploy_cmd,
    ipfs_cmd,
    task_cmd,
    propose_cmd,
    dataset_cmd,
    settle_cmd,
    model_cmd,
    serve_cmd,
    audit_cmd,
    custody_cmd,
]


def common_options() -> argparse.ArgumentParser:
    """--rpc, --account, --store: taken by every command (bountytree, trainer, oracle)."""
    # SUPPRESS: an option given before the subcommand is not reset by the subcommand's default.
    common = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    common.add_argument(
        "--rpc", help="chain JSON-RPC URL (env BOUNTYTREE_RPC, default http://127.0.0.1:8545)"
    )
    common.add_argument(
        "--account",
        help="local chain account index, or a keystore file "
        "(env BOUNTYTREE_PRIVATE_KEY also works)",
    )
    common.add_argument(
        "--store", help="embedded store directory, or a Kubo RPC URL (env BOUNTYTREE_STORE)"
    )
    # Sending on a public chain (bountytree/chain/client.py): every transaction is quoted on stderr and,
    # off a local chain, confirmed at a prompt unless --yes.
    common.add_argument(
        "--yes",
        action="store_true",
        help="send on a chain that is not local without asking (env BOUNTYTREE_YES)",
    )
    common.add_argument(
        "--confirmations",
        type=_positive_int,
        help="blocks to wait for after each transaction (default 1 on a local chain, else 2)",
    )
    common.add_argument(
        "--max-fee",
        type=_positive_float,
        dest="max_fee_gwei",
        metavar="GWEI",
        help="refuse to pay more than this per unit of gas (env BOUNTYTREE_MAX_FEE_GWEI)",
    )
    return common


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of gwei")
    return value


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of blocks, 1 or more")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    common = common_options()
    parser = argparse.ArgumentParser(
        prog="bountytree", description=__doc__.splitlines()[0], parents=[common]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for module in COMMANDS:
        module.register(sub, common)
    return parser


def settings_from(args: argparse.Namespace) -> Settings:
    return Settings().with_overrides(
        rpc=getattr(args, "rpc", None),
        account=getattr(args, "account", None),
        store=getattr(args, "store", None),
        yes=getattr(args, "yes", None) or None,
        confirmations=getattr(args, "confirmations", None),
        max_fee_gwei=getattr(args, "max_fee_gwei", None),
    )


def main(argv: list[str] | None = None) -> int:
    return run(build_parser(), argv)


def run(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> int:
    """Parses, runs `args.run(args, settings)`, and turns a UserError into one line and exit 2."""
    args = parser.parse_args(argv)
    try:
        return args.run(args, settings_from(args)) or 0
    except UserError as exc:
        print(f"error: {terminal(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
