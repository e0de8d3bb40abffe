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
import struct
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
from bountytree.delivery.http import WRITE_GRACE_S
from bountytree.models.spec import load_spec
from bountytree.models.weights import initial_weights
from tests.delivery.prometheus import key, samples

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

    def peak_mib(self) -> float:
        """The most memory the server has ever held (VmHWM): what a burst cost, even if freed."""
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(re.search(r"VmHWM:\s+(\d+) kB", status)[1]) / 1024

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=5)

    def honest(self) -> None:
        """An honest inference, answered."""
        row = [0.5] * 64
        body = {"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": row}]}
        r = requests.post(f"{self.base}/v2/models/{self.name}/infer", json=body, timeout=10)
        assert r.status_code == 200, r.text

    def closed_for(self, limit: str) -> float:
        return samples(self.base).get(key("bountytree_connections_closed_total", limit=limit), 0.0)


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
    """Eight slow 1 MiB bodies, all sent but their last byte, hold all the memory the server
    gives to bodies: the next body is refused at once with a 503 that says so, and once the
    slow ones are cut off (their body deadline) an honest request is served. Declaring a
    length costs nothing: 64 connections that declare 4 MiB and send no byte (which locked
    inference for 30 s when declared lengths were reserved) leave honest requests served."""
    head = (
        f"POST /v2/models/{server.name}/infer HTTP/1.1\r\nHost: x\r\n"
        f"Content-Type: application/json\r\nContent-Length: {MAX_BODY}\r\n\r\n"
    ).encode()
    declared_only = []
    for _ in range(64):
        sock = server.connect()
        sock.sendall(head)
        declared_only.append(sock)
    time.sleep(0.5)
    server.honest()
    slow = []
    for _ in range(BODY_MEMORY // MAX_BODY):
        sock = server.connect()
        sock.sendall(head + b" " * (MAX_BODY - 1))
        slow.append(sock)
    time.sleep(1.0)
    row = {"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": [0] * 64}]}
    r = requests.post(f"{server.base}/v2/models/{server.name}/infer", json=row, timeout=10)
    assert r.status_code == 503 and "too many request bodies" in r.json()["error"], r.text
    for sock in slow + declared_only:
        assert _closed_by_server(sock, within=BODY_TIMEOUT_S + 2) is not None
    server.honest()


def _read_answers(sock: socket.socket, count: int) -> bytes:
    got = b""
    sock.settimeout(10)
    while got.count(b"HTTP/1.1 ") < count:
        chunk = sock.recv(65536)
        if not chunk:
            break
        got += chunk
    return got


def test_a_keep_alive_connection_is_closed_after_its_request_cap(server: Server):
    """One connection may send 1000 requests (ten at a time, pipelined); the 1000th answer says
    `connection: close` and the server closes it."""
    sock = server.connect()
    request = b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n"
    answers = b""
    for _ in range(100):
        sock.sendall(request * 10)
        answers += _read_answers(sock, 10)
    rest = _closed_by_server(sock, within=10)
    assert rest is not None
    answers += rest
    assert answers.count(b"HTTP/1.1 200") == 1000, answers.count(b"HTTP/1.1 200")
    assert b"connection: close" in answers.split(b"HTTP/1.1 200")[-1]


def test_a_deep_pipeline_is_cut_and_a_shallow_one_is_served(server: Server):
    """256 KiB of tiny pipelined requests (8,192 of them, parsed in one go on the event loop)
    end at the 17th queued with a 400 that says why. Sixteen requests of 1 KiB headers sent as
    one chunk that ends inside the last one's headers are all answered: only the headers of
    one request count against the header cap (the chunk as a whole did before, a false 431)."""
    sock = server.connect()
    sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n" * 6000)
    answer = _closed_by_server(sock, within=10)
    assert answer is not None and b"pipelined requests waiting" in answer, answer[-300:]
    assert answer.count(b"HTTP/1.1 200") <= 17
    sock = server.connect()
    one = b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"p" * 1100 + b"\r\n\r\n"
    stream = one * 16
    cut = len(one) * 15 + 40
    assert cut > MAX_HEADER_BYTES
    sock.sendall(stream[:cut])
    time.sleep(0.3)
    sock.sendall(stream[cut:])
    answers = _read_answers(sock, 16)
    assert answers.count(b"HTTP/1.1 200") == 16, answers[-300:]
    sock.close()


def test_a_connection_between_requests_always_has_a_deadline(server: Server):
    """A blank line after an answer, or the late body of a request already answered, left a
    connection with no timer at all (open after 50 s, and 1000 of them refused everyone).
    Both now close within the header deadline."""
    blank = server.connect()
    blank.sendall(b"GET /v2 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert b"HTTP/1.1 200" in _read_answers(blank, 1)
    blank.sendall(b"\r\n")
    late = server.connect()
    late.sendall(b"GET /v2 HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n")
    assert b"HTTP/1.1 200" in _read_answers(late, 1)
    late.sendall(b"a")
    for sock in (blank, late):
        assert _closed_by_server(sock, within=HEADER_TIMEOUT_S + 5) is not None


def test_strings_in_the_data_are_refused_before_numpy_sees_them(server: Server):
    """A 200 KB body of one 4,096-character string and 65,535 empty ones passed every count,
    and numpy made of it a 1 GiB array (10 s with the event loop held; with a 2 MiB string, a
    512 GiB allocation and a traceback). It is a 400 now, and the server does not grow."""
    before = server.peak_mib()
    data = ["A" * 4096] + [""] * 65535
    body = {"inputs": [{"name": "input", "shape": [1024, 64], "datatype": "FP32", "data": data}]}
    url = f"{server.base}/v2/models/{server.name}/infer"
    r = requests.post(url, json=body, timeout=30)
    assert r.status_code == 400 and "must be numbers" in r.json()["error"], r.text
    assert server.peak_mib() - before < 64
    server.honest()


def test_errors_do_not_grow_with_what_was_sent(server: Server):
    """A tensor name of 400,000 quotes came back escaped in the error, 0.8 MB a response (8 MB
    for a 4 MiB body) that a client need never read. Quoted values are cut to 80 characters;
    an id (echoed in the answer) is at most 256."""
    url = f"{server.base}/v2/models/{server.name}/infer"
    good = {"name": "input", "shape": [1, 64], "datatype": "FP32", "data": [0.0] * 64}
    r = requests.post(url, json={"inputs": [{**good, "name": '"' * 400_000}]}, timeout=30)
    assert r.status_code == 400 and len(r.content) < 400, len(r.content)
    r = requests.post(url, json={"inputs": [good], "id": "i" * 257}, timeout=30)
    assert r.status_code == 400 and '"id"' in r.json()["error"]


def test_every_refusal_is_a_json_line_and_nothing_redirects(server: Server):
    """Bytes that are not HTTP get the server's JSON error (uvicorn's was text, and a warning
    in the log for each); a trailing slash is a 404, not a redirect built from the client's
    Host header; a websocket upgrade is an ordinary request."""
    sock = server.connect()
    sock.sendall(b"\x00\x01 not http\r\n\r\n")
    answer = _closed_by_server(sock, within=5)
    assert answer is not None and answer.startswith(b"HTTP/1.1 400")
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]
    r = requests.get(
        f"{server.base}/v2/models/{server.name}/",
        headers={"Host": "evil.example"},
        allow_redirects=False,
        timeout=10,
    )
    assert r.status_code == 404 and "location" not in r.headers and r.json()["error"]
    r = requests.get(
        f"{server.base}/v2/health/live",
        headers={
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        },
        timeout=10,
    )
    assert r.status_code == 200 and r.json() == {"live": True}


def test_trailers_and_headers_in_one_read_count_against_the_header_cap(server: Server):
    """Trailers after a chunked body were kept without limit (3.7 GB from one connection in
    30 s), and 30,000 header lines that arrived in one read were never counted (30x their
    size in memory). Both are a 431 now, and the server does not grow."""
    before = server.peak_mib()
    sock = server.connect()
    sock.sendall(
        f"POST /v2/models/{server.name}/infer HTTP/1.1\r\nHost: x\r\n"
        "Transfer-Encoding: chunked\r\n\r\n1\r\n{\r\n0\r\n".encode()
    )
    deadline = time.monotonic() + 3
    with contextlib.suppress(OSError):
        while time.monotonic() < deadline:
            sock.sendall(b"a:\r\n" * 4096)
    answer = _closed_by_server(sock, within=5)
    assert answer is not None and b"431" in answer, answer
    sock = server.connect()
    sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n" + b"a:\r\n" * 30_000 + b"\r\n")
    answer = _closed_by_server(sock, within=5)
    assert answer is not None and answer.startswith(b"HTTP/1.1 431"), answer[:200]
    assert server.peak_mib() - before < 32
    server.honest()


def test_a_client_that_stops_reading_is_cut_off(server: Server):
    """A client that asks for answers and never reads them (a 4 KiB receive buffer, hundreds of
    pipelined `GET /metrics`) kept its connection and the server's send queue forever. The
    server now aborts it WRITE_GRACE_S after its writes stall."""
    before = server.closed_for("write_timeout")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    sock.settimeout(0.5)
    request = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
    # Eight at a time, under the pipelining cap, until the server has stopped reading (its
    # answers are stuck in full buffers): five sends in a row time out. A loaded machine takes
    # longer to fill the buffers; the test waits for the stall, not for a fixed time.
    deadline, stalled = time.monotonic() + 60, 0
    while time.monotonic() < deadline and stalled < 5:
        try:
            sock.sendall(request * 8)
            stalled = 0
            time.sleep(0.05)
        except TimeoutError:
            stalled += 1
            time.sleep(0.1)
        except OSError:
            break  # cut off already
    cut_off_by = time.monotonic() + WRITE_GRACE_S + 20  # the grace, and a loaded loop's delay
    while server.closed_for("write_timeout") <= before and time.monotonic() < cut_off_by:
        time.sleep(0.5)
    assert server.closed_for("write_timeout") > before
    sock.close()
    server.honest()


def test_pipelined_requests_cut_by_a_reset_log_nothing(server: Server):
    """An inference and a second request in one write, then a reset: the app's answer to the
    first was written into a closed transport, a traceback in the log each time. The server's
    log is checked empty of tracebacks when the module's server stops."""
    body = json.dumps(
        {"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": [0] * 64}]}
    ).encode()
    for _ in range(20):
        sock = server.connect()
        sock.sendall(
            f"POST /v2/models/{server.name}/infer HTTP/1.1\r\nHost: x\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
            + b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    time.sleep(0.5)
    server.honest()


def test_odd_fields_and_long_paths_are_short_400s_and_404s(server: Server):
    """A list as the datatype was a 500 with a traceback; repeated output names multiplied the
    answer (28.8 MB for a 135 KB request); a 15,000-character model name came back whole in
    the 404."""
    url = f"{server.base}/v2/models/{server.name}/infer"
    good = {"name": "input", "shape": [1, 64], "datatype": "FP32", "data": [0.0] * 64}
    r = requests.post(url, json={"inputs": [{**good, "datatype": []}]}, timeout=10)
    assert r.status_code == 400 and "datatype" in r.json()["error"], r.text
    many = [{"name": "logits"}] * 240
    r = requests.post(url, json={"inputs": [good], "outputs": many}, timeout=10)
    assert r.status_code == 400 and "at most once" in r.json()["error"], r.text
    r = requests.get(f"{server.base}/v2/models/{'q' * 15_000}", timeout=10)
    assert r.status_code == 404 and len(r.content) < 400, len(r.content)


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
