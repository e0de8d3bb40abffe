"""What a person types, as the typed values the core takes: amounts of ETH, durations, a
train/validation/test split. The command line and the app parse here; `Market` never sees
text."""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation

from web3 import Web3

from bountytree.errors import UserError


def parse_eth(text: str | float | Decimal, what: str) -> int:
    try:
        value = Decimal(str(text))
    except InvalidOperation:
        raise UserError(f"{what}: {text!r} is not an amount of ETH") from None
    if not value.is_finite() or value < 0:
        raise UserError(f"{what}: {text!r} is not an amount of ETH")
    return int(Web3.to_wei(value, "ether"))


def parse_duration(text: str) -> int:
    """'90s', '30m', '2h', '7d' → seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        amount, unit = float(text[:-1]), units[text[-1]]
    except (ValueError, KeyError, IndexError):
        raise UserError(f"deadline: {text!r} is not a duration like 90s, 30m, 2h or 7d") from None
    if amount <= 0 or not math.isfinite(amount):
        raise UserError(f"deadline: {text!r} must be positive")
    return int(amount * unit)


def parse_split(text: str) -> tuple[int, int, int]:
    try:
        parts = tuple(int(p) for p in text.split("/"))
    except ValueError:
        parts = ()
    if len(parts) != 3 or min(parts) < 0 or sum(parts) != 100 or parts[1] == 0:
        raise UserError(
            f"--split: {text!r} is not train/validation/test percentages summing to 100 "
            "with a validation share"
        )
    return parts  # type: ignore[return-value]
