"""scikit-learn's digits (shipped inside the package, so offline) cut into the files a demo, a
benchmark or a test market needs: the sponsor's validation set, a held-out test set, a public
dataset, and private shares for data owners with different class mixes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bountytree.models.datasets import Dataset


def digits() -> Dataset:
    from sklearn.datasets import load_digits

    d = load_digits()
    return Dataset((d.data / 16.0).astype(np.float32), d.target.astype(np.int64))


def write_csv(ds: Dataset, path: Path) -> Path:
    header = ",".join([f"px{i}" for i in range(ds.num_features)] + ["label"])
    rows = np.column_stack([ds.X, ds.y]).astype(object)
    with open(path, "w") as f:
        f.write(header + "\n")
        for row in rows:
            f.write(",".join(f"{v:.4f}" for v in row[:-1]) + f",{int(row[-1])}\n")
    return path


def market_files(folder: Path, owners: int = 3, seed: int = 0) -> dict[str, Path]:
    """validation.csv (400 rows), test.csv (300), public.csv (150) and owner<i>.csv: the rest,
    split so that owner i holds mostly its own third of the classes (a non-IID federation)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ds = digits()
    order = np.random.default_rng(seed).permutation(len(ds))
    parts = {"validation": order[:400], "test": order[400:700], "public": order[700:850]}
    rest = order[850:]
    groups: list[list[int]] = [[] for _ in range(owners)]
    rng = np.random.default_rng(seed + 1)
    for i in rest:
        home = int(ds.y[i]) * owners // 10
        groups[home if rng.random() < 0.7 else int(rng.integers(owners))].append(i)
    for k, g in enumerate(groups):
        parts[f"owner{k + 1}"] = np.array(g)
    return {
        name: write_csv(ds.subset(index), folder / f"{name}.csv") for name, index in parts.items()
    }
