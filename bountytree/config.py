"""Configuration in one place: every command, the oracle, the trainer and the app read it here.

Precedence: an explicit argument, then the environment, then the embedded default. The
defaults run everything on one machine: a local Ganache, the embedded store under
`.bountytree/`, deployments under `deployments/`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RPC = "http://127.0.0.1:8545"


def _env_path(name: str, default: Path) -> Path:
    value = os.environ.get(name)
    return Path(value).expanduser() if value else default


@dataclass(frozen=True)
class Settings:
    """Where the chain, the contracts, the store and local state are."""

    rpc: str = field(default_factory=lambda: os.environ.get("BOUNTYTREE_RPC", DEFAULT_RPC))
    # An index into the local chain's deterministic accounts, or a keystore file path.
    account: str | None = field(default_factory=lambda: os.environ.get("BOUNTYTREE_ACCOUNT"))
    # A directory for the embedded store, or the URL of a Kubo RPC API.
    store: str = field(
        default_factory=lambda: os.environ.get(
            "BOUNTYTREE_STORE", str(_env_path("BOUNTYTREE_HOME", ROOT / ".bountytree") / "store")
        )
    )
    home: Path = field(default_factory=lambda: _env_path("BOUNTYTREE_HOME", ROOT / ".bountytree"))
    deployments: Path = field(
        default_factory=lambda: _env_path("BOUNTYTREE_DEPLOYMENTS", ROOT / "deployments")
    )
    # brownie's compiler output: ABI and bytecode that `bountytree deploy` sends.
    build: Path = field(
        default_factory=lambda: _env_path("BOUNTYTREE_BUILD", ROOT / "build" / "contracts")
    )

    def with_overrides(self, **values) -> Settings:
        """A copy with the given fields replaced, ignoring those left as None."""
        kept = {k: v for k, v in values.items() if v is not None}
        return Settings(**{**self.__dict__, **kept})
