"""Readable names for the local chain's deterministic accounts, shared by the demo, `task show`
and the app: on a local chain, "Alice" is easier to follow than 0xFFcf…."""

from __future__ import annotations

from bountytree.chain.client import ganache_account

# index -> (name, role in the demo)
ACTORS: dict[int, tuple[str, str]] = {
    0: ("Operator", "deployer and oracle"),
    1: ("Sponsor", "posts the bounty"),
    2: ("Ada", "architect"),
    3: ("Grace", "architect"),
    4: ("Pat", "publishes a public dataset"),
    5: ("Alice", "data owner"),
    6: ("Bob", "data owner"),
    7: ("Carol", "data owner"),
    8: ("Dave", "compute provider"),
    # a private task's custody (`bountytree up --private-models`)
    10: ("Kai", "custodian"),
    11: ("Lin", "custodian"),
    12: ("Dee", "dealer"),
}


def names(count: int = 13) -> dict[str, str]:
    """address -> name for the first `count` local accounts (unnamed ones become "Account N")."""
    return {
        ganache_account(i).address: ACTORS.get(i, (f"Account {i}", ""))[0] for i in range(count)
    }
