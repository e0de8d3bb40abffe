"""Joining a CrypTen computation over torch.distributed (gloo).

Two computing parties (ranks 0 and 1) and, with a dealer, a third process (rank 2) that only
deals correlated randomness. gloo is plain TCP and CrypTen sends its seeds over it in the
clear. A private task's session is therefore confined to this machine (`local_only`): an
address that is not a loopback address is refused before anything is sent, since links between
machines need an authenticated, encrypted tunnel, which the project does not provide yet. The
public-weights oracle session may span two hosts (docs/private-models.md says what an
eavesdropper on that link sees).
"""

from __future__ import annotations

import ipaddress
import os
from datetime import timedelta
from typing import Any

from bountytree.errors import UserError

from .crypten_import import crypten, torch

COMPUTING_PARTIES = 2
DEALER_RANK = COMPUTING_PARTIES


class InsecureLink(UserError):
    """A session address another machine could reach: its traffic would travel in the clear."""


class PartyMissing(Exception):
    """The other parties did not all join within the timeout: nobody came, not a failure of
    whoever waited (a validator waiting for an oracle waits again)."""


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


def join(
    address: str,
    rank: int,
    *,
    dealer: bool = False,
    local_only: bool = False,
    timeout_s: float = 120,
    rendezvous_s: float | None = None,
) -> None:
    """Joins the session at `address` (host:port; rank 0 listens there) as `rank`. With a dealer,
    multiplication triples come from rank 2 (CrypTen's trusted third party) instead of rank 0
    (trusted first party). Every step of the session may take `timeout_s`; the others may take
    `rendezvous_s` (default: the same) to join, after which rank 0 raises PartyMissing."""
    if timeout_s <= 0 or (rendezvous_s is not None and rendezvous_s <= 0):
        raise UserError("a session's timeouts must be positive numbers of seconds")
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
    crypten.cfg.mpc.provider = "TTP" if dealer else "TFP"
    if dealer:
        from . import dealer as dealing

        dealing.install()
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
        crypten.init()  # the dealer (rank 2) joins the groups; dealer.serve answers
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
    """Leaves the session (rank 0 first tells the dealer the session is over)."""
    if crypten.mpc.ttp_required():
        from . import dealer as dealing

        dealing.finish()
    crypten.uninit()


MAX_HEADER = 8 << 20


class SessionRefused(Exception):
    """The other party refused the session (wrong task, invalid spec, another job, …)."""


def send_json(obj: dict[str, Any] | None, src: int) -> dict[str, Any]:
    """Broadcasts a JSON object from `src` to the computing parties; each returns it. What the
    parties say to each other outside the computation (a ticket, a job, an answer): JSON in a
    uint8 tensor, never a pickle."""
    import json

    import torch.distributed as dist

    group = crypten.communicator.get().main_group
    me = crypten.communicator.get().get_rank()
    raw = json.dumps(obj).encode() if me == src else b""
    size = torch.tensor([len(raw)], dtype=torch.int64)
    dist.broadcast(size, src, group=group)
    n = int(size.item())
    if n > MAX_HEADER:
        raise SessionRefused(f"header of {n} bytes from party {src}")
    buf = (
        torch.frombuffer(bytearray(raw), dtype=torch.uint8)
        if me == src
        else torch.empty(n, dtype=torch.uint8)
    )
    dist.broadcast(buf, src, group=group)
    try:
        value = json.loads(bytes(buf.numpy()).decode())
    except (ValueError, RecursionError):  # UnicodeDecodeError included
        raise SessionRefused(f"party {src} sent a header that is not JSON") from None
    if not isinstance(value, dict):
        raise SessionRefused(f"party {src} sent a header that is not a JSON object")
    return value
