"""Who may open a scoring session with the sponsor's validator, and for which nodes.

The validator (party 0) answers questions about the private validation set, so it must answer
only the oracle, and only about nodes the chain says are waiting to be scored. The oracle signs a
ticket with the key that holds ORACLE_ROLE: the chain id, the contract, the task, the node ids, an
expiry and a random nonce. The validator checks all of it against the chain before it shares a
single row: the signer holds ORACLE_ROLE on that contract, the ticket is fresh and never used
before, every node is pending in that task, and the validator reads each node's spec itself from
the chain and the store (nothing the other party says about a model is believed). It also bounds
nodes per session and sessions per hour, and logs every session, admitted or refused, on the
sponsor's side (`validator/<chainId>/sessions.log`, owner-only).

A ticket names the part of the sponsor's data it is for. The validation part scores pending
nodes. The test part is scored once per task, for the winner only: the validator admits a
test session only when the chain says the task is finalized, the ticket names exactly its
winner, no test score is recorded yet, and this validator has never admitted a test session for
the task before (a marker file it creates when it admits one).
"""

from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from eth_account import Account
from eth_account.messages import encode_defunct

from bountytree.errors import UserError
from bountytree.market.actions import Market, NodeView
from bountytree.models.spec import MAX_SPEC_BYTES, ModelSpec, load_spec
from bountytree.storage.store import get_bytes

TICKET_TTL_S = 600
VALIDATION, TEST = "validation", "test"
PARTS = (VALIDATION, TEST)
MAX_NODES_PER_SESSION = 64
MAX_SESSIONS_PER_HOUR = 120
# How much of the session log's end is read to check nonces and the hourly rate (thousands of
# entries: far more than an hour of sessions, which are sequential and take seconds each).
LOG_TAIL_BYTES = 4 << 20


class Refused(Exception):
    """The validator refuses the session; the message says why (it is logged and sent back)."""


@dataclass(frozen=True)
class Ticket:
    chain_id: int
    contract: str
    task: int
    nodes: tuple[int, ...]
    expires: int
    nonce: str
    part: str = VALIDATION

    def message(self) -> bytes:
        return json.dumps(
            {**asdict(self), "nodes": list(self.nodes)}, sort_keys=True, separators=(",", ":")
        ).encode()


@dataclass(frozen=True)
class Admitted:
    """What the validator admitted: which part of its data, and each node's spec."""

    part: str
    models: list[tuple[int, ModelSpec]]


def issue(
    market: Market,
    task_id: int,
    node_ids: list[int],
    now: float | None = None,
    part: str = VALIDATION,
) -> dict:
    """A signed ticket for one session, from the oracle's own account."""
    ticket = Ticket(
        market.chain.chain_id,
        market.tree.address,
        task_id,
        tuple(node_ids),
        int((now or time.time()) + TICKET_TTL_S),
        secrets.token_hex(16),
        part,
    )
    signed = Account.sign_message(encode_defunct(ticket.message()), market.chain.account.key)
    return {
        "ticket": {**asdict(ticket), "nodes": list(ticket.nodes)},
        "signature": signed.signature.hex(),
    }


class Gate:
    """The validator's side: admits a session's header or raises Refused, logging either way."""

    def __init__(
        self, market: Market, task_id: int, log_path: Path, parts: tuple[str, ...] = (VALIDATION,)
    ):
        self.market = market
        self.task_id = task_id
        self.log_path = Path(log_path)
        self.parts = parts  # the parts of the sponsor's data this validator holds
        # Created when a test session is admitted: the test part answers once per task.
        self.test_marker = self.log_path.parent / "test-sessions" / f"task-{task_id}"

    def admit(self, header: dict, now: float | None = None) -> Admitted:
        now = time.time() if now is None else now
        signer = None
        try:
            ticket, signer = self._verify(header, now)
            if ticket.part == TEST:
                models = self._winner(ticket)
                self._claim_test_session()
            else:
                models = self._models(ticket)
        except Refused as exc:
            self._log(now, signer, header, f"refused: {exc}")
            raise
        self._log(now, signer, header, "admitted", nonce=ticket.nonce)
        return Admitted(ticket.part, models)

    def _verify(self, header: dict, now: float) -> tuple[Ticket, str]:
        try:
            raw = header["ticket"]
            ticket = Ticket(
                int(raw["chain_id"]),
                str(raw["contract"]),
                int(raw["task"]),
                tuple(int(n) for n in raw["nodes"]),
                int(raw["expires"]),
                str(raw["nonce"]),
                str(raw.get("part", VALIDATION)),
            )
            signer = Account.recover_message(
                encode_defunct(ticket.message()), signature=header["signature"]
            )
        except Exception as exc:  # anything malformed from a stranger is a refusal, never a crash
            raise Refused(f"no valid signed ticket ({type(exc).__name__})") from None
        chain = self.market.chain
        if (
            ticket.chain_id != chain.chain_id
            or ticket.contract.lower() != self.market.tree.address.lower()
        ):
            raise Refused(
                f"ticket for chain {ticket.chain_id} contract {ticket.contract}, not this deployment"
            )
        role = self.market.tree.functions.ORACLE_ROLE().call()
        if not self.market.tree.functions.hasRole(role, signer).call():
            raise Refused(f"{signer} does not hold ORACLE_ROLE")
        if ticket.task != self.task_id:
            raise Refused(f"this validator serves task {self.task_id}, not task {ticket.task}")
        if ticket.part not in PARTS:
            raise Refused(f"no part {ticket.part[:40]!r}: a session scores {' or '.join(PARTS)}")
        if ticket.part not in self.parts:
            raise Refused(f"this validator holds no {ticket.part} part for task {self.task_id}")
        if not now < ticket.expires <= now + TICKET_TTL_S:
            raise Refused("ticket expired or valid for too long")
        if not 1 <= len(ticket.nodes) <= MAX_NODES_PER_SESSION or len(set(ticket.nodes)) != len(
            ticket.nodes
        ):
            raise Refused(f"a session scores 1 to {MAX_NODES_PER_SESSION} distinct nodes")
        past = self._recent(now)
        if any(entry.get("nonce") == ticket.nonce for entry in past):
            raise Refused("ticket already used")
        if sum(1 for entry in past if entry.get("outcome") == "admitted") >= MAX_SESSIONS_PER_HOUR:
            raise Refused(f"more than {MAX_SESSIONS_PER_HOUR} sessions in the last hour")
        return ticket, signer

    def _models(self, ticket: Ticket) -> list[tuple[int, ModelSpec]]:
        """Each node's spec as the chain and the store say, for pending nodes of the task only."""
        nodes = self.market.nodes(self.task_id)
        out = []
        for node_id in ticket.nodes:
            node = nodes.get(node_id)
            if node is None or node.status != "pending":
                raise Refused(f"node {node_id} is not pending in task {self.task_id}")
            arch = node
            while arch.parent_id:
                arch = nodes[arch.parent_id]
            out.append((node_id, self._spec(arch)))
        return out

    def _winner(self, ticket: Ticket) -> list[tuple[int, ModelSpec]]:
        """The test part: the finalized task's winner only, before any test score is recorded."""
        task = self.market.task(self.task_id, with_info=False)
        if not task.finalized or not task.winner:
            raise Refused(f"task {self.task_id} has no winner yet: the test part waits for one")
        if ticket.nodes != (task.winner,):
            raise Refused(f"the test part scores task {self.task_id}'s winner {task.winner} only")
        if self.market.test_score(self.task_id) is not None:
            raise Refused(f"task {self.task_id}'s test score is already recorded")
        nodes = self.market.nodes(self.task_id)
        arch = nodes[task.winner]
        while arch.parent_id:
            arch = nodes[arch.parent_id]
        return [(task.winner, self._spec(arch))]

    def _claim_test_session(self) -> None:
        self.test_marker.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            os.close(os.open(self.test_marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            raise Refused(f"the test part of task {self.task_id} was already scored once") from None

    def _spec(self, arch: NodeView) -> ModelSpec:
        try:
            return load_spec(
                get_bytes(self.market.store, arch.cid, MAX_SPEC_BYTES), f"spec of node {arch.id}"
            )
        except UserError as exc:
            raise Refused(str(exc)) from None

    def _recent(self, now: float) -> list[dict]:
        """Entries of the last hour (a ticket lives TICKET_TTL_S, the rate is per hour), read from
        the log's tail only, so a long log costs nothing."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(max(0, f.seek(0, os.SEEK_END) - LOG_TAIL_BYTES))
                lines = f.read().splitlines()
        except FileNotFoundError:
            return []
        out = []
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # the first line of the tail may be cut
            if (
                isinstance(entry, dict)
                and isinstance(entry.get("at"), (int, float))
                and entry["at"] > now - 3600
            ):
                out.append(entry)
        return out

    def _log(
        self, now: float, signer: str | None, header: dict, outcome: str, nonce: str | None = None
    ) -> None:
        ticket = header.get("ticket") if isinstance(header, dict) else None
        nodes = ticket.get("nodes") if isinstance(ticket, dict) else None
        if not (isinstance(nodes, list) and len(nodes) <= MAX_NODES_PER_SESSION):
            nodes = None  # a stranger's junk is not copied into the log
        part = ticket.get("part", VALIDATION) if isinstance(ticket, dict) else None
        entry = {
            "at": now,
            "signer": signer,
            "task": self.task_id,
            "part": part if part in PARTS else None,
            "nodes": nodes,
            "outcome": outcome,
        }
        if nonce:
            entry["nonce"] = nonce
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a") as f:
            f.write(json.dumps(entry) + "\n")
