"""Authenticated, encrypted links between the three parties of a private session.

gloo, torch's transport, is plain TCP, and CrypTen sends its PRNG seeds and the dealer's over
it in the clear: whoever reads the wire unmasks every value, and whoever reaches the rendezvous
port can join. A private session therefore talks over links of its own. Each pair of parties
holds one TCP connection; a handshake authenticates both ends by their X25519 keys (the keys
the chain records for the task's custodians and dealer) and derives one ChaCha20-Poly1305 key
per direction. Every frame after it is sealed under a counter nonce, so a frame read, changed,
dropped, replayed or reordered ends the session instead of being used.

Handshake (both ends know which static keys they accept, as in Noise's KK pattern):

    I -> R:  HELLO ‖ rank_I ‖ s_I ‖ e_I ‖ time_I ‖ n ‖ proof_1 … proof_n
    R -> I:  HELLO ‖ rank_R ‖ s_R ‖ e_R ‖ time_R ‖ 0
    keys  =  HKDF-SHA256(DH(e_I, e_R) ‖ DH(s_I, e_R) ‖ DH(e_I, s_R), salt = SHA-256(transcript))

then each sends a sealed confirmation. Only the holder of s_I's private key computes
DH(s_I, e_R) for R's fresh e_R (and the same for R), so a party that does not hold the key it
names cannot confirm and is dropped; the ephemeral keys make each session's keys fresh.

A proof is an HMAC of the hello (up to its proofs) and the recipient's static key, under
DH(s_I, s_R), which two parties that know each other's static keys share before either speaks;
the connecting end sends one for each key it accepts there (the dealer, serving several tasks,
does not know which of their custodians it reaches). It proves the key a hello names in its
first message, without a round trip: a listener takes a hello that proves a key it accepts,
made within PROOF_FRESH_S, out of the handshakes strangers can evict (`_accept`), so a flood
from many addresses, which evicts handshakes that take a round trip or two to finish, cannot
keep a known party out once its hello has arrived (link v4; before, a flood from more addresses
than MAX_PENDING cycled a dealer on a slow network out of every handshake). The validator's
listener, which takes any key for the oracle's model party (known by its ticket), checks none.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import hashlib
import hmac
import ipaddress
import json
import queue
import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from Crypto.Hash import SHA256
from Crypto.Protocol.KDF import HKDF
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from bountytree.errors import UserError
from bountytree.private.sealing import agree, new_private_key, public_key

# v2: in a three-party session, party 1 tells party 0 whether the dealer linked to it; v3: a
# frame may be a party's last word (ENDED), which the custodians exchange when a session fails;
# v4: a hello proves the static key it names (its MAC); v5: a frame may be a note beside the
# messages (NOTED: custodian 1's lag on each request to the dealer, blame.py)
HELLO = b"bountytree-link-v5\n"
KEY_BYTES = 32
FIXED_BYTES = len(HELLO) + 1 + 2 * KEY_BYTES + 8 + 1  # a hello up to its proofs
PROOF_BYTES = 16
MAX_PROOFS = 16  # keys a connecting end proves its own to in one hello (a dealer's custodians)
PROOF_FRESH_S = 120.0  # a hello's proof counts for this long either side of its time
CONFIRM = b"bountytree-link-confirmed"
TAG_BYTES = 16
MORE = 1 << 31  # a frame's header: its length, and whether the message goes on
ENDED = 1 << 30  # … or whether it is the party's last word: why it ends the session
NOTED = 1 << 29  # … or whether it is a note beside the messages (Link.note)
MAX_NOTE = 64  # bytes of a note
MAX_NOTES = 64  # notes read aside before one frame of a message (custodian 1 notes each request)
MAX_FRAME = 8 << 20  # plaintext bytes per frame
MAX_MESSAGE = 1 << 30  # bytes one message may hold (the dealer's answers are at most 128 MiB)
MAX_OPENING = 1 << 20  # bytes of the message a party opens with (the oracle's ticket)
MAX_REASON = 400  # characters of a refusal's reason sent back, or of a last word (blame.Word)
REFUSAL = b"\xff\xff\xff\xff"  # in place of a confirmation's header: "your key is not accepted"
HANDSHAKE_S = 10.0  # a connection that has not confirmed by then is dropped
MAX_PENDING = 32  # handshakes a listener runs at once; beyond, the busiest source's oldest goes
MAX_WAITING_PER_SOURCE = 4  # linked connections of one address waiting for their admission
MAX_PROVEN_PER_KEY = 2  # handshakes under way whose hello proved one accepted key
BUSY = "too many connections waiting"  # a refusal that says: come again
DEALER_LINKED = b"dealer linked"  # party 1 to party 0, once the dealer linked to it too


class LinkError(Exception):
    """A link that failed during a session: the peer left, a frame did not open, or nothing came
    within the session's timeout. Ends the session (nobody's fault is implied). `rank`: the
    peer of the link that failed, when one did (blame.py asks whether it was the dealer)."""

    def __init__(self, message: object = "", rank: int | None = None):
        super().__init__(message)
        self.rank = rank


class PeerEnded(LinkError):
    """The peer ended the session and said why (`reason`, at most MAX_REASON characters), after
    every message it sent before: a custodian that the dealer stopped answering tells the other
    custodian, which was waiting on it, so that both know whose silence ended the session."""

    def __init__(self, rank: int, reason: str):
        super().__init__(f"party {rank} ended the session: {reason}", rank)
        self.reason = reason


class OverBudget(LinkError):
    """The session ran over the time it may take (`set_budget`), whoever this party was waiting
    on: it ends the session itself, in time for the custodians' last words (blame.py), where
    its service's kill at the budget said nothing of who made it slow."""


# when this process's session is over its budget (monotonic seconds; None: no budget). A party's
# sessions each run in a process of their own.
_budget_ends: float | None = None


def set_budget(seconds: float | None) -> None:
    """From now, the session may take `seconds` more (None: as long as each step's timeout
    allows); a receive waiting past it raises OverBudget."""
    global _budget_ends
    _budget_ends = None if seconds is None else time.monotonic() + seconds


def budget_left() -> float | None:
    """Seconds until this process's session is over its budget (None: no budget)."""
    return None if _budget_ends is None else _budget_ends - time.monotonic()


class Tampered(LinkError):
    """A frame that does not open under the link's key: changed on the way, or sealed by
    someone who does not hold the key."""


class LinkRefused(UserError):
    """A link that could not be made secure (the peer's key is not one this party accepts, or
    it did not prove it holds it): the party refuses to start."""


class Unanswered(ConnectionError):
    """A connection closed, or silent, before the peer said who it is (a listener that evicted
    it, or not a party at all): the connecting party tries again."""


class SessionRefused(Exception):
    """The other party refused the session (wrong task, invalid spec, another job, a ticket it
    does not admit, …); the message says why, in at most MAX_CHARS characters: it often quotes
    the peer, and goes to logs (a custodian 0 that sent an 8 MiB job header wrote 8 MiB lines
    into the other's log every round: the attacker review of the servers)."""

    MAX_CHARS = 300

    def __init__(self, message: object = "refused"):
        text = str(message)
        super().__init__(text if len(text) <= self.MAX_CHARS else text[: self.MAX_CHARS] + "…")


class PartyMissing(Exception):
    """The other parties did not all join within the timeout: nobody came, not a failure of
    whoever waited (a validator waiting for an oracle waits again). `missing`: the ranks that
    did not (a custodian says the dealer does not come only when it alone was missing)."""

    def __init__(self, message: str, missing: tuple[int, ...]):
        super().__init__(message)
        self.missing = missing


@dataclass(frozen=True)
class Identity:
    """Who this party is and whom it accepts: its X25519 private key (the 32-byte seed) and,
    for each other rank, the public keys it accepts there (the chain says which), or None: any
    key, the party being vouched for by its opening message instead (the oracle's ticket, signed
    by its role account, names the key its link proves)."""

    private_key: bytes
    peers: Mapping[int, Collection[bytes] | None] = field(default_factory=dict)
    # a dealer's: the (party 0, party 1) keys it accepts together, the custodians of one task
    # (None: any of `peers` together)
    pairs: Collection[tuple[bytes, bytes]] | None = None

    @property
    def public_key(self) -> bytes:
        return public_key(self.private_key)


def _recv_exact(sock: socket.socket, n: int, deadline: float | None = None) -> bytes:
    buf = bytearray(n)
    _recv_into(sock, memoryview(buf), deadline)
    return bytes(buf)


def _recv_into(sock: socket.socket, view: memoryview, deadline: float | None = None) -> None:
    """Fills `view` from the socket; with a deadline, by then (TimeoutError otherwise): a peer
    dripping a byte at a time cannot stretch one read past it."""
    got = 0
    while got < len(view):
        if deadline is not None:  # wait for bytes without touching the socket's own timeout,
            left = deadline - time.monotonic()  # which the link's writer thread shares
            ready = select.poll()
            ready.register(sock, select.POLLIN)
            if left <= 0 or not ready.poll(left * 1000):
                raise TimeoutError
        k = sock.recv_into(view[got:])
        if k == 0:
            raise ConnectionError("the peer closed the link")
        got += k


class Link:
    """One authenticated, encrypted connection to one peer.

    A small message is written by the caller when nothing is queued before it; larger ones go
    to a writer thread of the link's own, so two parties sending each other large tensors at
    once never block each other (each would fill the other's socket buffer). Receives happen in
    the caller, decrypted straight into the caller's buffer."""

    DIRECT = 64 << 10  # bytes a caller writes itself (well inside any socket buffer)

    def __init__(self, sock: socket.socket, rank: int, send_key: bytes, recv_key: bytes):
        if sock.family in (socket.AF_INET, socket.AF_INET6):  # MPC rounds are small messages
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock, self.rank = sock, rank
        self.peer_key = b""  # the static key the peer proved in the handshake
        self.timeout_s = HANDSHAKE_S  # what one message may take to arrive, start to end
        # OpenSSL's ChaCha20-Poly1305 (the `cryptography` package): a session moves hundreds of
        # megabytes, ten times faster than pycryptodome's here (docs/private-models.md)
        self._send, self._recv = ChaCha20Poly1305(send_key), ChaCha20Poly1305(recv_key)
        self._sent = self._received = 0
        # when a message last went out, or began to come in (its first header: a large one's
        # transfer is not the receiver's lateness)
        self.last_active = time.monotonic()
        # when the peer linked (party 0's link to the dealer: when party 1 said the dealer had
        # linked to it too, connect): where the session's time starts counting (dealer.Requests)
        self.linked_at = self.last_active
        self._header_at = self.last_active  # when the last frame's header was read
        self.on_note: Callable[[bytes], None] | None = None  # what this party does with a note
        self._outbox: queue.Queue[list[bytes] | None] = queue.Queue()
        self._queued = 0  # frames handed to the writer and not yet written
        # Frames are sealed and queued under this lock, so they are written in nonce order; the
        # writer thread writes without it (a caller waiting to queue never waits on a socket).
        self._lock = threading.Lock()
        self._body = bytearray()  # grown to the largest frame received
        self._failure: BaseException | None = None
        self._writer = threading.Thread(target=self._write, daemon=True)
        self._writer.start()

    # -- frames ---------------------------------------------------------------------------

    @staticmethod
    def _nonce(counter: int) -> bytes:
        return struct.pack("<Q", counter) + b"\0\0\0\0"

    def _seal(self, chunk: bytes | memoryview, flags: int = 0) -> list[bytes]:
        header = struct.pack(">I", len(chunk) | flags)
        sealed = self._send.encrypt(self._nonce(self._sent), chunk, header)  # body ‖ tag
        self._sent += 1
        return [header + sealed] if len(sealed) <= self.DIRECT else [header, sealed]

    def _write(self) -> None:
        while (frame := self._outbox.get()) is not None:
            try:
                for part in frame:
                    self.sock.sendall(part)
            except OSError as exc:
                self._failure = exc
                return
            with self._lock:
                self._queued -= 1

    def send(self, data: bytes | memoryview, *, ended: bool = False) -> None:
        """Sends one message (any length up to MAX_MESSAGE); returns once it is written or
        queued."""
        if self._failure is not None:
            raise LinkError(f"the link to party {self.rank} failed: {self._failure}", self.rank)
        view = memoryview(data).cast("B")
        if len(view) > MAX_MESSAGE:
            raise LinkError(f"a message of {len(view)} bytes")
        self.last_active = time.monotonic()
        if len(view) <= self.DIRECT:
            with self._lock:
                frame = self._seal(view, ENDED if ended else 0)
                if self._queued == 0:  # nothing before it: write it now
                    try:
                        self.sock.sendall(frame[0])
                    except OSError as exc:
                        raise LinkError(
                            f"the link to party {self.rank} failed: {exc}", self.rank
                        ) from None
                    return
                self._queue(frame)
            return
        start = 0
        while start < len(view):
            end = min(len(view), start + MAX_FRAME)
            with self._lock:
                self._queue(self._seal(view[start:end], MORE if end < len(view) else 0))
            start = end

    @property
    def failed(self) -> bool:
        """Whether a write of this link's own thread failed (the peer cut it)."""
        return self._failure is not None

    def end(self, reason: str) -> None:
        """Tells the peer why this party ends the session: its next receive raises PeerEnded,
        after every message sent before. A last word, so never an error: the link may be gone."""
        with contextlib.suppress(LinkError, OSError):
            self.send(reason.encode()[:MAX_REASON], ended=True)

    def note(self, data: bytes) -> None:
        """Sends a note beside the messages: the peer's receive hands it to its `on_note` and
        reads on, so a note is never part of a message, whatever the peer waits for. Neither
        end counts it as the two parties exchanging (`last_active`), since lags are measured
        from that (dealer.Requests). Queued to the link's writer, so it never blocks the
        caller; never an error (a failed link fails the next message)."""
        if self._failure is not None or len(data) > MAX_NOTE:
            return
        with self._lock:
            self._queue(self._seal(data, NOTED))

    def _queue(self, frame: list[bytes]) -> None:
        """Hands a frame to the writer, in nonce order (under the lock, as it was sealed)."""
        self._queued += 1
        self._outbox.put(frame)

    def last_word(self, within_s: float) -> str | None:
        """The peer's last word (`end`), past whatever it sent before; None if none comes within
        `within_s` seconds or the link fails first."""
        deadline = time.monotonic() + within_s
        try:
            while True:
                self._frame_into(None, deadline, MAX_FRAME)
        except PeerEnded as ended:
            return ended.reason
        except LinkError:
            return None

    def _frame_into(
        self, out: memoryview | None, deadline: float, room: int, raw_header: bytes | None = None
    ) -> tuple[int, bool, bytes | None]:
        """Reads one frame of at most `room` bytes by `deadline`, past any notes before it
        (each handed to `on_note`); decrypts it into `out` (which must be at least its length)
        or, with no buffer, returns it."""
        for _ in range(MAX_NOTES + 1):
            n, more, chunk, noted = self._one_frame(out, deadline, room, raw_header)
            if not noted:
                return n, more, chunk
            raw_header = None
            if self.on_note is not None and chunk is not None:
                self.on_note(chunk)
        raise LinkError(f"party {self.rank} sent more than {MAX_NOTES} notes at once", self.rank)

    def _one_frame(
        self, out: memoryview | None, deadline: float, room: int, raw_header: bytes | None
    ) -> tuple[int, bool, bytes | None, bool]:
        """One frame, a note's included. A frame over `room` is refused from its header, before
        anything is allocated for it: a stranger who sent a 4-byte header of the largest frame
        once held 8 MiB of every listener's memory per connection, unauthenticated (found by
        the attacker review of the servers)."""
        try:
            raw_header = raw_header or _recv_exact(self.sock, 4, deadline)
            self._header_at = time.monotonic()
            if deadline == _budget_ends:  # the budget ends a session between frames only
                deadline = time.monotonic() + self.timeout_s
            (header,) = struct.unpack(">I", raw_header)
            n = header & ~(MORE | ENDED | NOTED)
            more, ended, noted = bool(header & MORE), bool(header & ENDED), bool(header & NOTED)
            # a message is cut into frames of MAX_FRAME bytes but its last: a peer sending it
            # as 1-byte frames held 123 bytes of memory per byte sent (the attacker review of
            # the link fixes), and empty ones that say more follows, forever
            if (
                n > MAX_FRAME
                or (more and n != MAX_FRAME)
                or (ended and (more or n > MAX_REASON))
                or (noted and (more or ended or n > MAX_NOTE or self.on_note is None))
            ):
                raise LinkError(f"party {self.rank} sent a frame header {header:#x}", self.rank)
            if ended or noted:  # read aside, whatever this party was waiting for
                out, room = None, n
            if n > room:
                raise LinkError(f"party {self.rank} sent more than was expected", self.rank)
            if len(self._body) < n + TAG_BYTES:
                self._body = bytearray(n + TAG_BYTES)
            body = memoryview(self._body)[: n + TAG_BYTES]
            _recv_into(self.sock, body, deadline)
        except TimeoutError:
            if deadline == _budget_ends:
                raise OverBudget("the session ran over its budget") from None
            raise LinkError(
                f"party {self.rank} sent nothing within the session's timeout", self.rank
            ) from None
        except OSError as exc:
            raise LinkError(f"the link to party {self.rank} failed: {exc}", self.rank) from None
        nonce, aad = self._nonce(self._received), struct.pack(">I", header)
        self._received += 1
        try:
            if ended:  # printable ASCII alone: nothing the peer says can break a log line
                said = self._recv.decrypt(nonce, body, aad)
                raise PeerEnded(self.rank, "".join(chr(b) if 32 <= b < 127 else "?" for b in said))
            if out is None:
                return n, more, self._recv.decrypt(nonce, body, aad), noted
            self._recv.decrypt_into(nonce, body, aad, out[:n])
        except InvalidTag:
            raise Tampered(
                f"a frame from party {self.rank} does not open (changed?)", self.rank
            ) from None
        return n, more, None, noted

    def recv_into(self, buffer: memoryview | bytearray) -> None:
        """Receives one message of exactly len(buffer) bytes into `buffer`."""
        out = memoryview(buffer).cast("B")
        deadline = self._deadline()
        got, more, began = 0, True, None
        while more:
            n, more, _ = self._frame_into(out[got:], deadline, len(out) - got)
            began = began or self._header_at
            got += n
        self.last_active = began or time.monotonic()
        if got != len(out):
            raise LinkError(
                f"party {self.rank} sent {got} bytes where {len(out)} were expected", self.rank
            )

    def recv(self, limit: int, raw_header: bytes | None = None) -> bytes:
        """Receives one message of at most `limit` bytes (its first frame's header may have
        been read already)."""
        deadline = self._deadline()
        parts: list[bytes] = []
        got, more, began = 0, True, None
        while more:
            n, more, chunk = self._frame_into(None, deadline, limit - got, raw_header)
            began = began or self._header_at
            raw_header = None
            got += n
            assert chunk is not None
            parts.append(chunk)
        self.last_active = began or time.monotonic()
        return b"".join(parts)

    def _deadline(self) -> float:
        """By when the next message must have come: the step timeout, or the session's budget
        (`set_budget`) if it ends sooner."""
        step = time.monotonic() + self.timeout_s
        return step if _budget_ends is None or step < _budget_ends else _budget_ends

    def set_timeout(self, timeout_s: float) -> None:
        """What one message may take to arrive, and one write to go out."""
        self.timeout_s = timeout_s
        self.sock.settimeout(timeout_s)

    def close(self) -> None:
        self._outbox.put(None)
        self._writer.join(timeout=30)
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


def _handshake(
    sock: socket.socket,
    me: Identity,
    rank: int,
    world: int,
    expect: Mapping[int, Collection[bytes] | None],
    proven: Callable[[bytes, bytes], None] | None = None,
) -> Link:
    """Runs the handshake on a connected socket (either end), all of it within HANDSHAKE_S (a
    watchdog shuts the socket then, however the peer drips its bytes); returns the link, or
    raises LinkRefused (the peer is not accepted, or does not accept this party) or Unanswered
    (the connection ended before the peer said whether it accepts). `expect` is the ranks (and
    their keys) this end accepts on this socket. `proven` (a listener's) is told the static and
    ephemeral keys of a hello whose MAC proves a key this end accepts, as soon as it is read."""
    watchdog = threading.Timer(HANDSHAKE_S, _shut, args=(sock,))
    watchdog.daemon = True
    watchdog.start()
    try:
        mine, ephemeral = me.private_key, new_private_key()
        s_mine = public_key(mine)
        # the connecting end proves its key to each key it may be talking to; a listener, whose
        # address is what the other came for, proves its own at the confirmation
        maybe = [] if proven is not None else [k for keys in expect.values() for k in keys or ()]
        hello = _hello(rank, mine, s_mine, public_key(ephemeral), sorted(maybe))
        try:
            sock.sendall(hello)
            version = _recv_exact(sock, len(HELLO))
            if version == HELLO:
                fixed = version + _recv_exact(sock, FIXED_BYTES - len(HELLO))
                many = fixed[-1]
                proofs = _recv_exact(sock, many * PROOF_BYTES) if many <= MAX_PROOFS else b""
        except OSError as exc:  # closed or silent before saying who it is: nobody answered
            raise Unanswered(str(exc)) from None
        if version != HELLO:  # read alone, so that a release whose hello is shorter is told
            line = version.split(b"\n", 1)[0]
            if line.startswith(b"bountytree-link-v") and line.isascii():
                ours = HELLO.decode().strip()
                said = "".join(c for c in line.decode()[:30] if c.isalnum() or c == "-")
                raise _refuse(
                    sock, f"the peer speaks {said}, this party {ours}: run one release on both"
                )
            raise _refuse(sock, "the peer does not speak bountytree's link protocol")
        if many > MAX_PROOFS:
            raise _refuse(sock, f"a hello with {many} proofs")
        theirs = fixed + proofs
        peer = fixed[len(HELLO)]
        s_peer = fixed[len(HELLO) + 1 : len(HELLO) + 1 + KEY_BYTES]
        e_peer = fixed[len(HELLO) + 1 + KEY_BYTES : len(HELLO) + 1 + 2 * KEY_BYTES]
        if peer not in expect or peer == rank or peer >= world:
            raise _refuse(sock, f"a peer that says it is party {peer}, which is not expected here")
        accepted = expect[peer]
        if accepted is not None and s_peer not in accepted:
            raise _refuse(
                sock, f"party {peer}'s key {s_peer.hex()[:16]}… is not one this party accepts"
            )
        if proven is not None and accepted is not None and _proves(mine, s_peer, fixed, proofs):
            proven(s_peer, e_peer)
        initiator = rank > peer  # the higher rank connects
        first, second = (hello, theirs) if initiator else (theirs, hello)
        try:
            ikm = agree(ephemeral, e_peer) + (
                agree(mine, e_peer) + agree(ephemeral, s_peer)
                if initiator
                else agree(ephemeral, s_peer) + agree(mine, e_peer)
            )
        except ValueError:
            raise _refuse(sock, f"party {peer} sent a key that is not an X25519 key") from None
        salt = SHA256.new(first + second + bytes([world])).digest()
        keys = HKDF(ikm, 2 * KEY_BYTES, salt, SHA256, context=b"bountytree link keys")
        assert isinstance(keys, bytes)
        up, down = keys[:KEY_BYTES], keys[KEY_BYTES:]  # initiator -> responder, and back
        link = Link(sock, peer, up if initiator else down, down if initiator else up)
        link.peer_key = s_peer
        try:
            link.send(CONFIRM)
            header = _recv_exact(sock, 4)
            if header == REFUSAL:
                raise LinkRefused(f"party {peer} does not accept this party's key")
            proof = link.recv(len(CONFIRM), raw_header=header)
        except (OSError, LinkError) as exc:  # ended before it said: it may have been evicted
            link.close()
            if isinstance(exc, Tampered):
                raise LinkRefused(f"party {peer} did not prove it holds the key it named") from None
            raise Unanswered(str(exc)) from None
        except LinkRefused:
            link.close()
            raise
        if proof != CONFIRM:
            link.close()
            raise LinkRefused(f"party {peer} did not prove it holds the key it named")
        return link
    finally:
        watchdog.cancel()


def _hello(rank: int, mine: bytes, s_mine: bytes, e_mine: bytes, maybe: list[bytes]) -> bytes:
    """This end's hello, with a proof of its key for each key in `maybe` (none beyond
    MAX_PROOFS: the listener then proves nothing of it, and it may be evicted as a stranger's)."""
    maybe = maybe if len(maybe) <= MAX_PROOFS else []
    fixed = HELLO + bytes([rank]) + s_mine + e_mine
    fixed += struct.pack(">Q", int(time.time())) + bytes([len(maybe)])
    proofs = b""
    for key in maybe:
        try:
            proofs += _mac(mine, key, fixed, key)
        except ValueError:  # no X25519 key: a proof for nobody
            proofs += bytes(PROOF_BYTES)
    return fixed + proofs


def _proves(mine: bytes, s_peer: bytes, fixed: bytes, proofs: bytes) -> bool:
    """Whether one of a hello's proofs is its named key's (`s_peer`), to this end, and made
    recently (a hello recorded on the wire proves nothing a few minutes on)."""
    (made,) = struct.unpack(">Q", fixed[-9:-1])
    if abs(time.time() - made) > PROOF_FRESH_S:
        return False
    try:
        expected = _mac(mine, s_peer, fixed, public_key(mine))
    except ValueError:  # a key on the chain that is no X25519 key
        return False
    chunks = (proofs[i : i + PROOF_BYTES] for i in range(0, len(proofs), PROOF_BYTES))
    return any([hmac.compare_digest(chunk, expected) for chunk in chunks])


@functools.lru_cache(maxsize=64)
def _pair_key(private: bytes, theirs: bytes) -> bytes:
    """What two parties that know each other's static keys share before either speaks (the
    hellos' proof key). Cached: a listener checks every hello naming a key it accepts, and the
    keys it accepts are few (the chain's). ValueError for a key that is no X25519 key."""
    return hashlib.sha256(b"bountytree link hello\n" + agree(private, theirs)).digest()


def _mac(private: bytes, theirs: bytes, fixed: bytes, recipient: bytes) -> bytes:
    """A hello's proof (`fixed`: the hello up to its proofs) between the holders of `private`
    and `theirs`, bound to its recipient's static key, so that it proves nothing to anyone
    else."""
    key = _pair_key(private, theirs)
    return hmac.new(key, fixed + recipient, hashlib.sha256).digest()[:PROOF_BYTES]


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _refuse(sock: socket.socket, why: str) -> LinkRefused:
    """Tells the peer it is not accepted (in place of a confirmation) and says why here."""
    with contextlib.suppress(OSError):
        sock.sendall(REFUSAL)
    return LinkRefused(why)


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    try:
        return host.strip("[]") or "127.0.0.1", int(port)
    except ValueError:
        raise UserError(f"{address}: not host:port") from None


def _hang_up(conn: socket.socket) -> None:
    """Closes a refused connection gracefully (what it sent is read and dropped first), so the
    peer reads our hello and learns it was refused instead of seeing a reset."""
    until = time.monotonic() + 2.0  # however slowly the peer goes on sending
    with contextlib.suppress(OSError):
        conn.shutdown(socket.SHUT_WR)
        conn.settimeout(1.0)
        while conn.recv(1 << 12) and time.monotonic() < until:
            pass
    conn.close()


Admit = Callable[[bytes, bytes], None]  # (the key the peer proved, its opening message)


def _judge(link: Link, check: Admit, opening: bytes) -> None:
    """Runs `check` on a linked party's opening; a refusal is sent back, and ends the link."""
    try:
        check(link.peer_key, opening)
    except SessionRefused as exc:
        link.send(json.dumps({"ok": False, "error": str(exc)[:MAX_REASON]}).encode())
        raise LinkError("refused") from None


def _accept(
    listener: socket.socket,
    me: Identity,
    rank: int,
    world: int,
    ranks: Collection[int],
    deadline: float,
    timeout_s: float,
    admit: Admit | None = None,
    screen: Admit | None = None,
) -> dict[int, Link]:
    """Accepts connections on `listener` until each of `ranks` has an authenticated link, or
    the deadline passes (PartyMissing). Each handshake runs in a thread of its own with its own
    deadline; connections that fail it are closed and forgotten, and leave nothing behind. With
    `admit`, a linked party is let in only once its opening message passes `admit` (one at a
    time, the first admitted taking the place); a refused one is told why and dropped, and the
    listener goes on waiting. `screen`, if given, is the cheap part of `admit`, run as each
    opening arrives, concurrently: an opening it refuses never waits for a turn."""
    done: dict[int, Link] = {}
    lock = threading.Lock()  # done, pending, waiting
    admitting = threading.Lock()  # one admission at a time: the first admitted takes the place
    # still in the handshake, oldest first, with the address each came from
    pending: dict[socket.socket, str] = {}
    # … and those whose hello proved a key this end accepts, with that key: never evicted for
    # strangers (at most MAX_PROVEN_PER_KEY per key, the oldest giving way), each hello once
    proven: dict[socket.socket, tuple[bytes, str]] = {}
    hellos: set[bytes] = set()  # the ephemeral keys of the hellos proven here
    waiting: collections.Counter[str] = collections.Counter()  # openings waiting, by address
    over = threading.Event()  # this listener has returned or given up: late links are closed
    expect = {r: me.peers.get(r, ()) for r in ranks}

    def place(link: Link) -> None:
        with lock:
            if over.is_set() or link.rank in done:  # too late, or the place is taken
                link.close()
                return
            link.set_timeout(timeout_s)
            done[link.rank] = link

    def admitted(conn: socket.socket, link: Link) -> None:
        """Reads the opening and runs `admit` on it, telling the peer the verdict. Once its
        opening has arrived a connection is no longer evicted; at most MAX_PENDING wait, and
        MAX_WAITING_PER_SOURCE from one address (strangers who complete handshakes and send
        openings, each costing an admission check, cannot fill the queue from one address and
        keep the party out); one turned away is told to come again (BUSY)."""
        assert admit is not None
        opening = link.recv(MAX_OPENING)
        with lock:
            source = pending.pop(conn, None) or proven.pop(conn, ("", None))[1]
            full = source is not None and (
                waiting.total() >= MAX_PENDING or waiting[source] >= MAX_WAITING_PER_SOURCE
            )
            if source is not None and not full:
                waiting[source] += 1
        if source is None:
            raise LinkError("evicted before its opening arrived")
        if full:
            link.send(json.dumps({"ok": False, "error": BUSY}).encode())
            raise LinkError(BUSY)
        try:
            if screen is not None:  # at once, beside other screens: no turn taken
                _judge(link, screen, opening)
            with admitting:
                if over.is_set() or link.rank in done:
                    raise LinkError("the place is taken")
                _judge(link, admit, opening)
                link.send(json.dumps({"ok": True}).encode())
                place(link)  # within the admission: nobody else is admitted meanwhile
        finally:
            with lock:
                waiting[source] -= 1
                if not waiting[source]:
                    del waiting[source]

    def prove(conn: socket.socket, key: bytes, ephemeral: bytes) -> None:
        """The connection's hello proved `key`: out of the strangers' reach. A hello proven
        before here is a replay (it could not confirm anyway); beyond MAX_PROVEN_PER_KEY, only
        the same source's older handshake gives way (a party's retry), so that hellos recorded
        on the wire and replayed from elsewhere cannot push a party's own out."""
        with lock:
            if conn not in pending or ephemeral in hellos:  # evicted already, or a replay
                return
            source = pending[conn]
            same = [c for c, (k, _) in proven.items() if k == key]
            if len(same) >= MAX_PROVEN_PER_KEY:
                older = [c for c in same if proven[c][1] == source]
                if not older:
                    return  # left with the strangers, as before it was proven
                del proven[older[0]]
                with contextlib.suppress(OSError):
                    older[0].shutdown(socket.SHUT_RDWR)
            hellos.add(ephemeral)
            del pending[conn]
            proven[conn] = key, source

    def serve(conn: socket.socket) -> None:
        link = None
        try:
            conn.settimeout(min(HANDSHAKE_S, max(0.1, deadline - time.monotonic())))
            link = _handshake(conn, me, rank, world, expect, lambda k, e: prove(conn, k, e))
            if admit is not None:
                admitted(conn, link)
            else:
                with lock:  # linked: nobody's to evict from now on
                    pending.pop(conn, None)
                    proven.pop(conn, None)
                place(link)
        except Exception:  # whatever went wrong, nothing of the connection is left behind
            if link is not None and done.get(link.rank) is not link:
                link.close()
            _hang_up(conn)
        finally:
            with lock:
                pending.pop(conn, None)
                proven.pop(conn, None)

    try:
        while True:
            with lock:
                if all(r in done for r in ranks):
                    return dict(done)
            left = deadline - time.monotonic()
            if left <= 0:
                with lock:
                    for link in done.values():
                        link.close()
                    missing = sorted(set(ranks) - set(done))
                raise PartyMissing(
                    f"parties {missing} did not join within the time allowed", tuple(missing)
                )
            listener.settimeout(min(0.2, left))
            try:
                conn, peer = listener.accept()
            except TimeoutError:
                continue
            except OSError:  # out of descriptors, say: wait, do not give up the session
                time.sleep(0.1)
                continue
            with lock:
                pending[conn] = _source(peer[0])
                if len(pending) > MAX_PENDING:
                    # the oldest handshake of the busiest source (the newcomer's counted) gives
                    # way: connections held open and silent, or a flood from one address,
                    # cannot keep a party from another out (one that is answering finishes
                    # within milliseconds)
                    with contextlib.suppress(OSError):
                        _busiest_oldest(pending).shutdown(socket.SHUT_RDWR)
            threading.Thread(target=serve, args=(conn,), daemon=True).start()
    finally:
        with lock:
            over.set()


def _source(host: str) -> str:
    """Whom a connection counts against: its IPv4 address, or its IPv6 /64 (one host is
    commonly given a whole /64); an IPv4-mapped IPv6 address is its IPv4 address."""
    try:
        address = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def _busiest_oldest(pending: dict[socket.socket, str]) -> socket.socket:
    """The oldest pending connection of the address with the most pending (taken out)."""
    busiest, _ = collections.Counter(pending.values()).most_common(1)[0]
    conn = next(c for c, source in pending.items() if source == busiest)
    del pending[conn]
    return conn


def _connect(
    address: str,
    me: Identity,
    rank: int,
    world: int,
    peer: int,
    deadline: float,
    timeout_s: float,
) -> Link:
    """Connects to `peer` at `address` (retrying until the deadline) and runs the handshake."""
    host, port = _split(address)
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise PartyMissing(f"party {peer} at {address} could not be reached in time", (peer,))
        try:
            sock = socket.create_connection((host, port), timeout=min(HANDSHAKE_S, left))
        except OSError:
            time.sleep(min(0.1, max(0.0, left)))
            continue
        try:
            sock.settimeout(min(HANDSHAKE_S, max(0.1, left)))
            link = _handshake(sock, me, rank, world, {peer: me.peers.get(peer, ())})
        except Unanswered:
            sock.close()
            time.sleep(min(0.1, max(0.0, left)))
            continue
        except (LinkRefused, LinkError):
            sock.close()
            raise
        link.set_timeout(timeout_s)
        return link


@dataclass(frozen=True)
class PartyOne:
    """What party 0 tells the dealer of party 1 in a three-party session: where it listens,
    the key it proved (the dealer proves its own to that key alone: its proofs for every party
    1 it deals for, replayable by any of them, kept it out of another task's session, the
    second attacker review of the proofs), and party 0's step timeout (the dealer waits at
    least that long: one with a shorter timeout gave up on a custodian the custodians counted
    in step, and was blamed for it)."""

    host: str
    port: int
    key: bytes
    timeout_s: float

    MAX_TIMEOUT_S: ClassVar[float] = 600.0  # what a party 0 may make the dealer wait per step

    def text(self) -> bytes:
        return json.dumps([self.host, self.port, self.key.hex(), self.timeout_s]).encode()

    @classmethod
    def parse(cls, said: bytes) -> PartyOne:
        """LinkError for anything but party 0's account of party 1."""
        try:
            host, port, key, timeout_s = json.loads(said)
            told = cls(str(host), int(port), bytes.fromhex(key), float(timeout_s))
        except (ValueError, TypeError, AttributeError):
            raise LinkError("party 0 sent no address for party 1") from None
        if not told.timeout_s > 0 or not 0 < told.port < 65536:
            raise LinkError("party 0 sent no address for party 1")
        return told

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def identity(self, me: Identity, zero: bytes) -> Identity:
        """The dealer's identity for its link to this party 1, party 0 having proved `zero`:
        accepting it alone, and only as the custodian 1 of a task whose custodian 0 that is (a
        custodian 0 naming another task's custodian 1 had the dealer prove its key to it:
        third attacker review)."""
        accepted = me.peers.get(1, ())
        if accepted is not None and self.key not in accepted:
            raise LinkError("party 0 named a party 1 this party does not accept")
        if me.pairs is not None and (zero, self.key) not in me.pairs:
            raise LinkError("party 0 named the party 1 of another task")
        return Identity(me.private_key, {**me.peers, 1: {self.key}}, me.pairs)

    def waited(self, own_s: float) -> float:
        """The dealer's step timeout: its own, or party 0's if longer, up to MAX_TIMEOUT_S (an
        honest custodian 0 configured longer is served, not refused)."""
        return max(own_s, min(self.timeout_s, self.MAX_TIMEOUT_S))


def connect(
    address: str,
    me: Identity,
    rank: int,
    world: int,
    *,
    rendezvous_s: float,
    timeout_s: float,
    opening: bytes | None = None,
    admit: Admit | None = None,
    screen: Admit | None = None,
) -> dict[int, Link]:
    """This party's links to every other party of a session of `world` parties (2 or 3) whose
    party 0 listens at `address`. Raises PartyMissing if the others do not all come within
    `rendezvous_s`, LinkRefused if a peer cannot be authenticated. Party 0 may `admit` party 1
    by its opening message (which party 1 gives as `opening`), after `screen` (the cheap part of
    the check, before the opening waits its turn): SessionRefused on party 1 says why it was
    not."""
    deadline = time.monotonic() + rendezvous_s
    if rank == 0:
        try:
            listener = socket.create_server(_split(address))
        except OSError as exc:
            raise LinkError(f"cannot listen at {address}: {exc.strerror}") from None
        with listener:
            links = _accept(
                listener, me, 0, world, range(1, world), deadline, timeout_s, admit, screen
            )
        if world == 3:  # party 1 says where the dealer finds it; party 0 passes it on
            said = links[1].recv(64).decode(errors="replace")
            if not (said.isascii() and said.isdigit() and 0 < int(said) < 65536):
                for link in links.values():
                    link.close()
                raise LinkError(f"party 1 sent no port: {said[:20]!r}", 1)  # its failure
            # and whom, and how long each step may take (PartyOne)
            host, key = links[1].sock.getpeername()[0], links[1].peer_key
            try:
                links[2].send(PartyOne(host, int(said), key, timeout_s).text())
            except LinkError:  # it linked and left (reset): missing, as if it never came
                for link in links.values():
                    link.close()
                raise PartyMissing(
                    "party 2 left before it was told where party 1 is", (2,)
                ) from None
            # and whether it came there: a dealer that links to party 0 alone is missing for
            # both (a custodian says the dealer does not come only when both found it missing)
            if links[1].recv(64) != DEALER_LINKED:
                for link in links.values():
                    link.close()
                raise PartyMissing("party 2 did not link to party 1", (2,))
            links[2].linked_at = time.monotonic()  # there for both only now
        return links
    while True:
        links = {0: _connect(address, me, rank, world, 0, deadline, timeout_s)}
        if opening is None:
            break
        links[0].send(opening)
        try:
            verdict = json.loads(links[0].recv(MAX_OPENING))
        except (LinkError, ValueError):
            verdict = {"ok": False, "error": "party 0 ended the link without a verdict"}
        if isinstance(verdict, dict) and verdict.get("ok") is True:
            break
        links[0].close()
        error = verdict.get("error") if isinstance(verdict, dict) else None
        if error == BUSY and time.monotonic() < deadline:  # strangers ahead: come again
            time.sleep(0.2)
            continue
        raise SessionRefused(str(error or "refused")[:MAX_REASON])
    if world == 3 and rank == 1:
        local = links[0].sock.getsockname()[0]
        with socket.create_server((local, 0)) as listener:
            links[0].send(str(listener.getsockname()[1]).encode())
            try:
                links.update(_accept(listener, me, 1, world, [2], deadline, timeout_s))
            except PartyMissing:
                with contextlib.suppress(LinkError):
                    links[0].send(b"dealer missing")
                links[0].close()
                raise
            links[0].send(DEALER_LINKED)
    elif world == 3 and rank == 2:
        one = PartyOne.parse(links[0].recv(512))
        timeout_s = one.waited(timeout_s)
        links[0].set_timeout(timeout_s)
        # a window of its own to reach party 1, which listens until its own deadline: the
        # dealer's may have run out while party 1 was on its way (final review: an honest
        # dealer was then counted missing by both custodians)
        links[1] = _connect(
            one.address, one.identity(me, links[0].peer_key), rank, world, 1,
            max(deadline, time.monotonic() + HANDSHAKE_S), timeout_s,
        )  # fmt: skip
    return links
