"""`bountytree deploy`: both contracts, wired together, recorded in deployments/<chainId>.json.

The deployment itself is `chain.deploy`, the one path `bountytree up` and brownie's
scripts/deploy.py take too; this command only prints what it did and what it cost.
"""

from __future__ import annotations

import argparse
from typing import Any

from bountytree.config import Settings


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("deploy", parents=[common], help="deploy Reputation and BountyTree")
    p.add_argument("--oracle", help="address given ORACLE_ROLE (default: the deploying account)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from bountytree.chain.client import deploy, deployment_path, eth

    result = deploy(settings, oracle=args.oracle)
    record, txs = result["record"], result["txs"]
    for name in ("Reputation", "BountyTree"):
        print(f"{name:<11} {record[name]['address']}  {txs[name]}")
    print(f"bindWriter  {txs['bindWriter']}")
    print(f"oracle      {record['oracle']}")
    total_gas = sum(sent.gas_used for sent in txs.values())
    total_fee = sum(sent.fee for sent in txs.values())
    print(f"cost        gas {total_gas} fee {eth(total_fee)} ETH (3 transactions)")
    print(f"wrote {deployment_path(settings.deployments, record['chainId'])}")
    return 0
