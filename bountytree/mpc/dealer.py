"""The dealer: a third process that deals the correlated randomness of a two-party computation
(CrypTen's trusted third party), speaking JSON instead of pickle.

Each computing party shares a ChaCha20 stream with the dealer (a 256-bit key, randomness.py),
so for a triple (a, b, c = a·b) both draw their shares of a and b locally and the dealer sends
party 0 its share of c alone. Both custodians send each request, and the dealer answers only
when they agree: party 0 alone cannot make it draw from party 1's stream for a request of its
choosing (a `wraps` where party 1 drew a triple would hand party 0 party 1's mask). The
dealer therefore knows every triple, but triples do not depend on the data: what it learns of a
computation is the sequence of operations and their shapes. What it must not do is share its
knowledge with a custodian (the non-collusion assumption, docs/private-models.md).

CrypTen's own dealer receives each request as a pickle from party 0, and party 0 the answer's
size as a pickle: a hostile party could run code on the other. Here a request is a JSON object
checked against a closed list (function, operation, keyword arguments, sizes with at most
MAX_ELEMENTS elements, an answer of at most MAX_ELEMENTS costing at most MAX_WORK
multiply-adds, both worked out on shapes alone before anything is computed). Party 0 works out
the answer's size itself, from its own request, as party 1 does: nothing the dealer sends
decides what party 0 allocates.
"""

from __future__ import annotations

import collections
import contextlib
import json
import math
import struct
import time
from typing import Any, ClassVar

from . import randomness
from .crypten_import import crypten, torch
from .links import HANDSHAKE_S, MAX_NOTES, Link, LinkError

MAX_REQUEST = 1 << 16
MAX_ELEMENTS = 1 << 24  # per tensor a request names or its answer holds (128 MiB of int64)
MAX_WORK = 1 << 32  # multiply-adds one answer may cost the dealer
FUNCTIONS = {"additive", "square", "binary", "wraps", "B2A"}
OPERATIONS = {"mul", "matmul", "conv1d", "conv2d", "conv_transpose1d", "conv_transpose2d"}
KEYWORDS = {"stride", "padding", "dilation", "groups", "output_padding"}
END = "end"
RECALLED = 8  # requests a computing party recalls the lags of (blame.py)
NOTE = struct.Struct(">Qd")  # party 1's note to party 0: a request's number and its lag


class Requests:
    """This computing party's requests to the dealer in this session (one per process), what its
    last word says when a session fails (blame.py). Request 0 is the streams' keys, asked for
    by joining. For each of the last RECALLED: its lag, the seconds from the last message this
    party exchanged with the other custodian to asking it (measured from a moment both share,
    so that the two custodians' lags compare, whenever each writes its word); and the last
    request whose answer came, and when (party 0 alone receives answers; either, its key).
    A request is asked when CrypTen's provider method starts, on both custodians (party 1
    sends it then; party 0 after drawing its masks and working out the answer's size), so that
    neither party's lag counts work the other's does not.

    Over the whole session, for a session that runs over its budget: the sum of this party's
    lags (`lagged`); party 0's seconds from starting to send each request to the dealer to its
    answer, from asking for its key to the barrier after the keys, and from party 1's link to
    the dealer's link to both (`waited`); party 1's
    seconds blocked sending its requests to the dealer (`blocked`: a dealer that does not read
    them). An honest dealer cannot answer before party 1 asks, so party 0's wait holds party
    1's lateness on each request: party 1 notes each lag to party 0 as it asks (Link.note), and
    party 0 pairs it with its own, up to when it sent the same request (after its own work on
    it: party 1 asking later than party 0 asked, but before it sent, delayed nobody):
    `excused`, the sum of how much later party 1 asked; `paired`, the sum of the lags it paired.
    The dealer's part of the session is party 0's wait and party 1's blocked sends, less what
    was excused, less party 1's lags party 0 never paired (blame.py)."""

    PAIRING = MAX_NOTES  # unpaired lags each side keeps: party 1 may be that many notes ahead

    rank: ClassVar[int] = 0
    lags: ClassVar[collections.OrderedDict[int, float]] = collections.OrderedDict()
    answered: ClassVar[int] = -1
    answered_at: ClassVar[float] = 0.0
    sent_at: ClassVar[float] = 0.0  # when the last request was asked
    began: ClassVar[float] = 0.0  # when both custodians were linked
    lagged: ClassVar[float] = 0.0
    waited: ClassVar[float] = 0.0
    blocked: ClassVar[float] = 0.0
    excused: ClassVar[float] = 0.0
    paired: ClassVar[float] = 0.0
    to_dealer_at: ClassVar[float | None] = None  # party 0: the unanswered request went out then
    asked_from: ClassVar[float] = 0.0  # party 0: the moment its last request's lag counts from
    # party 0: its own lags and party 1's notes not yet paired, by request
    _mine: ClassVar[collections.OrderedDict[int, float]] = collections.OrderedDict()
    _theirs: ClassVar[collections.OrderedDict[int, float]] = collections.OrderedDict()

    @classmethod
    def start(cls, peer: Link, rank: int, dealer: Link) -> None:
        cls.rank, cls.lags = rank, collections.OrderedDict()
        cls.answered, cls.answered_at = -1, time.monotonic()
        cls.to_dealer_at = None
        cls.lagged = cls.waited = cls.blocked = cls.excused = cls.paired = 0.0
        # The session counts from when both custodians were linked, and party 0's wait on the
        # dealer from then to when it was linked to both, less a handshake's allowance (a
        # dealer that came at the end of its rendezvous window used that much of the budget
        # unnamed; an honest one's session process starts cold, seconds of CPU before it links,
        # and party 1 passes its word on: attacker review); a custodian's own lateness to the
        # rendezvous is before it, and counts for nobody
        cls.began = peer.linked_at
        if rank == 0:
            cls.waited = max(0.0, dealer.linked_at - peer.linked_at - HANDSHAKE_S)
        cls._mine, cls._theirs = collections.OrderedDict(), collections.OrderedDict()
        peer.on_note = cls.heard if rank == 0 else None
        cls._note(0, peer)
        # party 0 waits on the dealer from here to the barrier after the keys (a dealer that
        # held them used to be charged nothing for it)
        if rank == 0:
            cls.note_sent()

    @classmethod
    def asked(cls) -> int:
        return next(reversed(cls.lags), 0)

    @classmethod
    def note_asked(cls, peer: Link) -> None:
        cls._note(cls.asked() + 1, peer)

    @classmethod
    def _note(cls, number: int, peer: Link) -> None:
        cls.sent_at = time.monotonic()
        lag = cls.lags[number] = cls.sent_at - peer.last_active
        cls.lagged += lag
        if len(cls.lags) > RECALLED:
            cls.lags.popitem(last=False)
        if cls.rank == 1:
            peer.note(NOTE.pack(number, lag))
        else:
            cls.asked_from = peer.last_active

    @classmethod
    def heard(cls, note: bytes) -> None:
        """Party 0: party 1's note of its lag on a request (anything else is ignored)."""
        if len(note) != NOTE.size:
            return
        number, lag = NOTE.unpack(note)
        if math.isfinite(lag) and 0 <= lag < 1e9:
            cls._pair(cls._theirs, number, lag)

    @classmethod
    def _pair(cls, side: collections.OrderedDict[int, float], number: int, lag: float) -> None:
        side[number] = lag
        if len(side) > cls.PAIRING:
            side.popitem(last=False)
        if number in cls._mine and number in cls._theirs:
            mine, theirs = cls._mine.pop(number), cls._theirs.pop(number)
            cls.excused += max(0.0, theirs - mine)
            cls.paired += theirs

    @classmethod
    def note_sent(cls) -> None:
        """Party 0 sends the request to the dealer (after its own work on it)."""
        cls.to_dealer_at = time.monotonic()
        cls._pair(cls._mine, cls.asked(), cls.to_dealer_at - cls.asked_from)

    @classmethod
    def note_answered(cls) -> None:
        cls.answered, cls.answered_at = cls.asked(), time.monotonic()
        cls.waited = cls.waiting(cls.answered_at)
        cls.to_dealer_at = None

    @classmethod
    def waiting(cls, now: float) -> float:
        """Party 0's wait on the dealer so far, the unanswered request's included."""
        return cls.waited + cls.unanswered(now)

    @classmethod
    def unanswered(cls, now: float) -> float:
        """Party 0's wait on the unanswered request so far (0: none is)."""
        return 0.0 if cls.to_dealer_at is None else now - cls.to_dealer_at


class DealerError(Exception):
    """A request the dealer refuses (it ends the session)."""


def _ttp():
    from crypten.mpc.provider.ttp_provider import TTPClient, TTPServer

    return TTPClient, TTPServer


def _send_json(obj: Any, dst: int) -> None:
    crypten.comm.get().links[dst].send(json.dumps(obj).encode())


def _recv_json(src: int) -> Any:
    try:
        raw = crypten.comm.get().links[src].recv(MAX_REQUEST)
    except LinkError as exc:
        raise DealerError(str(exc)) from None
    try:
        return json.loads(raw.decode())
    except (ValueError, RecursionError):
        raise DealerError("a message that is not JSON") from None


def _client_generators(self) -> None:
    """A computing party's stream shared with the dealer (replaces CrypTen's torch.Generator,
    whose seed is 32 bits): its 256-bit key comes over the link from the dealer."""
    comm = crypten.comm.get()
    rank = comm.get_rank()
    Requests.start(comm.links[1 - rank], rank, comm.links[comm.get_ttp_rank()])
    self.generator = randomness.receive_key(comm.get_ttp_rank())
    self.generator_cuda = None
    _barrier_after_keys(comm)
    Requests.note_answered()


def _barrier_after_keys(comm) -> None:
    """The barrier that ends the keys (the dealer's `comm.barrier`: it sends to both, then
    receives). Custodian 1 reads the dealer's message before it sends its own to custodian 0,
    so a dealer that holds custodian 1's back holds custodian 0 in its barrier too, a wait on
    the dealer it counts (Requests): sent first, custodian 0 went on, its wait on custodian 1
    counted nowhere, and a dealer that held custodian 1's message past its timeout failed the
    session unnamed (second attacker review of the pairing)."""
    if comm.get_rank() == 0:
        comm.barrier(comm.ttp_group)
        return
    dealer = comm.get_ttp_rank()
    comm.links[dealer].recv_into(bytearray())
    for other in (0, dealer):
        comm.links[other].send(b"")
    comm.links[0].recv_into(bytearray())


def _server_generators(self) -> None:
    """The dealer's streams, one per computing party, each keyed afresh and the key sent to
    that party over its own link."""
    comm = crypten.comm.get()
    self.generators = [randomness.send_key(rank) for rank in comm.main_group]
    self.generators_cuda = [None for _ in comm.main_group]
    comm.barrier(comm.ttp_group)


# CrypTen's provider methods, and the dealer's request each stands for. Party 0 sends the
# request (`_request`); party 1 draws its share locally, and now sends the same request too, so
# the dealer answers only what both custodians ask for, in the same order: party 0 alone cannot
# make the dealer draw from party 1's stream for a request of its choosing (which would hand it
# party 1's masks; found by the attacker review of the links).
ASKED = {
    "generate_additive_triple": "additive",
    "square": "square",
    "generate_binary_triple": "binary",
    "wrap_rng": "wraps",
    "B2A_rng": "B2A",
}


def _message(function: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    return {"function": function, "args": _plain(args), "kwargs": _plain(kwargs)}


def _asked_by_both(function: str, method):
    def call(self, *args, device=None, **kwargs):
        comm = crypten.comm.get()
        Requests.note_asked(comm.links[1 - comm.get_rank()])
        if comm.get_rank() == 1:
            began = time.monotonic()
            try:
                _send_json(_message(function, args, kwargs), comm.get_ttp_rank())
            finally:  # a send the dealer blocked until it failed counts too (attacker review)
                Requests.blocked += time.monotonic() - began
        return method(self, *args, device=device, **kwargs)

    call.__wrapped__ = method  # type: ignore[attr-defined]
    return call


def _plain(value: Any) -> Any:
    """A request's arguments as JSON: sizes and tuples as lists."""
    if isinstance(value, torch.Size | tuple | list):
        return [_plain(v) for v in value]
    return value


def _size(value: Any) -> torch.Size:
    if not isinstance(value, list) or not all(
        isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= MAX_ELEMENTS for n in value
    ):
        raise DealerError(f"not a tensor size: {value!r}")
    if math.prod(value) > MAX_ELEMENTS:
        raise DealerError(f"a size of {math.prod(value)} elements")
    return torch.Size(value)


def _keyword(value: Any) -> int | tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 4096:
        return value
    if isinstance(value, list) and all(isinstance(v, int) and 0 <= v <= 4096 for v in value):
        return tuple(value)
    raise DealerError(f"not a convolution argument: {value!r}")


def warm_shapes() -> None:
    """Works out one answer's size before the session's clocks start (party 0 and the dealer,
    in session.join, before they link; the dealer's falls in the handshake's allowance of
    Requests.start). The first shape worked out on the meta device imports
    some 800 modules (sympy's among them), about 3 s of CPU: inside party 0's first request it
    made party 0 look late to the custodians' last-word rule on a loaded machine (blame.py),
    and it delayed the dealer's first answer."""
    answer_size("additive", [torch.Size([1]), torch.Size([1]), "mul"], {})


def answer_size(function: str, args: list[Any], kwargs: dict[str, Any]) -> torch.Size:
    """The size of the dealer's answer to a parsed request, from shapes alone (meta tensors:
    nothing is allocated); DealerError if it, or the work it costs, exceeds the limits."""
    if function == "additive":
        size0, size1, op = args
        try:
            out = getattr(torch, op)(
                torch.empty(size0, device="meta"), torch.empty(size1, device="meta"), **kwargs
            ).size()
        except (RuntimeError, TypeError, ValueError) as exc:
            raise DealerError(f"an impossible {op}: {str(exc).splitlines()[0]}") from None
        work = math.prod(out)
        if op == "matmul":
            work *= size0[-1] if len(size0) else 1
        elif op.startswith("conv"):  # a kernel's weights per output (per input, transposed)
            work = max(work, math.prod(size0)) * math.prod(size1[1:])
    elif function == "binary":
        try:
            out = torch.broadcast_shapes(*args)
        except RuntimeError:
            raise DealerError("sizes that do not broadcast") from None
        work = math.prod(out)
    else:
        out = args[0]
        work = math.prod(out)
    if math.prod(out) > MAX_ELEMENTS or work > MAX_WORK:
        raise DealerError(f"an answer of {math.prod(out)} elements costing {work} products")
    return torch.Size(out)


def parse_request(message: Any) -> tuple[str, list[Any], dict[str, Any]]:
    """A request as (function, arguments, keyword arguments), or DealerError."""
    if not isinstance(message, dict) or message.get("function") not in FUNCTIONS:
        raise DealerError("an unknown request")
    function, args, kwargs = message["function"], message.get("args"), message.get("kwargs")
    if not isinstance(args, list) or not isinstance(kwargs, dict) or set(kwargs) - KEYWORDS:
        raise DealerError("a request with unknown arguments")
    if function == "additive":
        if len(args) != 3 or args[2] not in OPERATIONS:
            raise DealerError("an unknown operation")
        parsed: list[Any] = [_size(args[0]), _size(args[1]), args[2]]
    else:
        counts = {"square": 1, "binary": 2, "wraps": 1, "B2A": 1}
        if len(args) != counts[function]:
            raise DealerError("a request with the wrong number of sizes")
        parsed = [_size(a) for a in args]
    keywords = {k: _keyword(v) for k, v in kwargs.items()}
    answer_size(function, parsed, keywords)
    return function, parsed, keywords


def _request(self, func_name, device, *args, **kwargs):
    """Party 0's request to the dealer (replaces CrypTen's pickled one)."""
    comm = crypten.comm.get()
    ttp_rank = comm.get_ttp_rank()
    message = _message(func_name, args, kwargs)
    # the answer's size, worked out here from the request (the dealer's word is not taken)
    size = answer_size(*parse_request(json.loads(json.dumps(message))))
    Requests.note_sent()  # before the send: a dealer that reads slowly makes it block
    _send_json(message, ttp_rank)
    result = torch.empty(size, dtype=torch.long)
    comm.broadcast(result, ttp_rank, self.comm_group)
    Requests.note_answered()
    return result


def install() -> None:
    """Makes CrypTen's dealer client speak JSON over the session's links (before crypten.init)."""
    client, _ = _ttp()
    inner = client._TTPClient__TTPClient  # CrypTen's singleton class
    inner.ttp_request = _request
    inner._setup_generators = _client_generators
    from crypten.mpc.provider.ttp_provider import TrustedThirdParty

    for name, function in ASKED.items():
        method = getattr(TrustedThirdParty, name)
        setattr(
            TrustedThirdParty,
            name,
            _asked_by_both(function, getattr(method, "__wrapped__", method)),
        )


def finish() -> None:
    """Both custodians tell the dealer the session is over; CrypTen's own (pickled) goodbye is
    skipped. A dealer already gone is not told: leaving a session it failed (or gave up on)
    raised here, in place of why the session ended."""
    comm = crypten.comm.get()
    if comm.get_rank() in comm.main_group and comm.ttp_initialized:
        with contextlib.suppress(LinkError):
            _send_json(END, comm.get_ttp_rank())
    comm.ttp_initialized = False


def serve() -> int:
    """The dealer's loop (after session.join as rank 2): answers party 0's requests until it
    says the session is over; returns the number of requests answered."""
    _, server_class = _ttp()
    server = object.__new__(server_class)  # its __init__ runs CrypTen's pickled loop
    comm = crypten.comm.get()
    server.ttp_group, server.comm_group, server.device = comm.ttp_group, comm.ttp_comm_group, "cpu"
    _server_generators(server)
    answered = 0
    while True:
        message = _recv_json(0)
        also = _recv_json(1)  # party 1 asks for the same, or the session ends here
        if also != message:
            raise DealerError("the custodians asked for different things")
        if message == END:
            return answered
        function, args, kwargs = parse_request(message)
        result = getattr(server, function)(*args, **kwargs)
        comm.broadcast(result, comm.get_ttp_rank(), server.comm_group)
        answered += 1
