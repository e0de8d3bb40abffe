"""CrypTen, importable on torch 2.13.

CrypTen 0.4.1 imports `torch.onnx._internal.registration`, which torch moved to
`torch.onnx._internal.torchscript_exporter.registration`; registering the new module under the
old name is all it needs (see docs/environment.md). Import `crypten` from here, never directly; only the oracle uses it.
"""

from __future__ import annotations

import sys

import torch
import torch.onnx._internal.torchscript_exporter.registration as _registration

sys.modules.setdefault("torch.onnx._internal.registration", _registration)

import crypten  # noqa: E402

__all__ = ["crypten", "torch"]
