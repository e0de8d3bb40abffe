"""A store on any IPFS node that speaks the Kubo RPC API (kubo, or js-ipfs's HTTP API).

Spoken with urllib3 directly: a handful of POST endpoints. Reads never trust the node: `cat`
fetches the file's DAG block by block (`block/get`, a few blocks ahead on parallel
connections), checks every block against its hash and walks the DAG with our own UnixFS
decoder, so memory stays bounded and a node cannot hand back bytes other than the CID's. `add`
computes the kubo-default CID itself while it uploads, and refuses a node that stores the
bytes under another.

Errors are classified once, here: only the node's own answer that a block was not found in
time is `BlockMissing`; bytes that do not hash to their CID are `BlockCorrupted` (a block that
does, over IPFS's size limit, is `TooLarge`: its publisher's); anything else
going wrong (refused, reset, timed out on our side, cut mid-body, an error we do not know) is
`StoreUnavailable`, because it says nothing about the file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
import time
from collections import deque
from collections.abc import Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, BinaryIO
from urllib.parse import urlencode

import urllib3
from urllib3.exceptions import (
    HTTPError,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)

from bountytree.storage import deadline
from bountytree.storage.cid import cid_from_digest, digest_from_cid
from bountytree.storage.store import (
    MAX_BLOCK,
    BlockCorrupted,
    BlockMissing,
    StoreUnavailable,
    TooLarge,
    check_readable,
    read_file,
    which_block,
)
from bountytree.storage.unixfs import DagBuilder, hash_leaf, read_chunks

CONNECT_TIMEOUT = 5.0
# Our read timeout, per receive and for a whole answer, is the node's own timeout plus this: its
# own "not found" comes first. A node that answers, but drips, is cut off at the same bound.
GRACE = 10.0
AHEAD = 8  # blocks requested at once while reading a file (memory: 8 × 256 KiB)
# The most a node may answer for one block: bitswap's message limit, the largest block a peer
# can have sent. A block over MAX_BLOCK that hashes to its CID is its publisher's doing (kubo
# stores one with --allow-big-block and a peer's may pass it on): TooLarge, which the services
# hold against the publisher, not BlockCorrupted, which blames nobody (a sponsor serving its
# validation share as one such block stalled its task without the custodians' word).
MAX_SENT_BLOCK = 4 * 1024 * 1024
MAX_ANSWER = 64 * 1024 * 1024  # the JSON answers we read whole (pin lists)
# What kubo (context deadline, offline lookups) and js-ipfs (its `timeout` argument) say when a
# block could not be found in time.
_MISSING = ("timed out", "deadline exceeded", "not found", "could not find")


@dataclass(frozen=True)
class _Answer:
    """A 200 answer whose body is still to be read, and when reading it must have ended."""

    resp: urllib3.BaseHTTPResponse
    deadline: float


class KuboStore:
    """An IPFS node's RPC API, e.g. http://127.0.0.1:5001. `timeout` is how long the node may
    look for a block before it counts as missing."""

    def __init__(self, url: str, timeout: float = 30.0):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._api = f"{self.url}/api/v0/"
        self._http = urllib3.PoolManager(maxsize=AHEAD + 2, block=False)
        # an answer must begin by the same bound, however its headers come (deadline.py)
        self._http.pool_classes_by_scheme = deadline.pool_classes(timeout + GRACE)

    def __repr__(self) -> str:
        return f"KuboStore({self.url!r})"

    # ── the RPC call and its errors ──

    def _post(
        self,
        endpoint: str,
        params: dict[str, str],
        *,
        missing: str | None = None,
        body: Iterator[bytes] | None = None,
        headers: dict[str, str] | None = None,
    ) -> _Answer:
        """One call; an answer with status 200 whose body the caller reads before its deadline
        (the node's timeout plus GRACE from now, once any upload is sent). `missing` names what
        is not found when the node says so (otherwise such an answer is an outage)."""
        # A call without a body may be retried once if the connection drops (a kept-alive
        # connection the node closed); an upload, half sent, cannot be replayed.
        retries: urllib3.Retry | bool = False
        if body is None:
            retries = urllib3.Retry(
                total=2,
                connect=2,
                read=1,
                status=0,
                redirect=0,
                other=0,
                allowed_methods=None,
                raise_on_status=False,
            )
        # the answer must begin within the call's deadline, its retry included; an upload's
        # wait starts once its body is sent, which has a deadline of its own (deadline.py)
        bound = deadline.within(self.timeout + GRACE) if body is None else contextlib.nullcontext()
        try:
            with bound:
                resp = self._http.request(
                    "POST",
                    self._api + endpoint + "?" + urlencode(params),
                    body=body,
                    # Bytes as the node sends them: nothing to decompress, so nothing that a
                    # compressed answer could keep a read busy with (and a gzip bomb is moot).
                    headers={"Accept-Encoding": "identity", **(headers or {})},
                    decode_content=False,
                    chunked=body is not None,
                    preload_content=False,
                    retries=retries,
                    timeout=urllib3.Timeout(connect=CONNECT_TIMEOUT, read=self.timeout + GRACE),
                )
        except (HTTPError, OSError) as exc:
            raise self._unreachable(exc) from None
        answer = _Answer(resp, time.monotonic() + self.timeout + GRACE)
        encoding = resp.headers.get("Content-Encoding", "identity").lower()
        if encoding != "identity":
            resp.close()
            raise StoreUnavailable(
                f"the IPFS node at {self.url} answered {endpoint} with {encoding[:40]!r} "
                "content encoding, which was not asked for"
            )
        if resp.status == 200:
            return answer
        message = self._error_text(answer)
        # Only the node's own error answer (500) can say "not found": a 404 is a server that is
        # not an IPFS node at all.
        if resp.status == 500 and missing and any(w in message.lower() for w in _MISSING):
            raise BlockMissing(
                f"{missing} is not in the store (the IPFS node at {self.url} did not find it "
                f"within {self.timeout:g} s)"
            )
        raise StoreUnavailable(
            f"the IPFS node at {self.url} failed on {endpoint}: {message} (HTTP {resp.status})"
        )

    def _unreachable(self, exc: BaseException) -> StoreUnavailable:
        reason = exc.reason if isinstance(exc, MaxRetryError) and exc.reason else exc
        if isinstance(reason, NewConnectionError | ConnectionRefusedError):
            why = "connection refused: is its daemon running?"
        elif isinstance(reason, ReadTimeoutError | TimeoutError):
            why = f"no answer within {self.timeout + GRACE:g} s"
        elif slow := next((a for a in reason.args if isinstance(a, deadline.UploadTooSlow)), None):
            why = f"the upload was cut off: {slow}"
        elif isinstance(reason, ProtocolError):
            why = f"the connection broke mid-answer: {str(reason)[:120]}"
        else:
            why = f"{type(reason).__name__}: {str(reason)[:160]}"
        return StoreUnavailable(f"cannot reach the IPFS node at {self.url} ({why})")

    def _error_text(self, answer: _Answer) -> str:
        try:
            raw = self._read(answer, 64 * 1024)
        except StoreUnavailable:
            return "(no readable error message)"
        try:
            message = json.loads(raw).get("Message")
        except (ValueError, AttributeError):
            message = None
        return str(message) if message else raw[:200].decode(errors="replace")

    def _read(self, answer: _Answer, cap: int) -> bytes:
        """The body, up to cap + 1 bytes (a body longer than `cap` is left unread and its
        connection dropped); a body cut short, or not whole by the answer's deadline, is
        StoreUnavailable. Each receive is one `read1` (at most one socket read, each bounded by
        the read timeout), so the deadline is checked between receives however slowly they come:
        a read ends by the deadline plus one receive's timeout."""
        resp, out = answer.resp, bytearray()
        # One receive may itself be dripped (a chunk-size line a byte at a time): the socket is
        # shut down one receive's timeout past the deadline, however the bytes come.
        sock = getattr(getattr(resp, "connection", None), "sock", None)
        watch = (
            deadline.WATCHDOG.arm(sock, answer.deadline + self.timeout + GRACE) if sock else None
        )
        try:
            while len(out) <= cap:
                if time.monotonic() > answer.deadline:
                    resp.close()
                    raise StoreUnavailable(
                        f"the IPFS node at {self.url} sent {len(out)} bytes of an answer and not "
                        f"the rest within {self.timeout + GRACE:g} s: it is too slow to use"
                    )
                piece = resp.read1(min(1024 * 1024, cap + 1 - len(out)))
                if not piece:
                    break
                out += piece
        except (HTTPError, OSError) as exc:
            resp.close()
            raise self._unreachable(exc) from None
        finally:
            if watch is not None:
                deadline.WATCHDOG.disarm(watch)
        if len(out) > cap:
            resp.close()
        else:
            resp.release_conn()
        return bytes(out)

    def _json(self, answer: _Answer, what: str) -> Any:
        raw = self._read(answer, MAX_ANSWER)
        try:
            return json.loads(raw)
        except ValueError:
            raise StoreUnavailable(
                f"the IPFS node at {self.url} answered {what} with something that is not JSON"
            ) from None

    # ── blocks ──

    def get_block(self, cid: str, digest: bytes) -> bytes:
        name = cid_from_digest(digest)
        answer = self._post(
            "block/get",
            {"arg": name, "timeout": f"{self.timeout:g}s"},
            missing=which_block(cid, name),
        )
        block = self._read(answer, MAX_SENT_BLOCK)
        if len(block) > MAX_SENT_BLOCK:
            raise BlockCorrupted(
                f"{which_block(cid, name)} is corrupted: the IPFS node at {self.url} sent over "
                f"{MAX_SENT_BLOCK} bytes for it, and no peer can send a block that large"
            )
        if hashlib.sha256(block).digest() != digest:
            raise BlockCorrupted(
                f"{which_block(cid, name)} is corrupted: the bytes the IPFS node at {self.url} sent "
                "do not hash to its CID"
            )
        if len(block) > MAX_BLOCK:  # whole, and its CID's: its publisher made it so
            raise TooLarge(
                f"{which_block(cid, name)} is a block of {len(block)} bytes, over IPFS's "
                f"{MAX_BLOCK}-byte limit"
            )
        return block

    def get_blocks(self, cid: str, digests: list[bytes]) -> Generator[bytes, None, None]:
        """The blocks in order, up to AHEAD requested at once: one request's round trip hides
        behind the others (the node answers a block in about a millisecond)."""
        if len(digests) == 1:
            yield self.get_block(cid, digests[0])
            return
        pool = ThreadPoolExecutor(min(AHEAD, len(digests)), thread_name_prefix="ipfs-get")
        try:
            waiting = iter(digests)
            asked: deque[Future[bytes]] = deque()
            for digest in waiting:
                asked.append(pool.submit(self.get_block, cid, digest))
                if len(asked) == AHEAD:
                    break
            while asked:
                block = asked.popleft().result()
                following = next(waiting, None)
                if following is not None:
                    asked.append(pool.submit(self.get_block, cid, following))
                yield block
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    # ── the Store interface ──

    def add(self, stream: BinaryIO) -> str:
        """Uploads with kubo's defaults (CIDv0, 256 KiB chunks, balanced DAG, no raw leaves,
        pinned) while computing the CID those defaults give; a node that stores the bytes under
        another CID is refused (its add settings differ, or it did not get our bytes)."""
        builder = DagBuilder(lambda digest, block: None)
        boundary = secrets.token_hex(16)

        def body() -> Iterator[bytes]:
            yield (
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                f'filename="file"\r\nContent-Type: application/octet-stream\r\n\r\n'
            ).encode()
            for chunk in read_chunks(stream):
                builder.add_leaf(hash_leaf(chunk))
                yield chunk
            yield f"\r\n--{boundary}--\r\n".encode()

        uploaded = self._post(
            "add",
            {
                "cid-version": "0",
                "chunker": "size-262144",
                "raw-leaves": "false",
                "hash": "sha2-256",
                "pin": "true",
                "progress": "false",
            },
            body=body(),
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        added: str | None = None
        for line in self._read(uploaded, MAX_ANSWER).splitlines():
            try:
                said = json.loads(line)
            except ValueError:
                continue
            if said.get("Type") == "error":
                raise StoreUnavailable(
                    f"the IPFS node at {self.url} failed to add: {said.get('Message')}"
                )
            added = said.get("Hash", added)
        if not added:
            raise StoreUnavailable(f"the IPFS node at {self.url} added the file but gave no CID")
        expected = cid_from_digest(builder.finish().digest)
        if added != expected:
            raise BlockCorrupted(
                f"the IPFS node at {self.url} stored the file as {added}, but its bytes are "
                f"{expected} with kubo's defaults (CIDv0, 256 KiB chunks, balanced DAG): check "
                "the node's add settings"
            )
        return added

    def cat(self, cid: str, limit: int | None = None) -> Iterator[bytes]:
        return read_file(cid, self, limit)

    def has(self, cid: str) -> bool:
        return check_readable(self, cid)

    def pin(self, cid: str) -> None:
        digest_from_cid(cid)
        answer = self._post("pin/add", {"arg": cid, "timeout": f"{self.timeout:g}s"}, missing=cid)
        self._read(answer, MAX_ANSWER)

    def pins(self) -> list[str]:
        answer = self._json(self._post("pin/ls", {"type": "recursive"}), "pin/ls")
        keys = answer.get("Keys") if isinstance(answer, dict) else None
        if not isinstance(keys, dict):
            raise StoreUnavailable(f"the IPFS node at {self.url} answered pin/ls without Keys")
        return sorted(keys)

    def version(self) -> str:
        """The node's version (also a cheap check that it answers)."""
        answer = self._json(self._post("version", {}), "version")
        return str(answer.get("Version", "?")) if isinstance(answer, dict) else "?"


__all__ = ["KuboStore"]
