"""make bench-storage: add and cat of a file against hashing the same bytes with SHA-256, on the
embedded store and on a real IPFS daemon (js-ipfs, offline, through `KuboStore`).

SHA-256 over the file is the floor of what `add` must cost (every byte is hashed once), so the
figures are ratios to that baseline measured in the same run. The file is written and flushed
to disk (sync) before anything is timed, so no contender pays for writing back the test file;
the page cache is warm for all of them. Each embedded add goes to a fresh store (every block is
new) and is run five times, each right after its own SHA-256 baseline (the machine is shared:
a pair sees the same load); the figure is the median of the five ratios, and their range.
Memory is the peak RSS of the child process that adds then cats a file, for two file sizes:
flat means the same peak. Writes bench/storage.md.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import resource
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bountytree.storage.connect import open_store
from bountytree.storage.store import add_file

MIB = 1024 * 1024
RUNS = 5


@dataclass
class Run:
    added: float  # seconds
    catted: float
    peak_mib: int


def _make_file(folder: Path, size: int) -> Path:
    path = folder / f"data-{size // MIB}MiB.bin"
    with open(path, "wb") as f:
        for _ in range(size // MIB):  # distinct bytes throughout: no chunk deduplicates
            f.write(os.urandom(MIB))
    os.sync()
    return path


def _sha256_file(path: Path) -> float:
    start = time.perf_counter()
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(256 * 1024):
            h.update(chunk)
    return time.perf_counter() - start


def _add_and_cat(path: str, spec: str, out) -> None:
    store = open_store(spec)
    start = time.perf_counter()
    cid = add_file(store, path)
    added = time.perf_counter() - start
    start = time.perf_counter()
    total = sum(len(piece) for piece in store.cat(cid))
    catted = time.perf_counter() - start
    assert total == os.path.getsize(path)
    out.put(Run(added, catted, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024))


def _run_child(path: Path, spec: str) -> Run:
    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_add_and_cat, args=(str(path), spec, q))
    p.start()
    result = q.get(timeout=3600)
    p.join()
    return result


def _speed(mib: int, seconds: float) -> str:
    return f"{seconds:.2f} s ({mib / seconds:.0f} MiB/s)"


def main() -> None:
    from bountytree.storage import daemon as ipfsd

    home = Path.cwd() / ".bountytree"
    with tempfile.TemporaryDirectory(dir=home if home.is_dir() else None) as tmp:
        folder = Path(tmp)
        daemon = ipfsd.start(folder / "ipfs", folder / "ipfs.log")
        rows, daemon_rows = [], []
        try:
            for size in (64 * MIB, 256 * MIB):
                mib = size // MIB
                path = _make_file(folder, size)
                _sha256_file(path)  # warm the page cache for every contender
                pairs = []
                for i in range(RUNS):
                    sha = _sha256_file(path)
                    root = folder / f"store-{mib}-{i}"
                    pairs.append((sha, _run_child(path, str(root))))
                    shutil.rmtree(root)
                    os.sync()  # its blocks gone before the next run
                rows.append((mib, pairs))
                sha = _sha256_file(path)
                daemon_rows.append((mib, sha, _run_child(path, daemon.url)))
                path.unlink()
        finally:
            ipfsd.stop_daemon(daemon)
    table = _tables(rows, daemon_rows, daemon.url)
    print(table)
    Path("bench").mkdir(exist_ok=True)
    Path("bench/storage.md").write_text("# Storage (make bench-storage)\n\n" + table + "\n")


def _tables(rows, daemon_rows, url: str) -> str:
    lines = [
        "## Embedded store",
        "",
        "| file | sha256 alone | add | add speed ÷ sha256 speed (goal ≥ 0.5) "
        "| cat | cat ÷ sha256 | peak RSS |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    peaks = {}
    for mib, pairs in rows:
        sha = statistics.median(s for s, _ in pairs)
        added = statistics.median(r.added for _, r in pairs)
        catted = statistics.median(r.catted for _, r in pairs)
        ratios = sorted(s / r.added for s, r in pairs)
        cat_ratio = statistics.median(s / r.catted for s, r in pairs)
        peaks[mib] = max(r.peak_mib for _, r in pairs)
        lines.append(
            f"| {mib} MiB | {_speed(mib, sha)} | {_speed(mib, added)} | "
            f"{statistics.median(ratios):.2f} ({ratios[0]:.2f}–{ratios[-1]:.2f}) | "
            f"{_speed(mib, catted)} | {cat_ratio:.2f} | {peaks[mib]} MiB |"
        )
    lines += [
        "",
        f"Peak memory 256 MiB ÷ 64 MiB file: {peaks[256] / peaks[64]:.2f} (flat = 1.00)",
        "",
        "## IPFS daemon (js-ipfs 0.18, offline, through KuboStore)",
        "",
        "`add` streams the file to the daemon's `add` and computes the CID locally alongside; "
        "`cat` fetches block by block (`block/get`, 8 at once) and verifies each block.",
        "",
        "| file | sha256 alone | add | add ÷ sha256 | cat | cat ÷ sha256 | client peak RSS |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for mib, sha, run in daemon_rows:
        lines.append(
            f"| {mib} MiB | {_speed(mib, sha)} | {_speed(mib, run.added)} | "
            f"{sha / run.added:.2f} | {_speed(mib, run.catted)} | {sha / run.catted:.2f} | "
            f"{run.peak_mib} MiB |"
        )
    load = os.getloadavg()[0]
    lines += ["", f"Load average at the end: {load:.1f} on {os.cpu_count()} cores."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
