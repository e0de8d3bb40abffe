"""The HTTP server under `bountytree serve`: uvicorn's httptools protocol, with the limits a
server that strangers can reach needs and uvicorn does not have.

uvicorn with httptools answered honest requests fastest of the servers measured, under attack
included, but bounds neither headers nor the time a request or an idle connection may take
(docs/measurements.md, "Choosing the HTTP server"). This protocol adds, per connection: a cap
on header bytes and lines (trailers included), header and body deadlines, a cap on pipelined
requests, on requests per connection and on connections open at once, and an abort for answers
the peer does not read. The app holds the rest: the body size and the memory all bodies may
take together (serving.py). Every bound and what happens past it: docs/models.md, "Limits".
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from bountytree.errors import UserError

REASONS = {
    400: b"Bad Request",
    408: b"Request Timeout",
    431: b"Request Header Fields Too Large",
    503: b"Service Unavailable",
}


# Pipelined requests one connection may queue behind the one being answered: more stops the
# parser (256 KiB of tiny requests would be 8,192 requests parsed in one go on the loop).
MAX_PIPELINED = 16
# Header lines (trailers included) one request may have.
MAX_HEADERS = 100
# Seconds a closed connection's unsent answer, or a peer that stopped reading, may wait.
WRITE_GRACE_S = 5.0


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


class _Stop(Exception):
    """Raised inside the parser to stop it where it is, before the app sees the request:
    uvicorn then answers through `send_400_response`, which says why and closes."""


def guarded_protocol(limits: HttpLimits, on_limit: Callable[[str], None]) -> type[Any]:
    """uvicorn's httptools protocol class with `limits`; `on_limit(name)` is told of each
    connection closed for one (the metrics count them).

    The invariant the timers keep: while a connection is open and its app is not working on a
    request, exactly one deadline runs, the header one (or uvicorn's keep-alive one right
    after a response); while a body arrives, the body one; a closed connection whose peer does
    not read what is left to send is aborted WRITE_GRACE_S later."""

    class Guarded(HttpToolsProtocol):  # type: ignore[misc]
        _timer: asyncio.TimerHandle | None = None
        _in_headers = False
        _began_here = False
        _header_bytes = 0  # raw bytes of headers still arriving (a value not yet complete)
        _parsed_bytes = 0  # url, header names and values parsed, trailers included
        _headers = 0
        _requests = 0
        _stopped: tuple[int, str, str] | None = None  # status, message, limit
        _running: Any = None  # the request cycle the app is answering
        _write_timer: asyncio.TimerHandle | None = None
        _aborting = False

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > limits.max_connections:
                self._refuse(503, "too many connections; retry later", "connections")
                return
            self._arm(limits.header_timeout, self._header_late)

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            if self._write_timer is not None:
                self._write_timer.cancel()
            # uvicorn marks only the newest cycle gone; the one the app is answering (an earlier
            # pipelined request) would write into a closed transport and log a traceback.
            for cycle in (self._running, *(c for c, _ in self.pipeline)):
                if cycle is not None and not cycle.response_complete:
                    cycle.disconnected = True
                    cycle.message_event.set()
            super().connection_lost(exc)

        def _start_asgi_task(self, cycle: Any, app: Any) -> None:
            self._running = cycle
            super()._start_asgi_task(cycle, app)

        def pause_writing(self) -> None:
            """The peer stopped reading: it has WRITE_GRACE_S to start again."""
            super().pause_writing()
            if self._write_timer is None:
                self._write_timer = self.loop.call_later(WRITE_GRACE_S, self._write_late)

        def resume_writing(self) -> None:
            super().resume_writing()
            if self._write_timer is not None:
                self._write_timer.cancel()
                self._write_timer = None

        def _write_late(self) -> None:
            self._write_timer = None
            on_limit("write_timeout")
            self.transport.abort()

        def data_received(self, data: bytes) -> None:
            self._began_here = False
            super().data_received(data)
            if self.transport.is_closing():
                self._disarm()
                self._abort_later()
                return
            if self._in_headers:
                # Bytes of headers still not over: a request that began in this chunk counts
                # from the next one (its start within the chunk is unknown), so a header value
                # still arriving is at most the limit plus one read.
                self._header_bytes = 0 if self._began_here else self._header_bytes + len(data)
            if self._header_bytes > limits.max_header_bytes:
                self._refuse(431, self._too_long, "header_bytes")
                return
            idle = self.cycle is None or self.cycle.response_complete
            if idle and self._timer is None and self.timeout_keep_alive_task is None:
                # Bytes that began no request (blank lines between requests) or ended a body
                # the app had already answered: the connection is idle again.
                self._arm(limits.header_timeout, self._header_late)

        def on_url(self, url: bytes) -> None:
            self._parsed_bytes += len(url)
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            # Trailers after a chunked body come here too: they count as headers.
            self._parsed_bytes += len(name) + len(value) + 4
            self._headers += 1
            if self._parsed_bytes > limits.max_header_bytes:
                self._stop(431, self._too_long, "header_bytes")
            if self._headers > MAX_HEADERS:
                self._stop(431, f"more than {MAX_HEADERS} header lines", "header_bytes")
            super().on_header(name, value)

        @property
        def _too_long(self) -> str:
            return f"request line and headers over {limits.max_header_bytes} bytes"

        def _stop(self, status: int, message: str, limit: str) -> None:
            self._stopped = (status, message, limit)
            raise _Stop

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._in_headers, self._began_here, self._header_bytes = True, True, 0
            self._parsed_bytes = self._headers = 0
            if self._timer is None:  # a new request on a kept-alive connection
                self._arm(limits.header_timeout, self._header_late)

        def on_headers_complete(self) -> None:
            if self._parsed_bytes > limits.max_header_bytes:
                self._stop(431, self._too_long, "header_bytes")
            if len(self.pipeline) >= MAX_PIPELINED:
                self._stop(
                    400, f"more than {MAX_PIPELINED} pipelined requests waiting", "pipelined"
                )
            self._in_headers = False
            self._arm(limits.body_timeout, self._body_late)
            super().on_headers_complete()
            self._requests += 1
            if self._requests >= limits.keep_alive_requests and self.cycle is not None:
                self.cycle.keep_alive = False

        def on_message_complete(self) -> None:
            self._disarm()
            super().on_message_complete()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if self.transport.is_closing():  # `connection: close`: the rest must still leave
                self._abort_later()

        def timeout_keep_alive_handler(self) -> None:
            super().timeout_keep_alive_handler()
            self._abort_later()

        def send_400_response(self, msg: str) -> None:
            """uvicorn's answer to bytes that are not HTTP, as the server's JSON error."""
            status, message, limit = self._stopped or (
                400,
                "not a valid HTTP/1.1 request",
                "malformed",
            )
            on_limit(limit)
            self.transport.write(refusal(status, message))
            self.transport.close()

        def _arm(self, seconds: float, then: Callable[[], None]) -> None:
            self._disarm()
            self._timer = self.loop.call_later(seconds, then)

        def _disarm(self) -> None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

        def _abort_later(self) -> None:
            if not self._aborting:  # once per connection, whichever path closed it
                self._aborting = True
                self.loop.call_later(WRITE_GRACE_S, self.transport.abort)

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
                self.transport.abort()

        def _refuse(self, status: int, message: str, limit: str) -> None:
            self._disarm()
            if not self.transport.is_closing():
                on_limit(limit)
                self.transport.write(refusal(status, message))
                self.transport.close()
                self._abort_later()

    return Guarded
