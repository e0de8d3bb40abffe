"""`bountytree deploy`: both contracts, wired together, recorded in deployments/<chainId>.json."""

from __future__ import annotations

from ..chain import deploy, deployment_path


def register(sub, common) -> None:
    p = sub.add_parser("deploy", parents=[common], help="deploy Reputation and BountyTree")
    p.add_argument("--oracle", help="address given ORACLE_ROLE (default: the deploying account)")
    p.set_defaults(run=run)


def run(args, settings) -> int:
    result = deploy(settings, oracle=args.oracle)
    record = result["record"]
    for name in ("Reputation", "BountyTree"):
        print(f"{name:<11} {record[name]['address']}  {result['txs'][name]}")
    print(f"bindWriter  {result['txs']['bindWriter']}")
    print(f"oracle      {record['oracle']}")
    print(f"wrote {deployment_path(settings.deployments, record['chainId'])}")
    return 0
