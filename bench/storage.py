"""make bench-storage: add and cat of a 256 MiB file against hashing the same bytes with SHA-256.

SHA-256 over the file is the floor of what `add` must cost (every byte is hashed once), so the
figures are ratios to that baseline measured in the same run. Memory is the peak RSS of a child
process that adds (then cats) a file, for two file sizes: flat means the same peak.
Writes bench/storage.md.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import resource
import tempfile
import time
from pathlib import Path

from bountytree.store import EmbeddedStore, add_file

MIB = 1024 * 1024


def _make_file(folder: Path, size: int) -> Path:
    path = folder / f"data-{size // MIB}MiB.bin"
    with open(path, "wb") as f:
        for _ in range(size // MIB):  # distinct bytes throughout: no chunk deduplicates
            f.write(os.urandom(MIB))
    return path


def _sha256_file(path: Path) -> float:
    start = time.perf_counter()
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(256 * 1024):
            h.update(chunk)
    return time.perf_counter() - start


def _add_and_cat(path: str, root: str, out) -> None:
    store = EmbeddedStore(root)
    start = time.perf_counter()
    cid = add_file(store, path)
    added = time.perf_counter() - start
    start = time.perf_counter()
    total = sum(len(piece) for piece in store.cat(cid))
    catted = time.perf_counter() - start
    assert total == os.path.getsize(path)
    out.put((added, catted, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024))


def _run_child(path: Path, root: Path):
    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_add_and_cat, args=(str(path), str(root), q))
    p.start()
    result = q.get(timeout=1800)
    p.join()
    return result


def main() -> None:
    with tempfile.TemporaryDirectory(
        dir=Path.cwd() / ".bountytree" if (Path.cwd() / ".bountytree").is_dir() else None
    ) as tmp:
        folder = Path(tmp)
        rows = []
        peaks = {}
        for size in (64 * MIB, 256 * MIB):
            path = _make_file(folder, size)
            _sha256_file(path)  # warm the page cache for both contenders
            sha = min(_sha256_file(path) for _ in range(2))
            added, catted, peak = _run_child(path, folder / f"store-{size}")
            peaks[size] = peak
            rows.append((size // MIB, sha, added, catted, peak))
            path.unlink()
    lines = [
        "| file | sha256 alone | add | add speed ÷ sha256 speed (goal ≥ 0.5) | cat | cat ÷ sha256 | peak RSS |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for mib, sha, added, catted, peak in rows:
        lines.append(
            f"| {mib} MiB | {sha:.2f} s ({mib / sha:.0f} MiB/s) | {added:.2f} s ({mib / added:.0f} MiB/s) | "
            f"{sha / added:.2f} | {catted:.2f} s | {sha / catted:.2f} | {peak} MiB |"
        )
    lines.append("")
    lines.append(
        f"Peak memory 256 MiB ÷ 64 MiB file: {peaks[256 * MIB] / peaks[64 * MIB]:.2f} (flat = 1.00)"
    )
    table = "\n".join(lines)
    print(table)
    Path("bench").mkdir(exist_ok=True)
    Path("bench/storage.md").write_text("# Embedded store (make bench-storage)\n\n" + table + "\n")


if __name__ == "__main__":
    main()
