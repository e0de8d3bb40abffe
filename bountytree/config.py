"""Configuration in one place: every command, the oracle, the trainer and the app read it here.

Precedence: an explicit argument, then the environment, then the embedded default. The
defaults run everything on one machine: a local Ganache, the embedded store under
`.bountytree/`, deployments under `deployments/`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from bountytree.errors import UserError

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RPC = "http://127.0.0.1:8545"


def _path(value: str) -> Path:
    return Path(value).expanduser()


def _env(name: str, default: Callable[[], Any], parse: Callable[[str], Any] = str) -> Any:
    """A field read from the environment variable `name` when set, else `default()`. The name is
    kept in the field's metadata: `Settings.to_env` hands the same settings to a child process."""
    return field(
        default_factory=lambda: parse(os.environ[name]) if os.environ.get(name) else default(),
        metadata={"env": name},
    )


def _flag(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes")


def _number(name: str, kind: Callable[[str], Any]) -> Callable[[str], Any]:
    """A parser for a numeric variable whose bad value is a one-line error, not a traceback."""

    def parse(value: str) -> Any:
        try:
            parsed = kind(value)
        except ValueError:
            raise UserError(f"{name}={value!r} is not a number") from None
        if parsed <= 0:
            raise UserError(f"{name}={value!r} must be positive")
        return parsed

    return parse


def _default_home() -> Path:
    value = os.environ.get("BOUNTYTREE_HOME")
    return _path(value) if value else ROOT / ".bountytree"


@dataclass(frozen=True)
class Settings:
    """Where the chain, the contracts, the store and local state are."""

    rpc: str = _env("BOUNTYTREE_RPC", lambda: DEFAULT_RPC)
    # An index into the local chain's deterministic accounts (dev:N), or a keystore file path.
    account: str | None = _env("BOUNTYTREE_ACCOUNT", lambda: None)
    # A directory for the embedded store, or the URL of a Kubo RPC API.
    store: str = _env("BOUNTYTREE_STORE", lambda: str(_default_home() / "store"))
    home: Path = _env("BOUNTYTREE_HOME", _default_home, _path)
    deployments: Path = _env("BOUNTYTREE_DEPLOYMENTS", lambda: ROOT / "deployments", _path)
    # brownie's compiler output: ABI and bytecode that `bountytree deploy` sends.
    build: Path = _env("BOUNTYTREE_BUILD", lambda: ROOT / "build" / "contracts", _path)
    # Sending (bountytree/chain/client.py). Blocks a transaction must be buried under before a command
    # goes on; None: 1 on a local chain, 2 elsewhere.
    confirmations: int | None = _env(
        "BOUNTYTREE_CONFIRMATIONS", lambda: None, _number("BOUNTYTREE_CONFIRMATIONS", int)
    )
    # Send on a chain that is not local without asking (the quote is still shown on stderr).
    yes: bool = _env("BOUNTYTREE_YES", lambda: False, _flag)
    # The most a unit of gas may cost, in gwei; None: whatever the chain asks.
    max_fee_gwei: float | None = _env(
        "BOUNTYTREE_MAX_FEE_GWEI", lambda: None, _number("BOUNTYTREE_MAX_FEE_GWEI", float)
    )

    def to_env(self) -> dict[str, str]:
        """These settings as the environment variables `Settings()` reads back in a child."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if "env" in f.metadata and value is not None:
                out[f.metadata["env"]] = str(value)
        return out

    def with_overrides(self, **values: Any) -> Settings:
        """A copy with the given fields replaced, ignoring those left as None."""
        kept = {k: v for k, v in values.items() if v is not None}
        return Settings(**{**self.__dict__, **kept})
