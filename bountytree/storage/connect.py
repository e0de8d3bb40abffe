"""Which store a `--store` value names: an IPFS node's RPC URL or the embedded store's folder."""

from __future__ import annotations

from bountytree.errors import UserError
from bountytree.storage.embedded import EmbeddedStore
from bountytree.storage.store import Store


def open_store(spec: str, timeout: float = 30.0) -> Store:
    """An http(s) URL selects an IPFS node's RPC API (`timeout`: how long it may look for a
    block before the block counts as missing); anything else is the embedded store's directory."""
    if spec.startswith(("http://", "https://")):
        from bountytree.storage.kubo import KuboStore

        return KuboStore(spec, timeout)
    if spec == "ipfs":
        raise UserError(
            "--store ipfs starts a daemon only with `bountytree up`; elsewhere give the "
            "daemon's RPC URL (e.g. --store http://127.0.0.1:5001)"
        )
    return EmbeddedStore(spec)
