"""brownie run scripts/deploy.py --network <id>: the same deployment as `bountytree deploy`.

Deploys Reputation and BountyTree, binds the writer, and writes deployments/<chainId>.json
(address and ABI of each) for the oracle, trainer and app, none of which import brownie.
"""

import json
from pathlib import Path

from brownie import BountyTree, Reputation, accounts, chain


def main(oracle=None):
    deployer = accounts[0]
    reputation = Reputation.deploy({"from": deployer})
    tree = BountyTree.deploy(reputation, deployer, oracle or deployer, {"from": deployer})
    reputation.bindWriter(tree, {"from": deployer})
    record = {
        "chainId": chain.id,
        "deployer": str(deployer),
        "oracle": str(oracle or deployer),
        "block": tree.tx.block_number,
        "Reputation": {"address": str(reputation), "abi": reputation.abi},
        "BountyTree": {"address": str(tree), "abi": tree.abi},
    }
    path = Path("deployments") / f"{chain.id}.json"
    path.parent.mkdir(exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
    print(f"wrote {path}")
    return tree
