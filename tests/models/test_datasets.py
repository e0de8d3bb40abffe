"""Datasets: CSV and .npz load to float32 rows and int64 labels; bad files and files that do not
fit the task are refused with the reason."""

from __future__ import annotations

import io

import numpy as np
import pytest

from bountytree.models import datasets
from bountytree.models.datasets import DatasetError


def _csv(text: str) -> bytes:
    return text.encode()


def _npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def test_csv_and_npz_give_the_same_rows():
    a = datasets.load_bytes(_csv("f1,f2,label\n0.5,1,2\n1.5,0,0\n"))
    b = datasets.load_bytes(
        _npz(X=np.array([[0.5, 1], [1.5, 0]], dtype=np.float32), y=np.array([2, 0]))
    )
    for ds in (a, b):
        assert ds.X.dtype == np.float32 and ds.y.dtype == np.int64
        assert ds.X.tolist() == [[0.5, 1.0], [1.5, 0.0]] and ds.y.tolist() == [2, 0]
    c = datasets.load_bytes(_csv("target,a\n1,3\n"), label_column="target")
    assert c.y.tolist() == [1] and c.X.tolist() == [[3.0]]
    images = datasets.load_bytes(_npz(X=np.zeros((3, 1, 8, 8), dtype=np.float32), y=np.arange(3)))
    assert images.X.shape == (3, 64)


@pytest.mark.parametrize(
    "raw,message",
    [
        (_csv("a,b\n1,2\n"), "no label column 'label'"),
        (_csv("a,label\nx,1\n"), "column 'a' is not numeric"),
        (_csv("a,label\n1.0,0.5\n"), "whole numbers"),
        (_csv("a,label\n1.0,-1\n"), "negative label"),
        (_csv("a,label\n,1\n"), "NaN"),
        (_csv("a,label\n1,\n"), "missing labels"),
        (_csv("label\n1\n"), "no feature columns"),
        (_csv("a,label\n"), "no rows"),
        (b"", "not a readable CSV"),
        (_npz(X=np.zeros((2, 3))), "needs arrays X and y"),
        (_npz(X=np.zeros((2, 3)), y=np.zeros(3)), "X must be (rows, features"),
        (_npz(X=np.zeros((2, 3)), y=np.array(["a", "b"])), "labels must be integers"),
        (_npz(X=np.array([[object()]], dtype=object), y=np.zeros(1)), "not a readable .npz"),
        (b"PK\x03\x04broken", "not a readable .npz"),
    ],
)
def test_bad_files(raw, message):
    with pytest.raises(DatasetError) as err:
        datasets.load_bytes(raw, "data.bin")
    assert message in str(err.value) and "\n" not in str(err.value)


def test_checked_against_the_task():
    ds = datasets.load_bytes(_csv("a,b,label\n1,2,0\n3,4,5\n"))
    datasets.check_against(ds, 2, 6)
    with pytest.raises(DatasetError, match="2 features per row, the task expects 64"):
        datasets.check_against(ds, 64, 6)
    with pytest.raises(DatasetError, match=r"label 5 is outside the task's classes 0\.\.4"):
        datasets.check_against(ds, 2, 5)


def test_missing_file(tmp_path):
    with pytest.raises(DatasetError, match="cannot read"):
        datasets.load_file(tmp_path / "nope.csv")
