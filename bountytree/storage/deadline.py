"""A wall-clock deadline on the wait for an IPFS node's answer to begin.

http.client reads an answer's status line and headers with the socket's read timeout on each
receive, so a node that drips them, or sends `100 Continue` answers forever, could hold a call
for as long as it liked: the store's own deadline (KuboStore) starts only once the headers are
in. Here, every call's wait for its answer is watched from the moment its request is sent: when
the deadline passes first, the watchdog shuts the socket down and the call fails at once (as the
node being unavailable, never the file's fault). One thread watches every call in flight.

An upload is watched the same way while its body is sent: a node that takes it a byte at a time
could otherwise hold the call as long as it liked. The time spent sending (not reading the local
file, nor connecting) may not exceed the node's bound plus what was sent so far at
MIN_UPLOAD_RATE, so the whole upload ends by its size over that rate, plus the bound.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import socket
import threading
import time
from collections.abc import Iterator

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.response import BaseHTTPResponse

# The slowest an upload may go (bytes a second, 0.5 Mbit/s: a slow home uplink still passes): a
# model of 10 MB has at most 160 s more than the node's bound to be sent.
MIN_UPLOAD_RATE = 64 * 1024


class UploadTooSlow(TimeoutError):
    """An upload went slower than MIN_UPLOAD_RATE (its socket was shut down)."""


class Watchdog:
    """Shuts sockets down at their deadlines unless disarmed first (one daemon thread)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, socket.socket]] = []
        self._armed: set[int] = set()
        self._tokens = itertools.count()
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    def arm(self, sock: socket.socket, deadline: float) -> int:
        with self._changed:
            token = next(self._tokens)
            heapq.heappush(self._heap, (deadline, token, sock))
            self._armed.add(token)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="store-deadline", daemon=True
                )
                self._thread.start()
            self._changed.notify()
        return token

    def disarm(self, token: int) -> None:
        with self._changed:
            self._armed.discard(token)

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._heap:
                    self._changed.wait()
                if len(self._heap) > 2 * len(self._armed) + 1024:  # mostly answered calls
                    self._heap = [e for e in self._heap if e[1] in self._armed]
                    heapq.heapify(self._heap)
                    continue
                deadline, token, sock = self._heap[0]
                if token not in self._armed:  # answered in time
                    heapq.heappop(self._heap)
                    continue
                left = deadline - time.monotonic()
                if left > 0:
                    self._changed.wait(left)
                    continue
                heapq.heappop(self._heap)
                self._armed.discard(token)
                # under the lock: once `disarm` returns, its socket is never shut (it may be
                # back in the pool, serving another call)
                with contextlib.suppress(OSError):
                    # the plain socket's shutdown, not SSLSocket's (which drops its TLS state
                    # first, under a send that may be going on)
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)


WATCHDOG = Watchdog()
_call = threading.local()  # this thread's call: when its answer must have begun, retries included


@contextlib.contextmanager
def within(seconds: float) -> Iterator[None]:
    """Calls made in this block (the retries of one call included) must each have begun
    answering `seconds` from now: a retry does not start the wait afresh."""
    before = getattr(_call, "until", None)
    _call.until = time.monotonic() + seconds
    try:
        yield
    finally:
        _call.until = before


class _Watched:
    """The wait for an answer, watched (mixed into urllib3's connection classes)."""

    answer_within_s = 60.0  # set per pool (`pool_classes`)
    sock: socket.socket | None
    _upload: tuple[float, int] | None = None  # while a request is sent: seconds sending, bytes

    def request(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        self._upload = (0.0, 0)
        try:
            super().request(*args, **kwargs)  # type: ignore[misc]
        finally:
            self._upload = None

    def send(self, data) -> None:  # type: ignore[no-untyped-def]
        if self._upload is None or self.sock is None:
            super().send(data)  # type: ignore[misc]
            return
        spent, sent = self._upload
        sent += len(data)
        started = time.monotonic()
        until = started + self.answer_within_s + sent / MIN_UPLOAD_RATE - spent
        token = WATCHDOG.arm(self.sock, until)
        try:
            super().send(data)  # type: ignore[misc]
        except TimeoutError:  # the socket's own timeout: nothing taken for that long
            raise UploadTooSlow(
                f"the node took nothing of the upload for {self.sock.gettimeout():g} s"
            ) from None
        except OSError:
            if time.monotonic() >= until:
                raise UploadTooSlow(
                    f"{sent} bytes went slower than {MIN_UPLOAD_RATE // 1024} KiB/s (this "
                    "machine's link or the node)"
                ) from None
            raise
        finally:
            WATCHDOG.disarm(token)
            self._upload = (spent + time.monotonic() - started, sent)

    def getresponse(self) -> BaseHTTPResponse:
        # the request is sent; from now on, the node has this long to begin its answer
        if self.sock is None:
            response: BaseHTTPResponse = super().getresponse()  # type: ignore[misc]
            return response
        until = getattr(_call, "until", None) or time.monotonic() + self.answer_within_s
        token = WATCHDOG.arm(self.sock, until)
        try:
            answer: BaseHTTPResponse = super().getresponse()  # type: ignore[misc]
            return answer
        finally:
            WATCHDOG.disarm(token)


def pool_classes(answer_within_s: float) -> dict[str, type[HTTPConnectionPool]]:
    """urllib3 connection pools, by scheme, whose calls each have `answer_within_s` to begin
    answering (for PoolManager.pool_classes_by_scheme)."""
    out: dict[str, type[HTTPConnectionPool]] = {}
    for scheme, pool, connection in (
        ("http", HTTPConnectionPool, HTTPConnection),
        ("https", HTTPSConnectionPool, HTTPSConnection),
    ):
        watched = type(
            "Watched" + connection.__name__,
            (_Watched, connection),
            {"answer_within_s": answer_within_s},
        )
        out[scheme] = type("Watched" + pool.__name__, (pool,), {"ConnectionCls": watched})
    return out
