"""`make bench-http-servers`: which HTTP server `bountytree serve` runs on, measured against
hostile clients and for speed (docs/measurements.md, "Choosing the HTTP server").

Each candidate serves the same small Starlette app (a health route and a body-reading route
whose body read has a 5 s deadline, as the product's has) in its own process; this process is
the clients. Per candidate, in order: the median time of an honest request on a fresh
connection (idle); one connection sending header lines for 4 s (bytes the server took, its
memory growth, whether it answered); 200 connections sending a request line a byte at a time,
40 sending all of a 4 MiB body but its last byte, honest requests meanwhile (median), and how
many of the slow ones are still open 12 s and 40 s later; then 500 connections that send
nothing, still open after 12 s; connects that failed. Timeouts are set to 5 s wherever a
server has one. Candidates: uvicorn with httptools and with h11, hypercorn, granian (in-process
mode), and uvicorn with httptools under bountytree's limits (`bountytree.delivery.http`).
hypercorn and granian are not the product's dependencies: the make target installs them into
`.bench-http/`, which only this benchmark puts on its path.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psutil

from bountytree.config import ROOT

CANDIDATES = (
    "uvicorn-httptools",
    "uvicorn-h11",
    "hypercorn",
    "granian",
    "uvicorn-httptools + bountytree limits",
)
TIMEOUT_S = 5


def app():  # type: ignore[no-untyped-def]
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    async def live(request):  # type: ignore[no-untyped-def]
        return Response(b'{"live":true}', media_type="application/json")

    async def infer(request):  # type: ignore[no-untyped-def]
        size = 0
        try:
            async with asyncio.timeout(TIMEOUT_S):
                async for chunk in request.stream():
                    size += len(chunk)
        except Exception:
            return Response(b'{"error":"slow"}', 408, headers={"connection": "close"})
        return Response(b'{"n":%d}' % size, media_type="application/json")

    return Starlette(routes=[Route("/live", live), Route("/infer", infer, methods=["POST"])])


def serve(kind: str, port: int) -> None:
    """Runs in the server process."""
    if kind.startswith("uvicorn"):
        import uvicorn

        http: object = "httptools" if "httptools" in kind else "h11"
        if "limits" in kind:
            from bountytree.delivery.http import HttpLimits, guarded_protocol

            limits = HttpLimits(header_timeout=TIMEOUT_S, body_timeout=TIMEOUT_S)
            http = guarded_protocol(limits, lambda limit: None)
        uvicorn.run(app(), host="127.0.0.1", port=port, http=http, log_level="warning")  # type: ignore[arg-type]
    elif kind == "hypercorn":
        from hypercorn.asyncio import serve as hypercorn_serve
        from hypercorn.config import Config

        config = Config()
        config.bind = [f"127.0.0.1:{port}"]
        config.read_timeout = TIMEOUT_S
        asyncio.run(hypercorn_serve(app(), config))  # type: ignore[arg-type]
    elif kind == "granian":
        from granian.constants import Interfaces
        from granian.http import HTTP1Settings
        from granian.server.embed import Server

        server = Server(
            app(),
            address="127.0.0.1",
            port=port,
            interface=Interfaces.ASGI,
            http1_settings=HTTP1Settings(header_read_timeout=TIMEOUT_S * 1000),
            log_enabled=False,
        )
        asyncio.run(server.serve())


class _Gone:
    """A connection that could not be made."""

    def sendall(self, data: bytes) -> None:
        pass

    send = sendall

    def close(self) -> None:
        pass


def _connect(port: int, failed: list[int]) -> socket.socket | _Gone:
    """A connection, or _Gone when the server did not accept it within a second (after ten
    such in a row, the rest are counted failed without trying: a server that stopped
    accepting would otherwise cost a second each)."""
    if failed[1] >= 10:
        failed[0] += 1
        return _Gone()
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=1)
        failed[1] = 0
        return sock
    except OSError:
        failed[0] += 1
        failed[1] += 1
        return _Gone()


def _state(sock: socket.socket | _Gone) -> str:
    """open, closed, or answered (the server sent something and may close)."""
    if isinstance(sock, _Gone):
        return "closed"
    sock.setblocking(False)
    try:
        return "answered" if sock.recv(65536) else "closed"
    except BlockingIOError:
        return "open"
    except OSError:
        return "closed"


def _honest_ms(port: int, n: int) -> float:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(b"GET /live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                while s.recv(4096):
                    pass
            times.append(time.perf_counter() - started)
        except OSError:
            times.append(5.0)
    return statistics.median(times) * 1000


def _tree_rss_mib(pid: int) -> float:
    proc = psutil.Process(pid)
    procs = [proc, *proc.children(recursive=True)]
    return sum(p.memory_info().rss for p in procs) / (1 << 20)


def _drip(socks: list, until: float) -> None:
    while time.monotonic() < until:
        for s in socks:
            with contextlib.suppress(OSError):
                s.send(b"a")
        time.sleep(2)


def measure(kind: str, env: dict[str, str]) -> dict[str, object]:
    from bountytree.processes import free_port

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.http_servers", "--serve", kind, str(port)],
        env=env,
        cwd=ROOT,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(200):
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            time.sleep(0.1)
        failed = [0, 0]  # connects failed, of them in a row
        row: dict[str, object] = {"server": kind, "idle p50 ms": round(_honest_ms(port, 50), 2)}
        base = _tree_rss_mib(proc.pid)
        s = _connect(port, failed)
        s.sendall(b"GET /live HTTP/1.1\r\nHost: x\r\n")
        line, sent, until = b"X-A: " + b"a" * 1000 + b"\r\n", 0, time.monotonic() + 4
        with contextlib.suppress(OSError):
            while time.monotonic() < until:
                s.sendall(line * 64)
                sent += len(line) * 64
        row["flood: MiB taken"] = round(sent / (1 << 20), 1)
        row["flood: memory + MiB"] = round(_tree_rss_mib(proc.pid) - base)
        row["flood: connection"] = _state(s)
        s.close()
        slow = [_connect(port, failed) for _ in range(200)]
        for s in slow:
            s.sendall(b"GET /live")
        started, bodies = time.monotonic(), []
        for _ in range(40):
            s = _connect(port, failed)
            s.sendall(b"POST /infer HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (4 << 20))
            with contextlib.suppress(OSError):
                s.sendall(b"0" * ((4 << 20) - 1))
            bodies.append(s)
        row["under attack p50 ms"] = round(_honest_ms(port, 20), 2)
        _drip(slow, started + 12)
        row["slow lines open 12 s"] = sum(_state(s) == "open" for s in slow)
        row["slow bodies open 12 s"] = sum(_state(s) == "open" for s in bodies)
        row["memory + MiB at 12 s"] = round(_tree_rss_mib(proc.pid) - base)
        _drip(slow, started + 40)
        row["slow lines open 40 s"] = sum(_state(s) == "open" for s in slow)
        row["slow bodies open 40 s"] = sum(_state(s) == "open" for s in bodies)
        failed[1] = 0
        idle = [_connect(port, failed) for _ in range(500)]
        time.sleep(12)
        row["idle connections open 12 s"] = sum(_state(s) == "open" for s in idle)
        row["after p50 ms"] = round(_honest_ms(port, 20), 2)
        row["connects failed"] = failed[0]
        for s in slow + bodies + idle:
            s.close()
        return row
    finally:
        proc.kill()  # granian's in-process mode did not stop on SIGTERM
        proc.wait()


def main() -> None:
    if sys.argv[1:2] == ["--serve"]:
        serve(sys.argv[2], int(sys.argv[3]))
        return
    extra = ROOT / ".bench-http"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(extra), str(ROOT)])}
    rows = [measure(kind, env) for kind in CANDIDATES]
    for row in rows:
        print(json.dumps(row), flush=True)
    heads = list(rows[0])
    lines = [
        "# HTTP servers under hostile clients",
        "",
        __doc__.split("\n\n")[1].replace("\n", " "),
        "",
        "| " + " | ".join(heads) + " |",
        "| " + " | ".join("---" for _ in heads) + " |",
        *("| " + " | ".join(str(r[h]) for h in heads) + " |" for r in rows),
        "",
        f"Load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores.",
    ]
    Path(ROOT / "bench" / "http_servers.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
