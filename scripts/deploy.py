"""brownie run scripts/deploy.py [main ACCOUNT [ORACLE]] --network <id>

The deployment of `bountytree deploy`, through the same function (`bountytree.chain.deploy`):
Reputation, the Payouts library and BountyTree (linked to it) deployed, the writer bound, PrivateCustody deployed, CUSTODY_ROLE granted and
deployments/<chainId>.json written, with the same quotes, confirmations and prompts. brownie
only provides the network (it starts its development chain, whose accounts are the same
deterministic ones: brownie-config.yaml gives it the same mnemonic). ACCOUNT is what
`--account` takes (an index on a local chain, `dev:N`, or a keystore file); by default
BOUNTYTREE_ACCOUNT or BOUNTYTREE_PRIVATE_KEY, else the local chain's account 0.
"""

from brownie import web3

from bountytree.chain.client import deploy, deployment_path
from bountytree.config import Settings


def main(account=None, oracle=None):
    settings = Settings().with_overrides(rpc=web3.provider.endpoint_uri, account=account)
    result = deploy(settings, oracle=oracle)
    record = result["record"]
    for name in (
        "Reputation",
        "Payouts",
        "BountyTree",
        "bindWriter",
        "PrivateCustody",
        "grantRole",
    ):
        print(f"{name:<14} {result['txs'][name]}")
    print(f"wrote {deployment_path(settings.deployments, record['chainId'])}")
    return record
