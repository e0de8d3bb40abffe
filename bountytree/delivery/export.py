"""`bountytree model export`: a scored node as a Hugging Face-style folder.

The folder holds `model.safetensors` (the stored weights, byte for byte), `config.json` (the
model spec) and `README.md` (the model card), plus `model.onnx` or `model.pt` (TorchScript) on
request. A converted file is trusted only after it is loaded back and reproduces PyTorch's
predictions on real rows (a dataset published to the task, else the example digits), never the
sponsor's validation set. Everything is written into a temporary folder beside the target and
renamed into place at the end, so a failed or interrupted export leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bountytree.delivery.model_card import FormatCheck, ModelSource, model_card
from bountytree.errors import UserError
from bountytree.market.actions import Market
from bountytree.models.datasets import DatasetError, check_against
from bountytree.models.inference import Prediction, Predictor

FORMATS = ("safetensors", "onnx", "torchscript")
CONVERTED = {"onnx": "model.onnx", "torchscript": "model.pt"}
CHECK_ROWS = 256
ONNX_OPSET = 17


class ExportError(UserError):
    """An export that cannot be written, or whose converted file does not reproduce PyTorch."""


@dataclass(frozen=True)
class CheckRows:
    """Rows the converted files are compared on, and where they came from (for the card)."""

    X: np.ndarray
    source: str


@dataclass(frozen=True)
class Exported:
    folder: Path
    files: tuple[str, ...]
    checks: tuple[FormatCheck, ...]


def require_empty(out: Path) -> None:
    """Refuses a target that is a file or a folder with anything in it (nothing is overwritten)."""
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise ExportError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        raise ExportError(f"{out} exists and is not empty; give a new or empty folder")


def check_rows(market: Market, source: ModelSource, limit: int = CHECK_ROWS) -> CheckRows:
    """Public rows that fit the model: the first readable dataset published to the task, else the
    example digits when the model takes 64 features, else seeded random rows."""
    info = source.task.description
    spec = source.spec
    if info is not None:
        for dataset_id, _block in market.datasets_of(source.task.id):
            try:
                ds = market.dataset(source.task.id, dataset_id, info.label_column)
                check_against(ds, spec.num_features, spec.num_classes)
            except DatasetError:
                continue
            return CheckRows(ds.X[:limit], f"dataset {dataset_id} published to the task")
    if spec.num_features == 64:
        from sklearn.datasets import load_digits  # shipped with scikit-learn: no download

        X = (load_digits().data[:limit] / 16.0).astype(np.float32)
        return CheckRows(X, "scikit-learn's digits (the example data)")
    rng = np.random.default_rng(0)
    return CheckRows(
        rng.standard_normal((limit, spec.num_features)).astype(np.float32),
        "seeded random rows (no public data fits the model)",
    )


def _write_onnx(model: torch.nn.Module, example: torch.Tensor, path: Path) -> None:
    # The TorchScript-based exporter: a spec is a plain Sequential of whitelisted layers, which
    # it converts exactly, without the torch.export exporter's extra dependencies.
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example,),
            str(path),
            dynamo=False,
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=ONNX_OPSET,
        )


def _run_onnx(path: Path, rows: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    out = session.run(["logits"], {"input": rows})
    return np.asarray(out[0])


def _write_torchscript(model: torch.nn.Module, example: torch.Tensor, path: Path) -> None:
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, example)
        torch.jit.save(traced, str(path))


def _run_torchscript(path: Path, rows: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = torch.jit.load(str(path), map_location="cpu")
    with torch.inference_mode():
        return np.asarray(loaded(torch.from_numpy(rows)).numpy())


def compare(file: str, reference: Prediction, logits: np.ndarray, source: str) -> FormatCheck:
    """Checks a converted file's logits against PyTorch's; raises ExportError if they differ by
    more than float32 rounding, or if a class flips where the top two logits are not tied."""
    if logits.shape != reference.logits.shape:
        raise ExportError(
            f"{file}: outputs shape {list(logits.shape)}, PyTorch {list(reference.logits.shape)}"
        )
    diff = float(np.abs(logits - reference.logits).max())
    tolerance = 1e-4 * max(1.0, float(np.abs(reference.logits).max()))
    classes = logits.argmax(axis=1)
    top = np.sort(reference.logits, axis=1)
    flipped = (classes != reference.classes) & (top[:, -1] - top[:, -2] > 2 * tolerance)
    if diff > tolerance or flipped.any():
        raise ExportError(
            f"{file} does not reproduce PyTorch's predictions (largest logit difference "
            f"{diff:.3g}, {int(flipped.sum())} classes changed); nothing was written"
        )
    agree = int((classes == reference.classes).sum())
    return FormatCheck(file, len(logits), source, diff, agree)


def _convert(fmt: str, predictor: Predictor, folder: Path, rows: CheckRows) -> FormatCheck:
    X = predictor.rows(rows.X, rows.source)
    reference = predictor.forward(X)
    example = torch.from_numpy(X[:1].copy())
    path = folder / CONVERTED[fmt]
    if fmt == "onnx":
        _write_onnx(predictor.model, example, path)
        logits = _run_onnx(path, X)
    else:
        _write_torchscript(predictor.model, example, path)
        logits = _run_torchscript(path, X)
    return compare(path.name, reference, logits, rows.source)


def export_model(source: ModelSource, out: Path, fmt: str, rows: CheckRows) -> Exported:
    """Writes the folder `out` (which must not exist, or be empty) atomically."""
    if fmt not in FORMATS:
        raise ExportError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
    out = Path(out).absolute()
    require_empty(out)
    if not out.parent.is_dir():
        raise ExportError(f"{out.parent} is not a folder; create it first")
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    except OSError as exc:
        raise ExportError(f"{out}: cannot write here ({exc.strerror})") from None
    try:
        predictor = Predictor.from_weights(source.weights, source.spec, source.weights_cid)
        files = ["model.safetensors", "config.json"]
        (tmp / "model.safetensors").write_bytes(source.weights)
        (tmp / "config.json").write_bytes(source.spec.to_bytes())
        checks: list[FormatCheck] = []
        if fmt in CONVERTED:
            checks.append(_convert(fmt, predictor, tmp, rows))
            files.append(CONVERTED[fmt])
        (tmp / "README.md").write_text(model_card(source, checks))
        files.append("README.md")
        os.chmod(tmp, 0o755)
        if out.is_dir():
            out.rmdir()  # empty (checked above); rename cannot replace it on every platform
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Exported(out, tuple(files), tuple(checks))


def zip_folder(folder: Path) -> bytes:
    """The folder as a zip archive (the app's download), its files under the folder's name."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for path in sorted(Path(folder).iterdir()):
            z.write(path, f"{folder.name}/{path.name}")
    return buf.getvalue()


def export_zip(source: ModelSource, fmt: str, rows: CheckRows) -> bytes:
    """An export as zip bytes, built in a temporary folder that is removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="bountytree-export-") as scratch:
        name = f"{source.model_name}-node-{source.node.id}"
        exported = export_model(source, Path(scratch) / name, fmt, rows)
        return zip_folder(exported.folder)
