"""make bench-serve: `bountytree serve` under load, beside a plain PyTorch forward call.

For the example MLP (64-64-10) and CNN (conv 3x3x8, pool, linear), and as context a wide MLP
(64-1024-1024-10) whose forward pass outweighs the HTTP work: p50 and p99 latency and
requests/s for requests of 1 and 64 rows, from 1 and 8 concurrent keep-alive clients, against a
server with batching (max batch 64, up to 1 ms of waiting) and one with batching off (max batch
1), and a plain `model(x)` on the same rows in this run. Three processes: this one (the plain
calls, then only waiting), the servers (the code of `bountytree serve`: bountytree.serving on
uvicorn, one torch thread; the model is the spec's seeded initialisation, served without a
chain, which the server reads only at start) and one aiohttp client process per measurement.
Each measurement is repeated ROUNDS times, alternating the servers, and the median is kept.

Goals on two cores: at 1 row and 1 client the server adds at most 1 ms at p50 over the plain
call; with 8 clients, batching gives at least 3x the requests/s of batching off; the served
forward pass (convolutions unfolded, as counted) costs at most MAX_FORWARD_COST × PyTorch's own.
Writes bench/serve.md (bench/results.py gathers it into bench/results.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bountytree.config import ROOT
from bountytree.models.spec import load_spec
from bountytree.models.weights import initial_weights


def _example(name: str) -> bytes:
    return (ROOT / "examples" / name).read_bytes()


# A heavier model beside the examples, as context: one whose forward pass, not the HTTP and
# JSON work around it, dominates a request, which is where batching pays.
WIDE = json.dumps(
    {
        "name": "wide MLP 64-1024-1024-10",
        "input_shape": [64],
        "num_classes": 10,
        "layers": [
            {"type": "Linear", "in_features": 64, "out_features": 1024},
            {"type": "ReLU"},
            {"type": "Linear", "in_features": 1024, "out_features": 1024},
            {"type": "ReLU"},
            {"type": "Linear", "in_features": 1024, "out_features": 10},
        ],
        "training": {"lr": 0.01, "seed": 3},
    }
).encode()
MODELS = {
    "MLP 64-64-10": _example("mlp.json"),
    "CNN conv3x3x8": _example("cnn.json"),
    "wide MLP 64-1024-1024-10 (context)": WIDE,
}
SERVERS = {"batching": 64, "no batching": 1}  # --max-batch
CLIENTS = (1, 8)
ROWS = (1, 64)
DURATION = 2.0  # seconds measured per run, after WARMUP
WARMUP = 0.4
ROUNDS = 3
PLAIN_CALLS = 5000
# The served model computes each convolution unfolded into one matrix product, the form whose
# rounding counting bounds (weights.UnfoldedConv2d), not PyTorch's per-machine algorithm: what
# that may cost a forward pass against PyTorch's own, at 64 rows.
MAX_FORWARD_COST = 2.0


def _rows() -> np.ndarray:
    """scikit-learn's digits (1,797 rows of 64 features), the examples' data."""
    from sklearn.datasets import load_digits

    return (load_digits().data / 16.0).astype(np.float32)


def _bodies(rows_per_request: int, count: int = 32) -> list[bytes]:
    X = _rows()
    out = []
    for i in range(count):
        start = (i * rows_per_request) % (len(X) - rows_per_request)
        part = X[start : start + rows_per_request]
        out.append(
            json.dumps(
                {
                    "inputs": [
                        {
                            "name": "input",
                            "shape": [len(part), 64],
                            "datatype": "FP32",
                            "data": part.reshape(-1).tolist(),
                        }
                    ]
                }
            ).encode()
        )
    return out


# ── the server process ───────────────────────────────────────────────────────


def serve(model: str, max_batch: int) -> None:
    """What `bountytree serve` runs once it has read the model (bountytree/commands/serve.py)."""
    from bountytree.delivery.metrics import ModelInfo
    from bountytree.delivery.serving import ServeConfig, build_app, listen, run
    from bountytree.models.inference import Predictor

    torch.set_num_threads(1)
    spec = load_spec(MODELS[model])
    predictor = Predictor.from_weights(initial_weights(spec), spec)
    config = ServeConfig(max_batch=max_batch)
    predictor.forward(predictor.rows(np.zeros((64, spec.num_features), np.float32)))
    app = build_app(predictor, ModelInfo("bench", "1", 0, 0), config)
    sock = listen("127.0.0.1", 0)
    port = sock.getsockname()[1]
    run(app, sock, lambda: print(f"http://127.0.0.1:{port}", flush=True))


# ── the client process ───────────────────────────────────────────────────────


async def _load(url: str, bodies: list[bytes], clients: int, duration: float) -> list[float]:
    import aiohttp

    latencies: list[float] = []
    headers = {"content-type": "application/json"}
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as http:
        begin = time.perf_counter() + WARMUP
        end = begin + duration

        async def client(k: int) -> None:
            while True:
                started = time.perf_counter()
                if started >= end:
                    return
                async with http.post(url, data=bodies[k % len(bodies)], headers=headers) as r:
                    await r.read()
                    if r.status != 200:
                        raise SystemExit(f"status {r.status}: {await r.text()}")
                if started >= begin:
                    latencies.append(time.perf_counter() - started)
                k += clients

        await asyncio.gather(*(client(i) for i in range(clients)))
    return latencies


def client(plan: list[tuple[str, int, int]], out_file: str) -> None:
    """Runs each (inference URL, rows per request, clients) of the plan in turn; writes the
    latencies of each, as one JSON list of lists, to `out_file`."""
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    bodies = {rows: _bodies(rows) for rows in {rows for _, rows, _ in plan}}
    # A first run, thrown away: the client process's own start (imports, first connections)
    # would otherwise weigh on whichever measurement comes first.
    for url in dict.fromkeys(url for url, _, _ in plan):
        runner(_load(url, bodies[plan[0][1]], 8, 0.5))
    out = []
    for url, rows, clients in plan:
        out.append(runner(_load(url, bodies[rows], clients, DURATION)))
    Path(out_file).write_text(json.dumps(out))


# ── the orchestrator ─────────────────────────────────────────────────────────


@dataclass(frozen=True)
class Result:
    p50_ms: float
    p99_ms: float
    requests_s: float


def summary(latencies: list[float], seconds: float) -> Result:
    ms = np.array(latencies) * 1000
    return Result(float(np.percentile(ms, 50)), float(np.percentile(ms, 99)), len(ms) / seconds)


def median(results: list[Result]) -> Result:
    return Result(
        statistics.median(r.p50_ms for r in results),
        statistics.median(r.p99_ms for r in results),
        statistics.median(r.requests_s for r in results),
    )


def plain(model_name: str, rows: int, served: bool = False) -> Result:
    """`model(x)` on the same rows, one torch thread, in this process: PyTorch's own model, or
    with `served` the model `serve` forwards through (`Predictor`'s: BatchNorm folded, tie
    offsets, each convolution unfolded into one matrix product as counting computes it)."""
    torch.set_num_threads(1)
    spec = load_spec(MODELS[model_name])
    from bountytree.models.inference import Predictor
    from bountytree.models.weights import load_model

    raw = initial_weights(spec)
    model = Predictor.from_weights(raw, spec).model if served else load_model(raw, spec)
    X = torch.from_numpy(_rows())
    starts = [(i * rows) % (len(X) - rows) for i in range(32)]
    batches = [X[s : s + rows].reshape(rows, *spec.input_shape) for s in starts]
    times = []
    with torch.inference_mode():
        for i in range(200):
            model(batches[i % 32])
        for i in range(PLAIN_CALLS):
            started = time.perf_counter()
            model(batches[i % 32]).argmax(1)
            times.append(time.perf_counter() - started)
    return summary(times, sum(times))


def _start_server(model: str, max_batch: int) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.serve", "server", model, str(max_batch)],
        stdout=subprocess.PIPE,
        cwd=ROOT,
    )
    url = proc.stdout.readline().decode().strip()
    if not url.startswith("http://"):
        raise SystemExit(f"server for {model} did not start")
    return proc, url


def measure(plan: list[tuple[str, int, int]]) -> list[Result]:
    """One client process runs the plan of (inference URL, rows per request, clients) and
    gives each step's figures (its interpreter starts once for all of it)."""
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "latencies.json"
        subprocess.run(
            [sys.executable, "-m", "bench.serve", "client", json.dumps(plan), str(out)],
            check=True,
            cwd=ROOT,
            timeout=600,
        )
        return [summary(latencies, DURATION) for latencies in json.loads(out.read_text())]


def main() -> None:
    load_before = os.getloadavg()[0]
    lines = [
        "# Serving benchmark (make bench-serve)",
        "",
        f"`bountytree serve`'s code (bountytree.serving on uvicorn with uvloop and httptools, one "
        f"torch thread) under aiohttp keep-alive clients in a separate process, on "
        f"{ROUNDS} alternating rounds of {DURATION:g} s each (medians), beside a plain PyTorch "
        "`model(x)` on the same rows in this run. Latency is measured by the client, from "
        "sending a request to reading its whole answer (JSON logits and classes). Server "
        "`batching`: max batch 64 rows, waiting up to 1 ms only for requests already arriving; "
        "`no batching`: max batch 1 (one request per forward pass). Goals: at 1 row and 1 client "
        "the server adds at most 1 ms at p50 over the plain call; with 8 clients batching gives "
        "at least 3× the requests/s of no batching, for a model whose forward pass costs at least "
        "what the server adds to a request (for a cheaper one batching saves too little to "
        "matter, and that goal is dropped); the served forward pass (the model `serve` runs: "
        "BatchNorm folded, tie offsets, each convolution unfolded into one matrix product, the "
        "form whose rounding the count bounds) costs at most "
        f"{MAX_FORWARD_COST:g}× PyTorch's own `model(x)` at 64 rows. The wide MLP is not an "
        "example model: it "
        "shows what batching gives when the forward pass, not the HTTP and JSON work around "
        "it, takes most of a request.",
        "",
        "| model | rows/request | clients | setup | p50 | p99 | requests/s | rows/s |",
        "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    goals = []
    for model in MODELS:
        base = {rows: plain(model, rows) for rows in ROWS}
        forward = {rows: plain(model, rows, served=True) for rows in ROWS}
        servers = {name: _start_server(model, batch) for name, batch in SERVERS.items()}
        try:
            keys = [
                (name, rows, clients) for rows in ROWS for clients in CLIENTS for name in SERVERS
            ]
            runs: dict[tuple[str, int, int], list[Result]] = {}
            for round_ in range(ROUNDS):
                order = keys if round_ % 2 == 0 else keys[::-1]  # no server always first
                plan = [
                    (f"{servers[name][1]}/v2/models/bench/infer", rows, clients)
                    for name, rows, clients in order
                ]
                for key, result in zip(order, measure(plan), strict=True):
                    runs.setdefault(key, []).append(result)
        finally:
            for proc, _ in servers.values():
                proc.terminate()
                proc.wait(timeout=30)
        got = {key: median(results) for key, results in runs.items()}
        for rows in ROWS:
            b = base[rows]
            lines.append(
                f"| {model} | {rows} | 1 | plain `model(x)` | {b.p50_ms:.3f} ms | "
                f"{b.p99_ms:.3f} ms | {b.requests_s:,.0f} | {b.requests_s * rows:,.0f} |"
            )
            f = forward[rows]
            lines.append(
                f"| {model} | {rows} | 1 | served forward pass | {f.p50_ms:.3f} ms | "
                f"{f.p99_ms:.3f} ms | {f.requests_s:,.0f} | {f.requests_s * rows:,.0f} |"
            )
            for clients in CLIENTS:
                for name in SERVERS:
                    r = got[(name, rows, clients)]
                    lines.append(
                        f"| {model} | {rows} | {clients} | server, {name} | {r.p50_ms:.3f} ms | "
                        f"{r.p99_ms:.3f} ms | {r.requests_s:,.0f} | {r.requests_s * rows:,.0f} |"
                    )
            print("\n".join(lines[-6:]), flush=True)
        added = got[("batching", 1, 1)].p50_ms - base[1].p50_ms
        ratios = {
            rows: got[("batching", rows, 8)].requests_s / got[("no batching", rows, 8)].requests_s
            for rows in ROWS
        }
        # Batching saves forward passes only: where one costs less than the server's work on a
        # request, no batcher can triple the requests/s, and the goal is dropped (context).
        batching_goal = (
            ("yes" if ratios[1] >= 3 else "no")
            if base[1].p50_ms >= added
            else f"dropped: a forward pass ({base[1].p50_ms:.3f} ms) costs less than a request"
        )
        cost = forward[64].p50_ms / base[64].p50_ms
        goals.append(
            f"| {model} | {added:.3f} ms | {'yes' if added <= 1 else 'no'} | "
            f"{ratios[1]:.2f} | {ratios[64]:.2f} | {batching_goal} | {cost:.2f} | "
            f"{'yes' if cost <= MAX_FORWARD_COST else 'no'} |"
        )
    lines += [
        "",
        f"Load average (1 min) of the machine at the start and end of the run: {load_before:.1f} "
        f"and {os.getloadavg()[0]:.1f} (2 cores; anything else running shifts these figures).",
        "",
        "| model | server p50 − plain p50, 1 row, 1 client (goal ≤ 1 ms) | met | "
        "8 clients, batching ÷ no batching requests/s, 1 row (goal ≥ 3) | same, 64 rows | met | "
        f"served forward pass ÷ PyTorch's own, 64 rows (goal ≤ {MAX_FORWARD_COST:g}) | met |",
        "| --- | ---: | --- | ---: | ---: | --- | ---: | --- |",
        *goals,
        "",
    ]
    (ROOT / "bench" / "serve.md").write_text("\n".join(lines))
    print("\n".join(goals))
    print("wrote bench/serve.md")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.serve")
    sub = parser.add_subparsers(dest="role")
    s = sub.add_parser("server")
    s.add_argument("model", choices=MODELS)
    s.add_argument("max_batch", type=int)
    c = sub.add_parser("client")
    c.add_argument("plan", help="JSON list of [inference URL, rows per request, clients]")
    c.add_argument("out", help="where the latencies go (JSON)")
    args = parser.parse_args()
    if args.role == "server":
        serve(args.model, args.max_batch)
    elif args.role == "client":
        client(json.loads(args.plan), args.out)
    else:
        main()
