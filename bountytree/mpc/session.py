"""Joining a CrypTen computation over the parties' authenticated, encrypted links.

A private session has three parties: two that compute (ranks 0 and 1) and a dealer (rank 2)
that only deals correlated randomness; each proves the X25519 key the chain records for it. The
public-weights oracle's session has two: the sponsor's validator (rank 0, which also deals:
CrypTen's trusted first party) and the oracle's model party (rank 1), which proves a fresh key
that its signed ticket names; the validator admits it by that ticket before anything else is
said. Either way the parties may be on different machines, nothing crosses in the clear, and a
party that cannot make its links secure refuses to start, in one line (links.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bountytree.errors import UserError

from .crypten_import import crypten, torch
from .links import (
    HANDSHAKE_S,
    Admit,
    Identity,
    LinkError,
    LinkRefused,
    OverBudget,
    PartyMissing,
    PeerEnded,
    SessionRefused,
    connect,
    set_budget,
)

if TYPE_CHECKING:
    from .blame import Ending

COMPUTING_PARTIES = 2
DEALER_RANK = COMPUTING_PARTIES

__all__ = [
    "Identity",
    "LinkError",
    "LinkRefused",
    "OverBudget",
    "PartyMissing",
    "PeerEnded",
    "SessionRefused",
    "ending",
    "join",
    "leave",
    "send_json",
]


def join(
    address: str,
    rank: int,
    identity: Identity,
    *,
    dealer: bool = False,
    timeout_s: float = 120,
    rendezvous_s: float | None = None,
    opening: bytes | None = None,
    admit: Admit | None = None,
    screen: Admit | None = None,
    budget_s: float | None = None,
) -> None:
    """Joins the session at `address` (host:port; rank 0 listens there) as `rank`, proving
    `identity`'s key. With a dealer, multiplication triples come from rank 2 (CrypTen's trusted
    third party); without, from rank 0 (trusted first party). Every step may take `timeout_s`;
    the others may take `rendezvous_s` (default: the same) to join, after which PartyMissing.
    Rank 1 may open with a message that rank 0 must `admit` (SessionRefused if it does not),
    after `screen` has passed it, before it waits its turn (links.connect). With `budget_s`,
    the whole session, from now, may take that long (links.OverBudget past it)."""
    from . import dealer as dealing
    from . import randomness
    from .communicator import LinkCommunicator

    optional = (s for s in (rendezvous_s, budget_s) if s is not None)
    if timeout_s <= 0 or any(s <= 0 for s in optional):
        raise UserError("a session's timeouts must be positive numbers of seconds")
    set_budget(budget_s)
    if dealer and rank != 1:  # the parties that work out answers' sizes
        dealing.warm_shapes()
    links = connect(
        address,
        identity,
        rank,
        COMPUTING_PARTIES + dealer,
        rendezvous_s=rendezvous_s or timeout_s,
        timeout_s=timeout_s,
        opening=opening,
        admit=admit,
        screen=screen,
    )
    if dealer and rank < COMPUTING_PARTIES:
        # A computing party waits on the other a little longer than on the dealer: the dealer
        # answers party 0 alone, so when it goes silent party 1 waits on party 0, which must be
        # able to tell it so before party 1 gives up (dealer_failed)
        links[1 - rank].set_timeout(timeout_s + HANDSHAKE_S)
    torch.set_num_threads(1)
    crypten.cfg.mpc.provider = "TTP" if dealer else "TFP"
    randomness.install()
    if dealer:
        dealing.install()
    LinkCommunicator.pending = (rank, links)
    # crypten.communicator's functions look the class up by this name at each call
    crypten.communicator.DistributedCommunicator = LinkCommunicator
    crypten.init()
    if rank < COMPUTING_PARTIES:
        randomness.share_keys(rank)  # before anything is drawn


def ending(exc: LinkError, rank: int) -> Ending:
    """How this computing party's session, which ended on a link, ended: whether the dealer
    failed it, and whether it ran over its budget otherwise. The two custodians exchange last
    words and apply one rule to both (blame.py)."""
    from . import blame
    from .communicator import LinkCommunicator

    comm = LinkCommunicator.instance
    if comm is None or DEALER_RANK not in comm.links:
        return blame.Ending()
    timeout = comm.links[DEALER_RANK].timeout_s
    return blame.exchange(comm.links, rank, exc, DEALER_RANK, timeout)


def leave() -> None:
    """Leaves the session (with a dealer, rank 0 first tells it the session is over)."""
    from crypten.communicator.distributed_communicator import DistributedCommunicator

    if crypten.mpc.ttp_required():
        from . import dealer as dealing

        dealing.finish()
    crypten.uninit()
    crypten.communicator.DistributedCommunicator = DistributedCommunicator
    set_budget(None)


MAX_HEADER = 8 << 20


def send_bytes(raw: bytes | None, src: int, max_bytes: int) -> bytes:
    """Broadcasts bytes from `src` to the computing parties, at most `max_bytes` of them (the
    receivers refuse a larger size before allocating); each returns them."""
    comm = crypten.communicator.get()
    me = comm.get_rank()
    data = raw if me == src and raw is not None else b""
    size = torch.tensor([len(data)], dtype=torch.int64)
    comm.broadcast(size, src)
    n = int(size.item())
    if not 0 <= n <= max_bytes:
        raise SessionRefused(f"{n} bytes from party {src}, at most {max_bytes} expected")
    if n == 0:
        return b""
    buf = (
        torch.frombuffer(bytearray(data), dtype=torch.uint8)
        if me == src
        else torch.empty(n, dtype=torch.uint8)
    )
    comm.broadcast(buf, src)
    return bytes(buf.numpy())


def send_json(obj: dict[str, Any] | None, src: int) -> dict[str, Any]:
    """Broadcasts a JSON object from `src` to the computing parties; each returns it. What the
    parties say to each other outside the computation (a ticket, a job, an answer): JSON in a
    uint8 tensor, never a pickle."""
    import json

    raw = json.dumps(obj).encode() if obj is not None else None
    try:
        value = json.loads(send_bytes(raw, src, MAX_HEADER).decode())
    except SessionRefused as exc:
        raise SessionRefused(f"header: {exc}") from None
    except (ValueError, RecursionError):  # UnicodeDecodeError included
        raise SessionRefused(f"party {src} sent a header that is not JSON") from None
    if not isinstance(value, dict):
        raise SessionRefused(f"party {src} sent a header that is not a JSON object")
    return value
