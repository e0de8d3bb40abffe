"""`bountytree serve` against hostile clients, each as an attacker would run it, on the real
command serving a model folder (the example MLP's initial weights; no chain needed): a header
flood, slow request lines and bodies, idle connections, more connections than allowed, bodies
that fill the server's memory for bodies, a keep-alive connection that never ends. Each test
measures what the attacker holds (bytes in the server, connections open) and checks that
honest requests are answered meanwhile. Bounds: docs/models.md, "Limits"."""

from __future__ import annotations

import contextlib
import json
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import requests

from bountytree.config import ROOT
from bountytree.models.spec import load_spec
from bountytree.models.weights import initial_weights

HEADER_TIMEOUT_S = 2.0
BODY_TIMEOUT_S = 3.0
MAX_CONNECTIONS = 300
MAX_BODY = 1 << 20
BODY_MEMORY = 8 << 20  # eight 1 MiB bodies
MAX_HEADER_BYTES = 16 << 10  # HttpLimits' default


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    name: str

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rss_mib(self) -> float:
        return psutil.Process(self.proc.pid).memory_info().rss / (1 << 20)

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=5)

    def honest(self) -> None:
        """An honest inference, answered."""
        row = [0.5] * 64
        body = {"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": row}]}
        r = requests.post(f"{self.base}/v2/models/{self.name}/infer", json=body, timeout=10)
        assert r.status_code == 200, r.text

    def closed_for(self, limit: str) -> float:
        text = requests.get(f"{self.base}/metrics", timeout=10).text
        match = re.search(rf'bountytree_connections_closed_total{{limit="{limit}"}} (\S+)', text)
        return float(match[1]) if match else 0.0


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("model")
    spec_bytes = (ROOT / "examples" / "mlp.json").read_bytes()
    (folder / "config.json").write_bytes(spec_bytes)
    (folder / "model.safetensors").write_bytes(initial_weights(load_spec(spec_bytes)))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bountytree",
            "serve",
            str(folder),
            "--port",
            "0",
            "--header-timeout-s",
            str(HEADER_TIMEOUT_S),
            "--body-timeout-s",
            str(BODY_TIMEOUT_S),
            "--max-connections",
            str(MAX_CONNECTIONS),
            "--max-body-mb",
            str(MAX_BODY / (1 << 20)),
            "--max-body-memory-mb",
            str(BODY_MEMORY / (1 << 20)),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    line = proc.stdout.readline().decode() if proc.stdout else ""
    match = re.search(r"at http://127\.0\.0\.1:(\d+)/v2/models/(\S+)", line)
    assert match, (line, proc.stderr.read().decode() if proc.poll() is not None else "")
    yield Server(proc, int(match[1]), match[2])
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert "Traceback" not in (proc.stderr.read().decode() if proc.stderr else "")


def _closed_by_server(sock: socket.socket, within: float) -> bytes | None:
    """What the server sent before closing the connection, or None if it is still open."""
    sock.settimeout(within)
    got = b""
    try:
        while chunk := sock.recv(65536):
            got += chunk
    except TimeoutError:
        return None
    except ConnectionResetError:
        pass
    return got


def test_a_header_flood_is_cut_off_at_the_header_cap(server: Server):
    """One connection sends header lines as fast as it can: before the cap it was kept whole
    (301 MiB in 4 s grew the server by 306 MiB). Now the server answers 431 and closes after
    at most the cap plus one read, and its memory does not grow with what was sent."""
    before = server.rss_mib()
    sock = server.connect()
    sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n")
    line = b"X-Pad: " + b"a" * 1000 + b"\r\n"
    sent = 0
    deadline = time.monotonic() + 4
    try:
        while time.monotonic() < deadline:
            sock.sendall(line * 16)
            sent += len(line) * 16
    except OSError:
        pass  # the server closed the connection under us: the point
    answer = _closed_by_server(sock, within=5)
    assert answer is not None and answer.startswith(b"HTTP/1.1 431"), answer
    assert sent < 64 << 20, sent  # it stopped reading long before 4 s of sending ended
    assert server.rss_mib() - before < 16
    assert server.closed_for("header_bytes") >= 1
    server.honest()


def test_slow_and_idle_connections_are_closed_at_their_deadlines(server: Server):
    """100 connections drip a request line a byte a second, 100 connect and send nothing, 4
    send all of a 1 MiB body but its last byte: before, all were still open after 40 s and
    the bodies held the server's memory. Now each is closed at its deadline (header or body),
    and honest requests are answered throughout."""
    dripping = [server.connect() for _ in range(100)]
    idle = [server.connect() for _ in range(100)]
    for sock in dripping:
        sock.sendall(b"GET /v2/health/li")
    bodies = []
    for _ in range(4):
        sock = server.connect()
        sock.sendall(
            f"POST /v2/models/{server.name}/infer HTTP/1.1\r\nHost: x\r\n"
            f"Content-Type: application/json\r\nContent-Length: {MAX_BODY}\r\n\r\n".encode()
        )
        sock.sendall(b" " * (MAX_BODY - 1))
        bodies.append(sock)
    started = time.monotonic()
    while time.monotonic() - started < HEADER_TIMEOUT_S + 1:
        for sock in dripping:
            with contextlib.suppress(OSError):
                sock.send(b"v")
        server.honest()
        time.sleep(0.5)
    for sock in dripping + idle:
        answer = _closed_by_server(sock, within=HEADER_TIMEOUT_S)
        assert answer is not None and answer.startswith(b"HTTP/1.1 408"), answer
    for sock in bodies:
        assert _closed_by_server(sock, within=BODY_TIMEOUT_S + 2) is not None
    assert server.closed_for("header_timeout") >= 200
    assert server.closed_for("body_timeout") >= 4
    server.honest()


def test_more_connections_than_allowed_get_a_503_at_once(server: Server):
    """Connections beyond the limit are answered 503 and closed without waiting for a request;
    once the holders go, honest connections are served again."""
    held = []
    for _ in range(MAX_CONNECTIONS):
        held.append(server.connect())
    extra = server.connect()
    answer = _closed_by_server(extra, within=2)
    assert answer is not None and answer.startswith(b"HTTP/1.1 503"), answer
    assert b"too many connections" in answer
    for sock in held:
        sock.close()
    time.sleep(0.5)
    server.honest()


def test_bodies_beyond_the_servers_body_memory_get_a_503_not_a_wait(server: Server):
    """Eight slow 1 MiB bodies take all the memory the server gives to bodies: the ninth is
    refused at once with a 503 that says so, and once the slow ones are cut off (their body
    deadline) an honest request is served."""
    slow = []
    head = (
        f"POST /v2/models/{server.name}/infer HTTP/1.1\r\nHost: x\r\n"
        f"Content-Type: application/json\r\nContent-Length: {MAX_BODY}\r\n\r\n"
    ).encode()
    for _ in range(BODY_MEMORY // MAX_BODY):
        sock = server.connect()
        sock.sendall(head + b" ")
        slow.append(sock)
    time.sleep(0.5)
    row = {"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": [0] * 64}]}
    r = requests.post(f"{server.base}/v2/models/{server.name}/infer", json=row, timeout=10)
    assert r.status_code == 503 and "too many request bodies" in r.json()["error"], r.text
    for sock in slow:
        assert _closed_by_server(sock, within=BODY_TIMEOUT_S + 2) is not None
    server.honest()


def test_a_keep_alive_connection_is_closed_after_its_request_cap(server: Server):
    """One connection may send 1000 requests; the 1000th answer says `connection: close`."""
    sock = server.connect()
    request = b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n"
    sock.sendall(request * 1000)
    answer = _closed_by_server(sock, within=30)
    assert answer is not None
    assert answer.count(b"HTTP/1.1 200") == 1000, answer.count(b"HTTP/1.1 200")
    assert answer.rstrip().endswith(json.dumps({"live": True}, separators=(",", ":")).encode())
    assert b"connection: close" in answer.split(b"HTTP/1.1 200")[-1]


def test_limits_outside_their_ranges_are_one_line(tmp_path: Path):
    for flag, value in (
        ("--header-timeout-s", "0"),
        ("--body-timeout-s", "nan"),
        ("--max-connections", "0"),
        ("--max-body-memory-mb", "1"),
    ):
        result = subprocess.run(
            [sys.executable, "-m", "bountytree", "serve", str(tmp_path), flag, value],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 2 and flag in result.stderr, (flag, result.stderr)
        assert result.stderr.count("\n") == 1, result.stderr
