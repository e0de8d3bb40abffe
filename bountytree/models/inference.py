"""Predictions from a model: rows in, logits and predicted classes out.

One code path for every consumer of a trained model: `bountytree serve` (batched requests), the
app's Model page (an uploaded CSV) and the export check (the ONNX and TorchScript files must
reproduce these numbers). Rows are checked here, once, so that no caller can hand the network a
wrong shape, a string or an infinity and get a torch error instead of a sentence.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from bountytree.errors import UserError
from bountytree.models.counting import chunk_rows
from bountytree.models.spec import ModelSpec
from bountytree.models.weights import load_evaluated

# A CSV uploaded to the app for predictions is read whole; beyond this it is refused.
MAX_CSV_BYTES = 32 << 20


class InputError(UserError):
    """Rows that do not fit the model (shape, type, values); the message says which."""


@dataclass(frozen=True)
class Prediction:
    """Logits (float32, rows × classes) and each row's predicted class (argmax, ties to the first
    class as in PyTorch)."""

    logits: np.ndarray
    classes: np.ndarray

    def __len__(self) -> int:
        return len(self.classes)

    def probabilities(self) -> np.ndarray:
        """Softmax of the logits, for display (the model itself outputs logits)."""
        shifted = self.logits - self.logits.max(axis=1, keepdims=True)
        e = np.exp(shifted)
        out: np.ndarray = e / e.sum(axis=1, keepdims=True)
        return out


@dataclass(frozen=True)
class CsvRows:
    """Rows read from a CSV for prediction; `labels` when the file has the label column."""

    X: np.ndarray
    labels: np.ndarray | None


class Predictor:
    """A checked model and its spec: `predict` validates rows, `forward` trusts them."""

    def __init__(self, spec: ModelSpec, model: torch.nn.Module):
        self.spec = spec
        self.model = model.eval()

    @cached_property
    def flops_per_row(self) -> int:
        """One row's operations through the model (`flops.forward_flops_per_row`), counted once."""
        from bountytree.models.flops import forward_flops_per_row

        return forward_flops_per_row(self.model, self.spec)

    @classmethod
    def from_weights(cls, raw: bytes, spec: ModelSpec, where: str = "weights") -> Predictor:
        """Through the checked safetensors loader only (names, shapes, float32, finite), as the
        secure evaluation computes the model (`weights.load_evaluated`)."""
        return cls(spec, load_evaluated(raw, spec, where))

    @property
    def num_features(self) -> int:
        return self.spec.num_features

    def rows(self, values: np.ndarray, where: str = "input") -> np.ndarray:
        """`values` as float32 rows of the spec's input shape, or InputError. Accepts
        (rows, features) flattened as in a CSV, or (rows, *input_shape)."""
        values = np.asarray(values)
        if values.dtype.kind not in "fiu":
            raise InputError(f"{where}: values must be numbers, got {_kind(values.dtype)}")
        shape = tuple(values.shape)
        full = (*shape[:1], *self.spec.input_shape)
        if len(shape) < 2 or (shape != full and shape[1:] != (self.num_features,)):
            raise InputError(
                f"{where}: shape {list(shape)} does not fit the model, which takes "
                f"[rows, {', '.join(map(str, self.spec.input_shape))}]"
                + (f" or [rows, {self.num_features}]" if len(self.spec.input_shape) > 1 else "")
            )
        if shape[0] == 0:
            raise InputError(f"{where}: no rows")
        with np.errstate(over="ignore", invalid="ignore"):  # out of float32's range: refused below
            rows = values.astype(np.float32, copy=False).reshape(shape[0], *self.spec.input_shape)
        if not np.isfinite(rows).all():
            raise InputError(f"{where}: values must be finite float32 numbers (no NaN or infinity)")
        return rows

    def forward(self, rows: np.ndarray) -> Prediction:
        """The model over rows already checked by `rows` (the server's batches), in chunks of
        `counting.chunk_rows` rows, as the count is made: a wide model's layers (a convolution
        unfolded, say) hold a few MiB at once whatever the rows. One pass over 1,024 rows of a
        model whose convolution unfolds to 2^22 values a row took 14 GiB (found by the attacker
        review of the unfolded convolution)."""
        chunk = chunk_rows([self.spec])
        x = np.ascontiguousarray(rows)
        with torch.inference_mode():
            parts = [
                self.model(torch.from_numpy(x[i : i + chunk])) for i in range(0, len(x), chunk)
            ]
            logits = parts[0] if len(parts) == 1 else torch.cat(parts)
            classes = logits.argmax(dim=1)
        return Prediction(logits.numpy(), classes.numpy())

    def predict(self, values: np.ndarray, where: str = "input") -> Prediction:
        """Checks `values` and predicts them."""
        return self.forward(self.rows(values, where))


def _kind(dtype: np.dtype) -> str:
    return {"b": "booleans", "U": "strings", "S": "bytes", "O": "mixed values"}.get(
        dtype.kind, str(dtype)
    )


def rows_from_csv(
    raw: bytes, num_features: int, label_column: str = "label", where: str = "CSV"
) -> CsvRows:
    """Feature rows from a CSV with a header, with or without the task's label column (then its
    labels are kept, to report accuracy). Every other column must be a number."""
    import pandas as pd

    if len(raw) > MAX_CSV_BYTES:
        raise InputError(f"{where}: {len(raw)} bytes, at most {MAX_CSV_BYTES}")
    try:
        frame = pd.read_csv(io.BytesIO(raw))
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise InputError(f"{where}: not a readable CSV file ({str(exc).splitlines()[0]})") from None
    labels = None
    if label_column in frame.columns:
        column = frame.pop(label_column)
        if column.dtype.kind in "iu" or (
            column.dtype.kind == "f" and column.notna().all() and (column % 1 == 0).all()
        ):
            labels = column.to_numpy().astype(np.int64)
    if len(frame) == 0:
        raise InputError(f"{where}: no rows")
    bad = [c for c in frame.columns if frame[c].dtype.kind not in "fiub"]
    if bad:
        raise InputError(f"{where}: column {bad[0]!r} is not numeric")
    if frame.shape[1] != num_features:
        raise InputError(
            f"{where}: {frame.shape[1]} feature columns"
            + (f" besides {label_column!r}" if labels is not None else "")
            + f", the model takes {num_features}"
        )
    X = frame.to_numpy(dtype=np.float64)
    if not np.isfinite(X).all():
        raise InputError(f"{where}: empty cells, NaN or infinity among the features")
    return CsvRows(X.astype(np.float32), labels)


def accuracy(prediction: Prediction, labels: np.ndarray) -> float:
    """Share of rows whose predicted class is the label."""
    return float((prediction.classes == labels).mean()) if len(labels) else math.nan
