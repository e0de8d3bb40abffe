"""Joining a CrypTen computation.

A private session has three parties: two that compute (ranks 0 and 1) and a dealer (rank 2)
that only deals correlated randomness. They talk over authenticated, encrypted links
(links.py, communicator.py): each party proves the X25519 key the chain records for it, and a
party that cannot make its links secure refuses to start, in one line. The parties may be on
different machines.

The public-weights oracle's session has two parties and no dealer (the sponsor's validator
deals) and runs over torch.distributed's gloo, which is plain TCP with an unauthenticated
rendezvous; docs/threat-model.md says what that exposes and how to run it across hosts.
"""

from __future__ import annotations

import ipaddress
import os
from datetime import timedelta
from typing import Any

from bountytree.errors import UserError

from .crypten_import import crypten, torch
from .links import Identity, LinkRefused, PartyMissing, connect

COMPUTING_PARTIES = 2
DEALER_RANK = COMPUTING_PARTIES

__all__ = ["Identity", "LinkRefused", "PartyMissing", "join", "leave", "send_json"]


class InsecureLink(UserError):
    """A gloo session address another machine could reach: its traffic would travel in the
    clear."""


def check_loopback(address: str) -> None:
    host = address.rsplit(":", 1)[0].strip("[]")
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise InsecureLink(
            f"{address}: an MPC session runs on this machine only (its traffic is not encrypted)"
        )


def _check_timeouts(timeout_s: float, rendezvous_s: float | None) -> None:
    if timeout_s <= 0 or (rendezvous_s is not None and rendezvous_s <= 0):
        raise UserError("a session's timeouts must be positive numbers of seconds")


def join_private(
    address: str,
    rank: int,
    identity: Identity,
    *,
    timeout_s: float = 120,
    rendezvous_s: float | None = None,
) -> None:
    """Joins the private session at `address` (host:port; rank 0 listens there) as `rank`
    (2: the dealer), authenticated as `identity`. Every step may take `timeout_s`; the others
    may take `rendezvous_s` (default: the same) to join, after which PartyMissing. LinkRefused
    if a peer's key is not one `identity` accepts."""
    from . import dealer
    from .communicator import LinkCommunicator

    _check_timeouts(timeout_s, rendezvous_s)
    links = connect(
        address,
        identity,
        rank,
        COMPUTING_PARTIES + 1,
        rendezvous_s=rendezvous_s or timeout_s,
        timeout_s=timeout_s,
    )
    torch.set_num_threads(1)
    crypten.cfg.mpc.provider = "TTP"
    dealer.install()
    LinkCommunicator.pending = (rank, links)
    # crypten.communicator's functions look the class up by this name at each call
    crypten.communicator.DistributedCommunicator = LinkCommunicator
    crypten.init()


def join(
    address: str,
    rank: int,
    *,
    local_only: bool = False,
    timeout_s: float = 120,
    rendezvous_s: float | None = None,
) -> None:
    """Joins the two-party gloo session at `address` (host:port; rank 0 listens there) as
    `rank`; rank 0 deals (CrypTen's trusted first party). `local_only` refuses an address that
    is not a loopback one. Timeouts as in join_private."""
    _check_timeouts(timeout_s, rendezvous_s)
    if local_only:
        check_loopback(address)
        os.environ["GLOO_SOCKET_IFNAME"] = "lo"  # gloo's own listeners on loopback too
    os.environ.update(
        {
            "DISTRIBUTED_BACKEND": "gloo",
            "RENDEZVOUS": f"tcp://{address}",
            "WORLD_SIZE": str(COMPUTING_PARTIES),
            "RANK": str(rank),
        }
    )
    torch.set_num_threads(1)
    crypten.cfg.mpc.provider = "TFP"
    # CrypTen calls init_process_group without a timeout; give it one so a missing party ends
    # the session instead of hanging forever.
    import torch.distributed as dist

    # ... and to the groups CrypTen creates inside it (torch's default there is 30 minutes).
    originals: dict[str, Any] = {
        "init_process_group": dist.init_process_group,
        "new_group": dist.new_group,
    }

    waits = {"init_process_group": rendezvous_s or timeout_s, "new_group": timeout_s}

    def timed(name: str):
        def call(*args, **kwargs):
            if kwargs.get("timeout") is None:
                kwargs["timeout"] = timedelta(seconds=waits[name])
            out = originals[name](*args, **kwargs)
            if name == "init_process_group" and waits[name] != timeout_s:
                # joined: the session's own steps get their own limit (torch is pinned to 2.13,
                # whose gloo groups take a new default timeout this way)
                dist.distributed_c10d._set_pg_timeout(timedelta(seconds=timeout_s))
            return out

        return call

    for name in originals:
        setattr(dist, name, timed(name))
    try:
        crypten.init()
    except dist.DistStoreError as exc:
        # Only an empty rendezvous is "nobody came" ("Timed out ... waiting for clients. 1/2
        # clients joined."); a peer that connected and then stalled is a failed session.
        if "clients joined" in str(exc):
            raise PartyMissing(
                f"not every party joined within {waits['init_process_group']:.0f} s"
            ) from None
        raise
    finally:
        for name, original in originals.items():
            setattr(dist, name, original)


def leave() -> None:
    """Leaves the session (in a private one, rank 0 first tells the dealer it is over)."""
    from crypten.communicator.distributed_communicator import DistributedCommunicator

    if crypten.mpc.ttp_required():
        from . import dealer as dealing

        dealing.finish()
    crypten.uninit()
    crypten.communicator.DistributedCommunicator = DistributedCommunicator


MAX_HEADER = 8 << 20


class SessionRefused(Exception):
    """The other party refused the session (wrong task, invalid spec, another job, …)."""


def send_json(obj: dict[str, Any] | None, src: int) -> dict[str, Any]:
    """Broadcasts a JSON object from `src` to the computing parties; each returns it. What the
    parties say to each other outside the computation (a ticket, a job, an answer): JSON in a
    uint8 tensor, never a pickle."""
    import json

    comm = crypten.communicator.get()
    me = comm.get_rank()
    raw = json.dumps(obj).encode() if me == src else b""
    size = torch.tensor([len(raw)], dtype=torch.int64)
    comm.broadcast(size, src)
    n = int(size.item())
    if n > MAX_HEADER:
        raise SessionRefused(f"header of {n} bytes from party {src}")
    buf = (
        torch.frombuffer(bytearray(raw), dtype=torch.uint8)
        if me == src
        else torch.empty(n, dtype=torch.uint8)
    )
    comm.broadcast(buf, src)
    try:
        value = json.loads(bytes(buf.numpy()).decode())
    except (ValueError, RecursionError):  # UnicodeDecodeError included
        raise SessionRefused(f"party {src} sent a header that is not JSON") from None
    if not isinstance(value, dict):
        raise SessionRefused(f"party {src} sent a header that is not a JSON object")
    return value
