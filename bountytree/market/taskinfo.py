"""The task description (`bountytree/task@1`), the JSON a sponsor stores on IPFS and whose CID
the task records: what a row looks like and what is predicted, never the data itself.

Fields that serve the scoring: `margin_bps`, the Ladder's η (a node's score is recorded only
when it beats the task's exact best by this much, rounded down to it: bountytree/market/ladder.py);
`feature_ranges`, each feature's least and greatest value over the sponsor's rows, from which a
model's values are bounded before a secure session (bountytree/models/bounds.py: the trainer
checks it before it stakes, the oracle before it scores); `input_range`, one [low, high] for all
features, what descriptions held before; `test_rows`, the size of the test part the winner is
scored on once. `feature_names` is the rows' schema (the CSV header's feature columns, in
order), carried into the model card. `validator_key` is the public X25519 key the sponsor's
validator proves on the scoring link (bountytree/market/validation.py): the oracle scores with
no other. A description written before these existed reads with the default margin, no range
(no bound), no test part and no validator key (the oracle then trusts whoever answers at its
`--validator` address, as it did)."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass

from bountytree.errors import UserError
from bountytree.market.ladder import BPS, DEFAULT_MARGIN_BPS
from bountytree.models.datasets import InputBox
from bountytree.models.fixedpoint import SAFE_LIMIT

FORMAT = "bountytree/task@1"
MAX_BYTES = 512 * 1024  # room for a name and a range per feature (up to 4096 features)
MAX_FEATURE_NAME = 100


@dataclass(frozen=True)
class TaskInfo:
    name: str
    description: str
    input_shape: tuple[int, ...]
    num_classes: int
    label_column: str = "label"
    metric: str = "accuracy"
    validation_rows: int = 0
    margin_bps: int = DEFAULT_MARGIN_BPS
    test_rows: int = 0
    input_range: tuple[float, float] | None = None
    feature_ranges: tuple[tuple[float, float], ...] | None = None
    feature_names: tuple[str, ...] | None = None
    validator_key: str | None = None  # 64 hex digits

    @property
    def num_features(self) -> int:
        return math.prod(self.input_shape)

    @property
    def input_box(self) -> InputBox | None:
        """Each feature's [low, high] the task's rows lie in: per feature where the description
        has them, else its one range for every feature, else None (nothing to bound on)."""
        if self.feature_ranges is not None:
            return InputBox(
                tuple(r[0] for r in self.feature_ranges), tuple(r[1] for r in self.feature_ranges)
            )
        if self.input_range is not None:
            n = self.num_features
            return InputBox((self.input_range[0],) * n, (self.input_range[1],) * n)
        return None

    def to_bytes(self) -> bytes:
        data = {"format": FORMAT, **asdict(self), "input_shape": list(self.input_shape)}
        data["input_range"] = list(self.input_range) if self.input_range else None
        if self.feature_ranges is not None:
            data["feature_ranges"] = [list(r) for r in self.feature_ranges]
        if self.feature_names is not None:
            data["feature_names"] = list(self.feature_names)
        return json.dumps(data, indent=2, sort_keys=True).encode() + b"\n"


def parse(raw: bytes, where: str = "task description") -> TaskInfo:
    if len(raw) > MAX_BYTES:
        raise UserError(f"{where}: {len(raw)} bytes, at most {MAX_BYTES}")
    try:
        data = json.loads(raw)
        if data.get("format") != FORMAT:
            raise ValueError(f"format is not {FORMAT}")
        shape = tuple(int(v) for v in data["input_shape"])
        if not shape or min(shape) < 1 or int(data["num_classes"]) < 2:
            raise ValueError("input_shape or num_classes out of range")
        info = TaskInfo(
            name=str(data["name"]),
            description=str(data.get("description", "")),
            input_shape=shape,
            num_classes=int(data["num_classes"]),
            label_column=str(data.get("label_column", "label")),
            metric=str(data.get("metric", "accuracy")),
            validation_rows=int(data.get("validation_rows", 0)),
            margin_bps=_margin(data.get("margin_bps", DEFAULT_MARGIN_BPS)),
            test_rows=int(data.get("test_rows", 0)),
            input_range=_range(data.get("input_range")),
            feature_ranges=_feature_ranges(data.get("feature_ranges"), math.prod(shape)),
            feature_names=_feature_names(data.get("feature_names"), math.prod(shape)),
            validator_key=_key(data.get("validator_key")),
        )
        # A box beyond what the secure evaluation holds, in either form, would fail every
        # model's bound: such a task cannot be scored, and is not read.
        box = info.input_box
        wide = box.too_wide(SAFE_LIMIT) if box is not None else None
        if wide is not None:
            raise ValueError(f"feature {wide}'s range reaches beyond ±{SAFE_LIMIT:g}")
        return info
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UserError(f"{where}: not a valid {FORMAT} document ({exc})") from None
    except RecursionError:
        raise UserError(f"{where}: not a valid {FORMAT} document (nested too deeply)") from None


def _key(value: object) -> str | None:
    if value is None:
        return None
    if not (isinstance(value, str) and len(value) == 64 and set(value) <= set("0123456789abcdef")):
        raise ValueError("validator_key is not 64 lowercase hex digits (an X25519 public key)")
    return value


def _margin(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= BPS:
        raise ValueError(f"margin_bps {value!r} is not a whole number of basis points in 1..{BPS}")
    return value


def _feature_ranges(value: object, features: int) -> tuple[tuple[float, float], ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != features:
        raise ValueError(f"feature_ranges is not a [low, high] for each of {features} features")
    ranges = []
    for i, v in enumerate(value):
        r = _range(v)
        if r is None:
            raise ValueError(f"feature_ranges[{i}] is not a finite [low, high]")
        ranges.append(r)
    return tuple(ranges)


def _feature_names(value: object, features: int) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != features:
        raise ValueError(f"feature_names is not a name for each of {features} features")
    if not all(isinstance(v, str) and 0 < len(v) <= MAX_FEATURE_NAME for v in value):
        raise ValueError(f"feature_names are not strings of 1 to {MAX_FEATURE_NAME} characters")
    return tuple(value)


def _range(value: object) -> tuple[float, float] | None:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != 2:
        raise ValueError("input_range is not [low, high]")
    low, high = (float(v) for v in value)
    if not (math.isfinite(low) and math.isfinite(high) and low <= high):
        raise ValueError(f"input_range {value} is not a finite [low, high]")
    return low, high
