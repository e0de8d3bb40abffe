"""CrypTen's communicator over the session's authenticated, encrypted links (links.py), in place
of torch.distributed's gloo.

Ranks 0 and 1 compute, rank 2 deals. Groups are tuples of ranks: `main_group` the two computing
parties, `ttp_group` all three, `ttp_comm_group` party 0 and the dealer (the names CrypTen's
dealer code reads). A collective is its point-to-point messages, sent to each member in rank
order and received from each in rank order; each link is one ordered stream, so the parties'
identical sequence of operations pairs every send with its receive. Tensors travel as their raw
bytes and are received into a tensor the receiver allocated itself (its own shape and dtype):
nothing a peer sends decides what is allocated or what code runs, and objects are never
pickled (send_obj and friends refuse).
"""

from __future__ import annotations

from typing import Any

from torch.distributed import ReduceOp

from .crypten_import import crypten, torch
from .links import Link, LinkError

MAIN_GROUP = (0, 1)
TTP_GROUP = (0, 1, 2)
TTP_COMM_GROUP = (0, 2)


class _Done:
    """The handle of an operation that completed when it was issued."""

    def is_completed(self) -> bool:
        return True

    def wait(self) -> None:
        return None


class _Pending:
    """The handle of a receive that happens when it is waited for (links are ordered streams,
    so receiving later gets the same bytes)."""

    def __init__(self, link: Link, tensor: torch.Tensor):
        self.link, self.tensor, self.done = link, tensor, False

    def is_completed(self) -> bool:
        return self.done

    def wait(self) -> None:
        if not self.done:
            _recv_into(self.link, self.tensor)
            self.done = True


def _bytes(tensor: torch.Tensor) -> memoryview:
    return tensor.detach().contiguous().numpy().data.cast("B")


def _recv_into(link: Link, tensor: torch.Tensor) -> None:
    if not tensor.is_contiguous():
        raise LinkError("a receive into a tensor that is not contiguous")
    link.recv_into(tensor.detach().numpy().data.cast("B"))


class LinkCommunicator(crypten.communicator.Communicator):
    """One session's communicator; `session.join` sets `links` and `rank` before crypten.init
    builds it."""

    BYTES_PER_ELEMENT = 8
    instance: LinkCommunicator | None = None
    pending: tuple[int, dict[int, Link]] | None = None  # (rank, links) for the next initialize

    def __init__(self, rank: int, links: dict[int, Link]):
        self.rank, self.links = rank, links
        self.world_size = len(MAIN_GROUP)
        self.main_group, self.ttp_group, self.ttp_comm_group = MAIN_GROUP, TTP_GROUP, TTP_COMM_GROUP
        self.ttp_initialized = len(links) == len(TTP_GROUP) - 1  # a dealer takes part
        self._name = f"rank{rank}"
        self.reset_communication_stats()

    # -- lifecycle (the interface crypten.communicator's module functions call) -------------

    @classmethod
    def initialize(cls, rank: int = 0, world_size: int = 0, init_ttp: bool = False) -> None:
        if cls.pending is None:
            raise RuntimeError("join a session (bountytree.mpc.session.join) before crypten.init")
        me, links = cls.pending
        cls.pending = None
        cls.instance = cls(me, links)

    @classmethod
    def is_initialized(cls) -> bool:
        return cls.instance is not None

    @classmethod
    def get(cls) -> LinkCommunicator | None:
        return cls.instance

    @classmethod
    def shutdown(cls) -> None:
        if cls.instance is not None:
            for link in cls.instance.links.values():
                link.close()
        cls.instance = None

    # -- point to point ---------------------------------------------------------------------

    def _link(self, rank: int) -> Link:
        try:
            return self.links[rank]
        except KeyError:
            raise LinkError(f"party {self.rank} has no link to party {rank}") from None

    def send(self, tensor: torch.Tensor, dst: int) -> None:
        self._link(dst).send(_bytes(tensor))

    def recv(self, tensor: torch.Tensor, src: int | None = None) -> torch.Tensor:
        if src is None:
            raise LinkError("a receive must name its sender")
        result = torch.empty_like(tensor).contiguous()
        _recv_into(self._link(src), result)
        return result

    def isend(self, tensor: torch.Tensor, dst: int) -> _Done:
        self.send(tensor, dst)
        return _Done()

    def irecv(self, tensor: torch.Tensor, src: int | None = None) -> _Pending:
        if src is None:
            raise LinkError("a receive must name its sender")
        return _Pending(self._link(src), tensor)

    # -- collectives ------------------------------------------------------------------------

    def _others(self, group: tuple[int, ...] | None) -> list[int]:
        return [r for r in (group or self.main_group) if r != self.rank]

    def broadcast(self, input: Any, src: int, group: Any = None, batched: bool = False) -> Any:
        tensors = input if batched else [input]
        for tensor in tensors:
            if self.rank == src:
                for other in self._others(group):
                    self.send(tensor, other)
            else:
                _recv_into(self._link(src), tensor.data)
        return input

    def barrier(self, group: Any = None) -> None:
        for other in self._others(group):
            self._link(other).send(b"")
        for other in self._others(group):
            self._link(other).recv_into(bytearray())

    def gather(self, tensor: torch.Tensor, dst: int) -> list[torch.Tensor | None]:
        if self.rank != dst:
            self.send(tensor, dst)
            return [None]
        return [tensor.clone() if r == dst else self.recv(tensor, r) for r in self.main_group]

    def all_gather(self, tensor: torch.Tensor) -> list[torch.Tensor]:
        for other in self._others(None):
            self.send(tensor, other)
        return [tensor.clone() if r == self.rank else self.recv(tensor, r) for r in self.main_group]

    @staticmethod
    def _combine(tensors: list[torch.Tensor], op: Any) -> torch.Tensor:
        result = tensors[0].clone()
        for t in tensors[1:]:
            if op == ReduceOp.SUM:
                result += t  # int64 wraps: the ring Z/2^64
            elif op == ReduceOp.BXOR:
                result ^= t
            else:
                raise LinkError(f"reduce operation {op} is not supported")
        return result

    def _reduce_one(self, tensor: torch.Tensor, dst: int | None, op: Any) -> torch.Tensor | None:
        gathered = self.all_gather(tensor) if dst is None else self.gather(tensor, dst)
        if dst is not None and self.rank != dst:
            return None
        return self._combine([t for t in gathered if t is not None], op)

    def reduce(self, input: Any, dst: int, op: Any = ReduceOp.SUM, batched: bool = False) -> Any:
        if batched:
            results = [self._reduce_one(t, dst, op) for t in input]
            return results if self.rank == dst else None
        return self._reduce_one(input, dst, op)

    def all_reduce(self, input: Any, op: Any = ReduceOp.SUM, batched: bool = False) -> Any:
        if batched:
            return [self._reduce_one(t, None, op) for t in input]
        return self._reduce_one(input, None, op)

    def scatter(
        self, scatter_list: list[torch.Tensor], src: int, size: Any = None, device: Any = None
    ) -> torch.Tensor:
        if self.rank == src:
            for other in self._others(None):
                self.send(scatter_list[other], other)
            return scatter_list[self.rank].clone()
        if size is None:
            size = scatter_list[self.rank].size()
        result = torch.empty(size=size, dtype=torch.long)
        _recv_into(self._link(src), result)
        return result

    # -- objects: never pickled -----------------------------------------------------------

    def send_obj(self, obj: Any, dst: int, group: Any = None) -> None:
        raise LinkError("objects are not sent over a private session's links (no pickles)")

    def recv_obj(self, src: int, group: Any = None) -> Any:
        raise LinkError("objects are not received over a private session's links (no pickles)")

    def broadcast_obj(self, obj: Any, src: int, group: Any = None) -> Any:
        raise LinkError("objects are not broadcast over a private session's links (no pickles)")

    # -- who is who -------------------------------------------------------------------------

    def get_world_size(self) -> int:
        return self.world_size

    def get_rank(self) -> int:
        return self.rank

    def get_ttp_rank(self) -> int:
        return len(MAIN_GROUP)

    def set_name(self, name: str) -> None:
        self._name = name

    def get_name(self) -> str:
        return self._name

    def get_distributed_backend(self) -> str:
        return "bountytree-links"
