"""The task description (`bountytree/task@1`), the JSON a sponsor stores on IPFS and whose CID
the task records: what a row looks like and what is predicted, never the data itself."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass

from .errors import UserError

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

    @property
    def num_features(self) -> int:
        return math.prod(self.input_shape)

    def to_bytes(self) -> bytes:
        data = {"format": FORMAT, **asdict(self), "input_shape": list(self.input_shape)}
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
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UserError(f"{where}: not a valid {FORMAT} document ({exc})") from None
    except RecursionError:
        raise UserError(f"{where}: not a valid {FORMAT} document (nested too deeply)") from None
