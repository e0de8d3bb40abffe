"""The HTTP server under `bountytree serve`: uvicorn's httptools protocol, with the limits a
server that strangers can reach needs and uvicorn does not have.

Measured against hostile clients (docs/measurements.md, "Choosing the HTTP server"): uvicorn
with httptools answered fastest, honest requests under attack included, but kept every header
line a client sent (1.6 GiB in 4 s on one connection), never timed out a request that was still
arriving, and kept idle connections open forever. Its h11 protocol caps headers but has no
deadline; hypercorn has both but took 4x the time per request; granian caps and times out
headers in Rust, but its in-process mode is experimental, it ignored SIGTERM there, and 300
idle connections stalled an honest one. So the server stays uvicorn + httptools, and this
protocol adds, per connection:

- a header size cap (request line and headers together): 431, then close;
- a header deadline, from a connection's first byte (or its opening) to the last header of a
  request: 408, then close, so a connection that sends nothing, or a byte at a time, is gone
  after `header_timeout` seconds;
- a body deadline, from the last header to the body's last byte: the connection is closed;
- a cap on requests per keep-alive connection, and on connections open at once (503, then
  close).

The app holds the rest: the body size and the memory all bodies may take together (serving.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from bountytree.errors import UserError

REASONS = {
    408: b"Request Timeout",
    431: b"Request Header Fields Too Large",
    503: b"Service Unavailable",
}


@dataclass(frozen=True)
class HttpLimits:
    """Per-connection limits (documented in docs/models.md, "Limits")."""

    max_header_bytes: int = 16 << 10  # request line + headers of one request
    header_timeout: float = 10.0  # seconds from a request's first byte to its last header
    body_timeout: float = 30.0  # seconds from the last header to the body's last byte
    keep_alive_timeout: int = 5  # seconds an idle keep-alive connection stays open
    keep_alive_requests: int = 1000  # requests one connection may send
    max_connections: int = 1000  # connections open at once

    def check(self) -> None:
        if not 1024 <= self.max_header_bytes <= 1 << 20:
            raise UserError(f"max header bytes: {self.max_header_bytes} is outside 1024..1048576")
        for flag, value in (
            ("--header-timeout-s", self.header_timeout),
            ("--body-timeout-s", self.body_timeout),
            ("keep-alive timeout", self.keep_alive_timeout),
        ):
            if not 0 < value <= 3600:  # NaN fails too
                raise UserError(f"{flag}: {value:g} is outside 0..3600")
        if not 1 <= self.max_connections <= 100_000:
            raise UserError(f"--max-connections: {self.max_connections} is outside 1..100000")


def refusal(status: int, message: str) -> bytes:
    """A whole HTTP response that closes the connection; its body is the server's usual
    one-line JSON error."""
    body = b'{"error":"' + message.encode() + b'"}'
    return b"".join(
        (
            b"HTTP/1.1 %d %s\r\n" % (status, REASONS[status]),
            b"content-type: application/json\r\n",
            b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body),
            body,
        )
    )


def guarded_protocol(limits: HttpLimits, on_limit: Callable[[str], None]) -> type[Any]:
    """uvicorn's httptools protocol class with `limits`; `on_limit(name)` is told of each
    connection closed for one (the metrics count them)."""

    class Guarded(HttpToolsProtocol):  # type: ignore[misc]
        _timer: asyncio.TimerHandle | None = None
        _in_headers = False
        _header_bytes = 0
        _requests = 0

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > limits.max_connections:
                self._refuse(503, "too many connections; retry later", "connections")
                return
            self._arm(limits.header_timeout, self._header_late)

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self._in_headers and not self.transport.is_closing():
                # The whole chunk counts when the headers are still not over after it (a chunk
                # that ends them may carry body bytes: those are the body's to count).
                self._header_bytes += len(data)
                if self._header_bytes > limits.max_header_bytes:
                    self._refuse(
                        431,
                        f"request line and headers over {limits.max_header_bytes} bytes",
                        "header_bytes",
                    )

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._in_headers, self._header_bytes = True, 0
            if self._timer is None:  # a new request on a kept-alive connection
                self._arm(limits.header_timeout, self._header_late)

        def on_headers_complete(self) -> None:
            self._in_headers = False
            self._arm(limits.body_timeout, self._body_late)
            super().on_headers_complete()
            self._requests += 1
            if self._requests >= limits.keep_alive_requests and self.cycle is not None:
                self.cycle.keep_alive = False

        def on_message_complete(self) -> None:
            self._disarm()
            super().on_message_complete()

        def _arm(self, seconds: float, then: Callable[[], None]) -> None:
            self._disarm()
            self._timer = self.loop.call_later(seconds, then)

        def _disarm(self) -> None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

        def _header_late(self) -> None:
            self._timer = None
            self._refuse(
                408,
                f"request headers not sent within {limits.header_timeout:g} s",
                "header_timeout",
            )

        def _body_late(self) -> None:
            # The app is reading this body: it sees the client go away; no response can be
            # written into the middle of its own.
            self._timer = None
            if not self.transport.is_closing():
                on_limit("body_timeout")
                self.transport.close()

        def _refuse(self, status: int, message: str, limit: str) -> None:
            self._disarm()
            if not self.transport.is_closing():
                on_limit(limit)
                self.transport.write(refusal(status, message))
                self.transport.close()

    return Guarded
