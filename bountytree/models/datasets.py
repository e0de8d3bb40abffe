"""Datasets: CSV (a header, numeric features, an integer label column) or `.npz` (`X`, `y`).

Every loader returns features as a float32 matrix (one row per example, features flattened) and
labels as int64, and `check_against` compares them with a task before anything is trained or
sent, so a wrong file fails with the reason and not with a shape error deep in torch.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bountytree.errors import UserError

MAX_DATASET_BYTES = 1 << 30


class DatasetError(UserError):
    """A dataset file that cannot be read or does not fit its task."""


@dataclass(frozen=True)
class Dataset:
    X: np.ndarray  # float32, (rows, features)
    y: np.ndarray  # int64, (rows,)
    # The feature columns' names, in order, when the file has them (a CSV's header).
    feature_names: tuple[str, ...] | None = None

    def __len__(self) -> int:
        return len(self.y)

    @property
    def num_features(self) -> int:
        return int(self.X.shape[1])

    @property
    def classes(self) -> list[int]:
        return sorted(int(c) for c in np.unique(self.y))

    def subset(self, index: np.ndarray) -> Dataset:
        return Dataset(self.X[index], self.y[index], self.feature_names)

    def to_npz_bytes(self) -> bytes:
        buf = io.BytesIO()
        np.savez(buf, X=self.X, y=self.y)
        return buf.getvalue()


@dataclass(frozen=True)
class InputBox:
    """Per-feature bounds of a task's rows (flattened feature order)."""

    low: tuple[float, ...]
    high: tuple[float, ...]

    @classmethod
    def of_rows(cls, *parts: Any) -> InputBox:
        """A box around every row of the given arrays (rows × features), each bound rounded
        outward to a coarse grid (an eighth of the power of two above the feature's magnitude):
        it is published with the task, and an exact minimum or maximum would be the value of
        one of the sponsor's private rows. The bound only needs a box that holds the rows."""
        X = np.concatenate([np.asarray(p, dtype=np.float64) for p in parts if len(p)])
        low, high = X.min(axis=0), X.max(axis=0)
        magnitude = np.maximum(np.maximum(np.abs(low), np.abs(high)), 2.0**-20)
        step = 2.0 ** (np.ceil(np.log2(magnitude)) - 3)
        return cls(
            tuple(map(float, np.floor(low / step) * step)),
            tuple(map(float, np.ceil(high / step) * step)),
        )

    def too_wide(self, limit: float) -> int | None:
        """The first feature whose range reaches beyond ±limit, or None."""
        for i, (lo, hi) in enumerate(zip(self.low, self.high, strict=True)):
            if max(abs(lo), abs(hi)) > limit:
                return i
        return None

    def outside(self, X: Any) -> int | None:
        """The first feature (index) on which some row of X leaves the box, or None."""
        below = (np.asarray(X) < np.asarray(self.low)).any(axis=0)
        above = (np.asarray(X) > np.asarray(self.high)).any(axis=0)
        bad = np.flatnonzero(below | above)
        return int(bad[0]) if bad.size else None


def _labels(where: str, values: np.ndarray) -> np.ndarray:
    if values.dtype.kind == "f":
        if not np.isfinite(values).all() or (values != np.round(values)).any():
            raise DatasetError(f"{where}: labels must be whole numbers")
    elif values.dtype.kind not in "iu":
        raise DatasetError(f"{where}: labels must be integers, got {values.dtype}")
    y = values.astype(np.int64)
    if y.size and y.min() < 0:
        raise DatasetError(f"{where}: negative label {int(y.min())}")
    return y


def _features(where: str, values: np.ndarray) -> np.ndarray:
    if values.dtype.kind not in "fiub":
        raise DatasetError(f"{where}: features must be numbers, got {values.dtype}")
    X = values.reshape(len(values), -1).astype(np.float32)
    if not np.isfinite(X).all():
        raise DatasetError(f"{where}: features contain NaN or infinity")
    return X


def _check_npz_sizes(raw: bytes, where: str) -> None:
    """Reads each array's .npy header inside the zip and refuses, before anything is decompressed
    or allocated, arrays that would take more than MAX_DATASET_BYTES."""
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as z:
            total = 0
            for name in z.namelist():
                with z.open(name) as f:
                    major, _ = np.lib.format.read_magic(f)
                    read_header = (
                        np.lib.format.read_array_header_1_0
                        if major == 1
                        else np.lib.format.read_array_header_2_0
                    )
                    shape, _, dtype = read_header(f)
                total += int(np.prod(shape, dtype=object)) * dtype.itemsize
    except (
        ValueError,
        OSError,
        zipfile.BadZipFile,
        RuntimeError,
        TypeError,
        EOFError,
        AttributeError,
    ) as exc:
        raise DatasetError(f"{where}: not a readable .npz file ({exc})") from None
    if total > MAX_DATASET_BYTES:
        raise DatasetError(
            f"{where}: its arrays would take {total} bytes, at most {MAX_DATASET_BYTES}"
        )


def _from_npz(raw: bytes, where: str) -> Dataset:
    _check_npz_sizes(raw, where)
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as data:
            if "X" not in data or "y" not in data:
                raise DatasetError(
                    f"{where}: an .npz dataset needs arrays X and y, found {sorted(data.files)}"
                )
            X, y = data["X"], data["y"]
    except DatasetError:
        raise
    except (ValueError, OSError, zipfile.BadZipFile, MemoryError) as exc:
        raise DatasetError(f"{where}: not a readable .npz file ({exc})") from None
    if X.ndim < 2 or y.ndim != 1 or len(X) != len(y):
        raise DatasetError(
            f"{where}: X must be (rows, features…) and y (rows,), got {X.shape} and {y.shape}"
        )
    return Dataset(_features(where, X), _labels(where, y))


def _from_csv(raw: bytes, where: str, label_column: str) -> Dataset:
    import pandas as pd

    try:
        frame = pd.read_csv(io.BytesIO(raw))
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise DatasetError(
            f"{where}: not a readable CSV file ({str(exc).splitlines()[0]})"
        ) from None
    if label_column not in frame.columns:
        raise DatasetError(
            f"{where}: no label column {label_column!r} (columns: "
            f"{', '.join(map(str, frame.columns[:8]))}{'…' if len(frame.columns) > 8 else ''})"
        )
    if len(frame) == 0:
        raise DatasetError(f"{where}: no rows")
    features = frame.drop(columns=[label_column])
    if features.shape[1] == 0:
        raise DatasetError(f"{where}: no feature columns besides {label_column!r}")
    bad = [c for c in features.columns if features[c].dtype.kind not in "fiub"]
    if bad:
        raise DatasetError(f"{where}: column {bad[0]!r} is not numeric")
    if frame[label_column].isna().any():
        raise DatasetError(f"{where}: missing labels in column {label_column!r}")
    return Dataset(
        _features(where, features.to_numpy()),
        _labels(where, frame[label_column].to_numpy()),
        tuple(str(c) for c in features.columns),
    )


def load_bytes(raw: bytes, where: str = "dataset", label_column: str = "label") -> Dataset:
    """A dataset from bytes: `.npz` if it is a zip archive, else CSV."""
    if len(raw) > MAX_DATASET_BYTES:
        raise DatasetError(f"{where}: {len(raw)} bytes, at most {MAX_DATASET_BYTES}")
    ds = _from_npz(raw, where) if raw[:4] == b"PK\x03\x04" else _from_csv(raw, where, label_column)
    if len(ds) == 0:
        raise DatasetError(f"{where}: no rows")
    return ds


def load_file(path: str | Path, label_column: str = "label") -> Dataset:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({exc.strerror})") from None
    return load_bytes(raw, str(path), label_column)


def check_against(ds: Dataset, num_features: int, num_classes: int, where: str = "dataset") -> None:
    """Refuses data whose rows or labels do not fit a task."""
    if ds.num_features != num_features:
        raise DatasetError(
            f"{where}: {ds.num_features} features per row, the task expects {num_features}"
        )
    if int(ds.y.max()) >= num_classes:
        raise DatasetError(
            f"{where}: label {int(ds.y.max())} is outside the task's classes 0..{num_classes - 1}"
        )


def holdout_indices(rows: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The (train, holdout) row indices of holdout_split: they depend on the row count and the
    seed only, so custodians who hold the rows as secret shares select the same rows."""
    order = np.random.default_rng(seed).permutation(rows)
    cut = min(rows - 1, max(1, round(rows * fraction))) if rows > 1 else 0
    return order[cut:], order[:cut]


def holdout_split(ds: Dataset, fraction: float, seed: int) -> tuple[Dataset, Dataset]:
    """A reproducible (train, holdout) split; the holdout keeps at least one row when it can."""
    train, holdout = holdout_indices(len(ds), fraction, seed)
    return ds.subset(train), ds.subset(holdout)
