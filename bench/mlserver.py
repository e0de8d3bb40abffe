"""make bench-serve, second part: `bountytree serve` beside MLServer, the reference Python server
of the Open Inference Protocol (the one KServe uses), on the same exported model folder.

MLServer 1.7.1 runs from its own environment (.bench-mlserver/, bench/mlserver-requirements.txt,
never the product's venv) with a custom runtime (bench/mlserver_runtime.py) that runs the same
forward pass as `serve`: bountytree.models' Predictor, one torch thread. Setups:
- `bountytree serve DIR` with its defaults (batching up to 64 rows and 1 ms, every limit of
  docs/models.md on);
- MLServer with inference in its main process (`parallel_workers` 0), its fastest setup here;
- MLServer as it ships (`parallel_workers` 1: inference in a worker process).
Each is measured by the same aiohttp keep-alive clients (bench.serve's client process) at 1 and
64 rows per request, from 1, 8 and 64 concurrent clients, ROUNDS alternating rounds (medians); memory is
the peak resident size of the server's processes together. Goal: `serve` ahead of every MLServer
setup on every figure.

Writes bench/mlserver.md (bench/results.py gathers it into bench/results.md).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import psutil

from bench.serve import DURATION, ROUNDS, Result, measure, median
from bountytree.config import ROOT
from bountytree.models.spec import load_spec
from bountytree.models.weights import initial_weights
from bountytree.processes import free_port, stop

MLSERVER = ROOT / ".bench-mlserver" / "bin" / "mlserver"
CLIENTS = (1, 8, 64)
ROWS = (1, 64)  # per request
MODEL = "examples/mlp.json"  # the example MLP, 64-64-10, as exported


@dataclass
class Server:
    name: str
    proc: subprocess.Popen
    infer_url: str

    def peak_rss_mib(self) -> float:
        """Peak resident memory of the server and every process under it, summed."""
        procs = [psutil.Process(self.proc.pid)]
        procs += procs[0].children(recursive=True)
        total = 0
        for p in procs:
            status = Path(f"/proc/{p.pid}/status").read_text()
            total += int(re.search(r"VmHWM:\s+(\d+) kB", status)[1])
        return total / 1024


def _folder(root: Path) -> Path:
    """The model as `model export` lays it out: its spec and its safetensors weights."""
    folder = root / "model"
    folder.mkdir()
    spec_bytes = (ROOT / MODEL).read_bytes()
    (folder / "config.json").write_bytes(spec_bytes)
    (folder / "model.safetensors").write_bytes(initial_weights(load_spec(spec_bytes)))
    return folder


def _serve(folder: Path) -> Server:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bountytree", "serve", str(folder), "--port", "0"],
        stdout=subprocess.PIPE,
        cwd=ROOT,
    )
    line = proc.stdout.readline().decode()
    match = re.search(r"(http://127\.0\.0\.1:\d+/v2/models/\S+)", line)
    if not match:
        raise SystemExit(f"bountytree serve did not start: {line!r}")
    return Server("`bountytree serve`", proc, f"{match[1]}/infer")


def _mlserver(folder: Path, root: Path, workers: int, name: str) -> Server:
    """MLServer on localhost ports of its own, its model the folder through our runtime."""
    home = root / f"mlserver-{workers}"
    (home / "bench").mkdir(parents=True)
    http = free_port()
    settings = {
        "debug": False,
        "host": "127.0.0.1",
        "http_port": http,
        "grpc_port": free_port(),
        "metrics_port": free_port(),
        "parallel_workers": workers,
        "model_repository_root": str(home),
    }
    (home / "settings.json").write_text(json.dumps(settings))
    (home / "bench" / "model-settings.json").write_text(
        json.dumps(
            {
                "name": "bench",
                "implementation": "bench.mlserver_runtime.BountytreeRuntime",
                "parameters": {"uri": str(folder)},
            }
        )
    )
    log = (home / "mlserver.log").open("wb")
    with log:  # the child keeps its own descriptor
        proc = subprocess.Popen(
            [str(MLSERVER), "start", str(home)],
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            cwd=home,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    ready = f"http://127.0.0.1:{http}/v2/models/bench/ready"
    deadline = time.monotonic() + 120
    while True:
        try:
            if urllib.request.urlopen(ready, timeout=5).status == 200:
                break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            tail = (home / "mlserver.log").read_text(errors="replace")[:6000]
            raise SystemExit(f"MLServer ({name}) did not become ready:\n{tail}")
        time.sleep(0.5)
    return Server(name, proc, f"http://127.0.0.1:{http}/v2/models/bench/infer")


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    if not MLSERVER.exists():
        raise SystemExit("MLServer's environment is missing: run `make bench-serve`")
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        folder = _folder(root)
        servers: list[Server] = []
        try:
            servers.append(_serve(folder))
            servers.append(_mlserver(folder, root, 0, "MLServer, inference in its main process"))
            servers.append(_mlserver(folder, root, 1, "MLServer as shipped (1 inference worker)"))
            keys = [(s.name, rows, c) for rows in ROWS for c in CLIENTS for s in servers]
            url = {s.name: s.infer_url for s in servers}
            runs: dict[tuple[str, int, int], list[Result]] = {}
            for round_ in range(ROUNDS):
                order = keys if round_ % 2 == 0 else keys[::-1]  # no server always first
                plan = [(url[name], rows, clients) for name, rows, clients in order]
                for key, result in zip(order, measure(plan), strict=True):
                    runs.setdefault(key, []).append(result)
            memory = {s.name: s.peak_rss_mib() for s in servers}
        finally:
            for s in servers:
                stop(s.proc)
    got = {key: median(results) for key, results in runs.items()}

    # Each figure, and whether `serve` beats every MLServer setup on it (lower is better, but for
    # requests/s).
    figures: list[tuple[str, dict[str, float], bool]] = []
    for rows in ROWS:
        for clients in CLIENTS:
            at = f"{rows} row{'s' * (rows > 1)}, {clients} client{'s' * (clients > 1)}"
            r = {n: got[(n, rows, clients)] for n in url}
            if clients == 1:
                figures.append((f"p50 latency, {at} (ms)", {n: r[n].p50_ms for n in url}, False))
            figures.append((f"p99 latency, {at} (ms)", {n: r[n].p99_ms for n in url}, False))
            figures.append((f"requests/s, {at}", {n: r[n].requests_s for n in url}, True))
    figures.append(("peak memory (MiB)", memory, False))
    names = list(url)
    ours, theirs = names[0], names[1:]
    lines = [
        "# `serve` beside MLServer (make bench-serve)",
        "",
        f"The example MLP (64-64-10) exported as a model folder, served by `bountytree serve DIR` "
        f"with its defaults and by MLServer 1.7.1 (its own environment) through a custom runtime "
        f"with the same forward pass (bountytree.models' Predictor, one torch thread). aiohttp "
        f"keep-alive clients in a separate process send 1 or 64 rows per request; {ROUNDS} alternating "
        f"rounds of {DURATION:g} s each (medians). Memory: peak resident size of the server's "
        f"processes together. Goal: `serve` ahead of every MLServer setup on every figure.",
        "",
        _row(["figure", *names, "`serve` ahead"]),
        _row(["---", *["---:"] * len(names), "---"]),
    ]
    ahead = 0
    for label, values, higher_better in figures:
        best = [values[n] for n in theirs]
        wins = values[ours] > max(best) if higher_better else values[ours] < min(best)
        ahead += wins
        shown = [f"{values[n]:,.0f}" if higher_better else f"{values[n]:,.2f}" for n in names]
        lines.append(_row([label, *shown, "yes" if wins else "**no**"]))
    lines += [
        "",
        f"`serve` ahead on {ahead} of {len(figures)} figures. Load average (1 min) at the start "
        f"and end of the run: {load_before:.1f} and {os.getloadavg()[0]:.1f} (2 cores).",
        "",
    ]
    (ROOT / "bench" / "mlserver.md").write_text("\n".join(lines))
    print("\n".join(lines))
    print("wrote bench/mlserver.md")


if __name__ == "__main__":
    main()
