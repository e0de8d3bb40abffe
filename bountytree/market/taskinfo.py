"""The task description (`bountytree/task@1`), the JSON a sponsor stores on IPFS and whose CID
the task records: what a row looks like and what is predicted, never the data itself.

Three fields serve the scoring: `margin_bps`, the Ladder's η (a node's score is recorded only
when it beats the task's best by this much, rounded down to it: bountytree/ladder.py);
`input_range`, the least and greatest feature value of the sponsor's rows, from which the oracle
bounds a model's logits before a secure session (oracle/bounds.py); `test_rows`, the size of the
test part the winner is scored on once. A description written before they existed reads with
the default margin, no range (no logit bound) and no test part."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass

from bountytree.errors import UserError
from bountytree.market.ladder import BPS, DEFAULT_MARGIN_BPS

FORMAT = "bountytree/task@1"
MAX_BYTES = 64 * 1024


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

    @property
    def num_features(self) -> int:
        return math.prod(self.input_shape)

    def to_bytes(self) -> bytes:
        data = {"format": FORMAT, **asdict(self), "input_shape": list(self.input_shape)}
        data["input_range"] = list(self.input_range) if self.input_range else None
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
        return TaskInfo(
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
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UserError(f"{where}: not a valid {FORMAT} document ({exc})") from None
    except RecursionError:
        raise UserError(f"{where}: not a valid {FORMAT} document (nested too deeply)") from None


def _margin(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= BPS:
        raise ValueError(f"margin_bps {value!r} is not a whole number of basis points in 1..{BPS}")
    return value


def _range(value: object) -> tuple[float, float] | None:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != 2:
        raise ValueError("input_range is not [low, high]")
    low, high = (float(v) for v in value)
    if not (math.isfinite(low) and math.isfinite(high) and low <= high):
        raise ValueError(f"input_range {value} is not a finite [low, high]")
    return low, high
