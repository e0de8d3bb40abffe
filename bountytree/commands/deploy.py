"""`bountytree deploy`: the contracts and their library, wired together, recorded in deployments/<chainId>.json.

The deployment itself is `chain.deploy`, the one path `bountytree up` and brownie's
scripts/deploy.py take too; this command only prints what it did and what it cost.
"""

from __future__ import annotations

import argparse
from typing import Any

from bountytree.config import Settings


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "deploy", parents=[common], help="deploy Reputation, BountyTree and PrivateCustody"
    )
    p.add_argument("--oracle", help="address given ORACLE_ROLE (default: the deploying account)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from bountytree.chain.client import deploy, deployment_path, eth

    result = deploy(settings, oracle=args.oracle)
    record, txs = result["record"], result["txs"]
    for name in ("Reputation", "Payouts", "BountyTree"):
        print(f"{name:<14} {record[name]['address']}  {txs[name]}")
    print(f"{'bindWriter':<14} {txs['bindWriter']}")
    print(f"{'PrivateCustody':<14} {record['PrivateCustody']['address']}  {txs['PrivateCustody']}")
    print(f"{'grantRole':<14} {txs['grantRole']}")
    print(f"{'oracle':<14} {record['oracle']}")
    total_gas = sum(sent.gas_used for sent in txs.values())
    total_fee = sum(sent.fee for sent in txs.values())
    print(f"{'cost':<14} gas {total_gas} fee {eth(total_fee)} ETH ({len(txs)} transactions)")
    print(f"wrote {deployment_path(settings.deployments, record['chainId'])}")
    return 0
