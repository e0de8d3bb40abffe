"""Checked fields of a spec: each checker returns the cleaned value or raises `SpecError` naming
the field (`where: why`). The layer types and the training recipe are declared with them."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from bountytree.errors import UserError

MAX_DIM = 4096  # any width, channel count or input side


class SpecError(UserError):
    """A spec that does not validate; the message names the field."""


# ── field checkers: each returns the cleaned value or raises SpecError(where: why) ──


def int_field(where: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(f"{where}: expected an integer, got {json.dumps(value)}")
    if not lo <= value <= hi:
        raise SpecError(f"{where}: {value} is outside {lo}..{hi}")
    return int(value)


def num_field(where: str, value: Any, lo: float, hi: float, *, open_lo: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SpecError(f"{where}: expected a number, got {json.dumps(value)}")
    if value < lo or value > hi or (open_lo and value == lo):
        raise SpecError(f"{where}: {value} is outside {'(' if open_lo else '['}{lo}, {hi}]")
    return float(value)


def bool_field(where: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise SpecError(f"{where}: expected true or false, got {json.dumps(value)}")
    return value


def pair_field(where: str, value: Any, lo: int, hi: int) -> int:
    """Kernel sizes, strides and paddings: one integer, or a square pair [k, k]."""
    if isinstance(value, list):
        if len(value) != 2 or value[0] != value[1]:
            raise SpecError(
                f"{where}: expected an integer or a square pair [k, k], got {json.dumps(value)}"
            )
        value = value[0]
    return int_field(where, value, lo, hi)


@dataclass(frozen=True)
class Arg:
    check: Callable[[str, Any], Any]
    default: Any = None
    required: bool = False


def required(check: Callable[[str, Any], Any]) -> Arg:
    return Arg(check, required=True)


def choice_field(where: str, value: Any, options: tuple[str, ...]) -> str:
    if value not in options:
        raise SpecError(f"{where}: {json.dumps(value)} is not one of {', '.join(options)}")
    return str(value)


def check_fields(where: str, given: Any, allowed: Mapping[str, Arg]) -> dict[str, Any]:
    if not isinstance(given, dict):
        raise SpecError(f"{where}: expected an object, got {json.dumps(given)[:60]}")
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise SpecError(
            f"{where}: unknown field {unknown[0]!r} (allowed: {', '.join(allowed) or 'none'})"
        )
    out = {}
    for name, arg in allowed.items():
        if name in given:
            out[name] = arg.check(f"{where}.{name}", given[name])
        elif arg.required:
            raise SpecError(f"{where}.{name}: missing")
        else:
            out[name] = arg.default
    return out


DIM = partial(int_field, lo=1, hi=MAX_DIM)
KERNEL = partial(pair_field, lo=1, hi=64)
PADDING = partial(pair_field, lo=0, hi=64)


def fraction(where: str, value: Any) -> float:
    return num_field(where, value, 0, 1)


def positive_fraction(where: str, value: Any) -> float:
    return num_field(where, value, 0, 1, open_lo=True)
