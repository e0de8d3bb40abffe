"""Who may open a scoring session with the sponsor's validator, and for which nodes.

The validator (party 0) answers questions about the private validation set, so it must answer
only the oracle, and only about nodes the chain says are waiting to be scored. The oracle signs a
ticket with the key that holds ORACLE_ROLE: the chain id, the contract, the task, the node ids, an
expiry and a random nonce. The validator checks all of it against the chain before it shares a
single row: the signer holds ORACLE_ROLE on that contract, the ticket is fresh and never used
before, every node is pending in that task, and the validator reads each node's spec itself from
the chain and the store (nothing the other party says about a model is believed: a file its
store lacks it asks of the model party, and takes only if the bytes are the CID the chain
records, `Gate.complete`). It also bounds
nodes per session and sessions per hour, and logs every session, admitted or refused, on the
sponsor's side (`validator/<chainId>/sessions.log`, owner-only: only fields that validated, so a
stranger's junk never fills it).

The validator's memory of used tickets is a store of its own, not the log: one file per admitted
ticket's nonce (`validator/<chainId>/nonces/`), created atomically when the ticket is admitted
and kept an hour (longer than any ticket lives), so a used ticket is refused however much else
was logged, and the hourly limit counts those files. A ticket also names each node's weights
CID, which the validator checks against the chain, and the key of the link it opens: the oracle's
model party proves a fresh X25519 key when it connects (bountytree/mpc/links.py), and the
validator admits a ticket only over the link whose key it names, so a ticket read or copied
opens nothing.

A ticket names the part of the sponsor's data it is for. The validation part scores pending
nodes. The test part is scored once per task, for the winner only: the validator admits a
test session only when the chain says the task is finalized, the ticket names exactly its
winner, no test score is recorded yet, and this validator has never admitted a test session for
the task MAX_TEST_SESSIONS times before (a marker file it creates for each it admits): a session
admitted and then cut off is tried again, a bounded number of times, and the winner's weights
are the same in each, so an honest party learns the same count. One refused before it evaluated
anything (the winner's files missing even from the model party, the store down) gives its
claim back.

Admission is one session at a time, and a linked party waits its turn; what it waits with must
already be the oracle's. So an opening is first *screened*, with nothing a stranger can make slow:
the checks that read no chain, the signature, and whether its signer is among the holders of
ORACLE_ROLE the validator knows from the chain's RoleGranted and RoleRevoked events (read when the
gate opens, from where the last session's read ended, and again at most every ROLE_REFRESH_S
when an unknown signer comes). A stranger signing with keys of its own is refused there, without
waiting for the admission; only then is the ticket admitted in full, with the role checked on
the chain itself. A node that refuses the event queries (one that caps `eth_getLogs`) leaves the
screen to ask `hasRole` of each signer, its answer kept ROLE_REFRESH_S: a stranger's fresh keys
cost a call each, outside the admission, and never a place in its queue.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from eth_account import Account
from eth_account.messages import encode_defunct

from bountytree.errors import UserError
from bountytree.files import atomic_write_json
from bountytree.market.actions import Market, NodeView
from bountytree.models import weights as weights_io
from bountytree.models.spec import MAX_SPEC_BYTES, ModelSpec, load_spec
from bountytree.storage.store import (
    BlockCorrupted,
    BlockMissing,
    StoreError,
    StoreUnavailable,
    cid_of,
    get_bytes,
)

from .kept import KeptFiles

TICKET_TTL_S = 600
VALIDATION, TEST = "validation", "test"
PARTS = (VALIDATION, TEST)
MAX_NODES_PER_SESSION = 64
MAX_SESSIONS_PER_HOUR = 120
# The session log is rotated past this size (one older file kept, `sessions.log.1`): a flood of
# refused connections, each one bounded line, cannot fill the sponsor's disk.
LOG_MAX_BYTES = 4 * 1024 * 1024
NONCE = re.compile(r"^[0-9a-f]{32}$")  # secrets.token_hex(16): also a safe file name
# Test sessions a validator admits per task: the oracle's attempts (one that fails after it was
# admitted, cut off by a network fault, is not lost), and no more.
MAX_TEST_SESSIONS = 3
MEMORY_S = 3600  # how long a used nonce is kept: the rate's window, longer than TICKET_TTL_S
MAX_LOGGED = 200  # characters of a refusal's reason written to the log
# How often, at most, an opening signed by a key not known to hold ORACLE_ROLE makes the
# validator read the role's grants from the chain again (a stranger's fresh keys cost it at most
# one read per this many seconds; an oracle granted the role meanwhile is known by then).
ROLE_REFRESH_S = 5.0
ROLE_SCAN_BLOCKS = 10_000  # blocks per event query (what RPC providers commonly allow)
ROLE_REREAD_BLOCKS = 64  # the last blocks read, read again by the next session (reorgs)
MAX_SIGNERS_KEPT = 4096  # hasRole answers kept when the events cannot be read (oldest dropped)


class Refused(Exception):
    """The validator refuses the session; the message says why (it is logged and sent back)."""


class StoreDown(Refused):
    """Refused because the store cannot be reached: nobody's file is at fault."""


class _Missing(Exception):
    """A file this validator's copies and store do not have, noted in `Gate._wanted`."""


@dataclass(frozen=True)
class Wanted:
    """A file the validator asks of the model party: its CID (the chain's) and the most bytes
    it may hold."""

    cid: str
    max_bytes: int


@dataclass(frozen=True)
class Ticket:
    chain_id: int
    contract: str
    task: int
    nodes: tuple[int, ...]
    expires: int
    nonce: str
    part: str = VALIDATION
    weights: tuple[str, ...] = ()  # each node's weights CID, in the order of `nodes`
    link: str = ""  # hex of the X25519 key the model party's link proves
    # the node holding the task's best released score (0: none yet): the validator counts it
    # too, for the Ladder's exact best, and refuses a ticket whose best the chain does not show
    best: int = 0

    def message(self) -> bytes:
        return json.dumps(
            {**asdict(self), "nodes": list(self.nodes), "weights": list(self.weights)},
            sort_keys=True,
            separators=(",", ":"),
        ).encode()


@dataclass(frozen=True)
class Model:
    """A node the validator admitted, as the chain and the store have it: its spec and its
    weights (public in a public task), read by the validator itself."""

    node_id: int
    spec: ModelSpec
    weights: dict[str, torch.Tensor]


@dataclass(frozen=True)
class Admitted:
    """What the validator admitted: which part of its data, each node, and (validation part,
    once a score was released) the node holding the task's best, whose exact count the Ladder
    compares against (bountytree/market/ladder.py)."""

    part: str
    models: list[Model]
    best: Best | None = None
    # files this validator could not read itself: asked of the model party, then the ticket's
    # contents read again (`Gate.complete`) before anything is computed
    wanted: tuple[Wanted, ...] = ()
    ticket: Ticket | None = None


@dataclass(frozen=True)
class Best:
    """The node holding the task's best released score, and its model (None when neither this
    validator's kept copy nor the store has its weights any more)."""

    node_id: int
    model: Model | None


def issue(
    market: Market,
    task_id: int,
    node_ids: list[int],
    now: float | None = None,
    part: str = VALIDATION,
    link: bytes = b"",
) -> dict:
    """A signed ticket for one session, from the oracle's own account, for the link that
    proves the public key `link`."""
    nodes = market.nodes(task_id)
    best = 0
    if part == VALIDATION and nodes:  # (a task unknown to the chain has no nodes and no best)
        best = market.task(task_id, with_info=False).released_best
    ticket = Ticket(
        market.chain.chain_id,
        market.tree.address,
        task_id,
        tuple(node_ids),
        int((now or time.time()) + TICKET_TTL_S),
        secrets.token_hex(16),
        part,
        tuple(_weights(market, nodes, n) if n in nodes else "" for n in node_ids),
        link.hex(),
        best,
    )
    signed = Account.sign_message(encode_defunct(ticket.message()), market.chain.account.key)
    return {
        "ticket": {**asdict(ticket), "nodes": list(ticket.nodes), "weights": list(ticket.weights)},
        "signature": signed.signature.hex(),
    }


def _architecture(nodes: dict[int, NodeView], node_id: int) -> NodeView:
    arch = nodes[node_id]
    while arch.parent_id:
        arch = nodes[arch.parent_id]
    return arch


def _weights(market: Market, nodes: dict[int, NodeView], node_id: int) -> str:
    """The weights CID the chain gives node `node_id` (its own, or its architecture's seeded
    initial weights): what a ticket names and the validator checks."""
    arch = _architecture(nodes, node_id)
    spec = load_spec(get_bytes(market.store, arch.cid, MAX_SPEC_BYTES), f"spec of node {arch.id}")
    return nodes[node_id].weights_cid(spec)


class Gate:
    """The validator's side: admits a session's header or raises Refused, logging either way."""

    def __init__(
        self, market: Market, task_id: int, log_path: Path, parts: tuple[str, ...] = (VALIDATION,)
    ):
        self.market = market
        self.task_id = task_id
        self.log_path = Path(log_path)
        self.parts = parts  # the parts of the sponsor's data this validator holds
        # One created per test session admitted, up to MAX_TEST_SESSIONS per task. Named by
        # contract as well as task, so that another deployment's task of the same id is its own.
        contract = market.tree.address.lower()
        self.test_marker = self.log_path.parent / "test-sessions" / f"{contract}-task-{task_id}"
        self._claimed: Path | None = None  # the marker this session's admission created
        self.nonces = self.log_path.parent / "nonces"  # one file per admitted ticket
        # copies of the files it admitted, while a node may become or is the best (kept.py)
        self.kept = KeptFiles(self.log_path.parent / "weights" / f"{contract}-task-{task_id}")
        self._role: bytes | None = None  # ORACLE_ROLE's id, read once
        # ORACLE_ROLE's holders as its events say, up to block `_holders_at` (`screen`); read
        # before the gate admits anyone, so that no opening races the first read
        self._holders: set[str] = set()
        self._holders_at = market.first_block - 1
        self._holders_read = float("-inf")  # when, by the monotonic clock
        self._read_failed = False  # the last read did not end: what is known may be stale
        self._holders_lock = threading.Lock()
        # where the last session's read ended (each session is a fresh process): read on from it
        self._holders_file = self.log_path.parent / "roles" / f"{contract}.json"
        self._load_holders()
        # signer -> (holds the role, when asked): hasRole's answers while the events are unread
        self._answers: dict[str, tuple[bool, float]] = {}
        self._log_lock = threading.Lock()
        # what the model party gave this session for the files asked of it, each checked
        # against its CID; the CIDs asked of it (a file asked once and still missing is
        # refused); the files this reading of the admission found missing
        self.supplied: dict[str, bytes] = {}
        self._asked: set[str] = set()
        self._wanted: list[Wanted] = []
        self._try_read_holders()

    def screen(self, header: dict, link_key: bytes | None = None, now: float | None = None) -> None:
        """Refuses (Refused) an opening that cannot be the oracle's, without a chain call a
        stranger could make it wait for: what `_check` checks, the signature, and a signer among
        ORACLE_ROLE's known holders. Safe to call from many threads at once; `admit` still
        checks everything, the role on the chain itself."""
        now = time.time() if now is None else now
        signer = None
        try:
            ticket = self._parse(header)
            self._check(ticket, now, link_key)
            signer = self._recover(ticket, header)
            holders = self._known_holders(signer)
            if signer not in holders and not self._holds_role(signer):
                raise Refused(f"{signer} does not hold ORACLE_ROLE")
        except Refused as exc:
            self._log(now, signer, None, f"refused: {str(exc)[:MAX_LOGGED]}")
            raise

    def _known_holders(self, signer: str) -> set[str]:
        """ORACLE_ROLE's holders as the chain's events say, read again first if `signer` is not
        among them and the last read (or failed read) is ROLE_REFRESH_S old; a signer that comes
        during a read waits for it (bounded)."""
        if signer in self._holders:
            return self._holders
        if not self._holders_lock.acquire(timeout=ROLE_REFRESH_S):
            return self._holders
        try:
            if signer not in self._holders and (
                time.monotonic() - self._holders_read >= ROLE_REFRESH_S
            ):
                self._try_read_holders()
        finally:
            self._holders_lock.release()
        return self._holders

    def _holds_role(self, signer: str) -> bool:
        """False once the events were read (the signer is not among the holders); else (the
        node refuses event queries) hasRole's answer, asked at most every ROLE_REFRESH_S per
        signer. Before, such a screen let every signed stranger through to the admission, which
        asked the chain under its lock: strangers could keep the oracle told the validator was
        busy (attacker review of the servers). A chain that does not answer leaves the role to
        the admission's own check."""
        if self._holders_at >= self.market.first_block and not self._read_failed:
            return False
        now = time.monotonic()
        answer = self._answers.get(signer)
        if answer is not None and now - answer[1] < ROLE_REFRESH_S:
            return answer[0]
        try:
            holds = bool(self.market.tree.functions.hasRole(self._oracle_role(), signer).call())
        except Exception as exc:  # the chain did not answer: nobody is let through unchecked
            raise Refused("the role cannot be checked now; try again") from exc
        if len(self._answers) >= MAX_SIGNERS_KEPT:
            self._answers.pop(next(iter(self._answers)))
        self._answers.pop(signer, None)
        self._answers[signer] = (holds, now)
        return holds

    def _try_read_holders(self) -> None:
        """Reads the holders on; a read that does not end (the node caps or refuses event
        queries) leaves the screen to ask hasRole of each signer until one does: what is known
        may be stale (an oracle granted since, refused at the screen in every session)."""
        try:
            self._read_holders()
            self._read_failed = False
        except Exception:
            self._read_failed = True

    def _load_holders(self) -> None:
        """The holders the last session read, and the block it read them to (nothing if the
        file is not this validator's record: unreadable, or past the chain's head)."""
        try:
            record = json.loads(self._holders_file.read_text())
            at, holders = int(record["at"]), {str(h) for h in record["holders"]}
            block = self.market.chain.w3.eth.get_block(at)  # this chain's, not a reset one's
            if self._holders_at < at and block["hash"].hex().removeprefix("0x") == str(
                record["hash"]
            ).removeprefix("0x"):
                self._holders, self._holders_at = holders, at
        except Exception:  # no record, another's, or the chain did not answer: read them all
            return

    def _read_holders(self) -> None:
        """Applies the role's grants and revocations since the last read, in chain order, once
        every query of the read has answered (one failed read waits ROLE_REFRESH_S like a
        successful one)."""
        self._holders_read = time.monotonic()
        tree, role = self.market.tree, self._oracle_role()
        last = self.market.chain.w3.eth.block_number
        if last <= self._holders_at:
            return
        changes = []
        for start in range(self._holders_at + 1, last + 1, ROLE_SCAN_BLOCKS):
            end = min(start + ROLE_SCAN_BLOCKS - 1, last)  # nodes cap a query's range
            for event, granted in (
                (tree.events.RoleGranted, True),
                (tree.events.RoleRevoked, False),
            ):
                for entry in event().get_logs(
                    from_block=start, to_block=end, argument_filters={"role": role}
                ):
                    changes.append(
                        (entry["blockNumber"], entry["logIndex"], granted, entry["args"])
                    )
        holders = set(self._holders)
        for _, _, granted, args in sorted(changes, key=lambda c: (c[0], c[1])):
            (holders.add if granted else holders.discard)(args["account"])
        self._holders, self._holders_at = holders, last
        # kept for the next session, a few blocks short of the head: it reads them again, which
        # changes nothing (the same grants and revocations in the same order), unless a reorg
        # changed them
        at = max(self.market.first_block - 1, last - ROLE_REREAD_BLOCKS)
        if at >= self.market.first_block:
            with contextlib.suppress(Exception):  # not kept: the next session reads them all
                block_hash = self.market.chain.w3.eth.get_block(at)["hash"].hex()
                atomic_write_json(
                    self._holders_file,
                    {"at": at, "hash": block_hash, "holders": sorted(holders)},
                )

    def _oracle_role(self) -> bytes:
        if self._role is None:
            self._role = self.market.tree.functions.ORACLE_ROLE().call()
        return self._role

    def admit(
        self, header: dict, now: float | None = None, link_key: bytes | None = None
    ) -> Admitted:
        """Admits a ticket (Refused says why). `link_key`: the key the link it came over
        proved, which the ticket must name (a session always gives it)."""
        now = time.time() if now is None else now
        signer = None
        try:
            ticket = self._parse(header)
            self._check(ticket, now, link_key)
            signer = self._signer(ticket, header)
            self._asked, self._wanted, self.supplied = set(), [], {}
            try:
                models, best = self._contents(ticket)
            except _Missing:  # asked of the model party once the session is open
                models, best = [], None
            self._claim_nonce(ticket.nonce, now)
            if ticket.part == TEST:
                self._claimed = self._claim_test_session()
        except Refused as exc:
            self._log(now, signer, None, f"refused: {str(exc)[:MAX_LOGGED]}")
            raise
        wanted = tuple(dict.fromkeys(self._wanted))
        asked = f", {len(wanted)} file(s) asked of the model party" if wanted else ""
        self._log(now, signer, ticket, "admitted" + asked)
        return Admitted(ticket.part, models, best, wanted, ticket)

    def complete(self, admitted: Admitted, files: dict[str, bytes]) -> Admitted:
        """The admission, its files read again with what the model party gave for those asked
        of it: each only if its bytes are the CID's (so the model evaluated is still the one
        the chain records, whoever sent it), kept like any file read. A file found missing only
        now (a node's weights, once its spec came) is wanted in turn (`wanted`; the session
        asks at most MAX_FILE_ROUNDS times); a file asked once and still missing refuses its
        node, and the best then goes without its count (`_best`), as before.

        Why: the oracle scores only nodes whose files it read. A file served to the oracle's
        store and withheld from the validator's used to fail every session of its node, which
        the oracle then left pending; a task finalized with it pending burns the sponsor's bond.
        A stranger could reach that for one fee; now a file cannot be withheld from one party
        only."""
        assert admitted.ticket is not None
        limits = {w.cid: w.max_bytes for w in admitted.wanted}
        for cid, data in files.items():
            if cid in limits and 0 < len(data) <= limits[cid] and cid_of(data) == cid:
                self.supplied[cid] = data
        self._asked |= set(limits)
        self._wanted = []
        try:
            models, best = self._contents(admitted.ticket)
        except _Missing:
            wanted = tuple(dict.fromkeys(self._wanted))
            return Admitted(admitted.part, [], None, wanted, admitted.ticket)
        except Refused as exc:
            self._log(time.time(), None, None, f"refused: {str(exc)[:MAX_LOGGED]}")
            self._release_test_session(admitted)  # the store down, too (StoreDown)
            raise
        self._log(
            time.time(), None, None,
            f"{len(self.supplied)} of {len(self._asked)} file(s) from the model party",
        )  # fmt: skip
        self.supplied = {}  # read into the models, and kept: not held through the session
        return Admitted(admitted.part, models, best)

    def _contents(self, ticket: Ticket) -> tuple[list[Model], Best | None]:
        """The ticket's models and the task's best, as the chain, this validator's copies, the
        model party's files and the store give them; _Missing (after trying them all) when
        files are to be asked of the model party."""
        if ticket.part == TEST:
            models, best = self._winner(ticket), None
        else:  # the task's nodes read once, for the ticket's nodes and the best
            nodes = self.market.nodes(self.task_id)
            try:
                models = self._models(ticket, nodes)
            except _Missing:
                models = []
            best = self._best(ticket, nodes)
        if self._wanted:
            raise _Missing
        return models, best

    def _parse(self, header: dict) -> Ticket:
        try:
            raw = header["ticket"]
            ticket = Ticket(
                int(raw["chain_id"]),
                str(raw["contract"])[:42],
                int(raw["task"]),
                tuple(int(n) for n in raw["nodes"][: MAX_NODES_PER_SESSION + 1]),
                int(raw["expires"]),
                str(raw["nonce"]),
                str(raw.get("part", VALIDATION))[:16],
                tuple(str(c)[:64] for c in raw.get("weights", [])[: MAX_NODES_PER_SESSION + 1]),
                str(raw.get("link", ""))[:64],
                int(raw.get("best", 0)),
            )
            if not NONCE.match(ticket.nonce):
                raise ValueError("nonce")
        except Exception as exc:  # anything malformed from a stranger is a refusal, never a crash
            raise Refused(f"no valid signed ticket ({type(exc).__name__})") from None
        return ticket

    def _check(self, ticket: Ticket, now: float, link_key: bytes | None) -> None:
        """What costs the validator nothing to check, before the signature and the chain: a
        stranger's junk is refused here."""
        chain = self.market.chain
        if (
            ticket.chain_id != chain.chain_id
            or ticket.contract.lower() != self.market.tree.address.lower()
        ):
            raise Refused(
                f"ticket for chain {ticket.chain_id} contract {ticket.contract}, not this deployment"
            )
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
        if len(ticket.weights) != len(ticket.nodes):
            raise Refused("the ticket does not name each node's weights")
        if link_key is not None and ticket.link != link_key.hex():
            raise Refused("the ticket was issued for another link")
        if (self.nonces / ticket.nonce).exists():
            raise Refused("ticket already used")
        if self._admitted_within(now) >= MAX_SESSIONS_PER_HOUR:
            raise Refused(f"more than {MAX_SESSIONS_PER_HOUR} sessions in the last hour")

    def _recover(self, ticket: Ticket, header: dict) -> str:
        """The ticket's signer."""
        try:
            signer: str = Account.recover_message(
                encode_defunct(ticket.message()), signature=header["signature"]
            )
        except Exception as exc:  # a malformed signature is a refusal, never a crash
            raise Refused(f"no valid signed ticket ({type(exc).__name__})") from None
        return signer

    def _signer(self, ticket: Ticket, header: dict) -> str:
        """The ticket's signer, who must hold ORACLE_ROLE on this contract (asked of the chain)."""
        signer = self._recover(ticket, header)
        if not self.market.tree.functions.hasRole(self._oracle_role(), signer).call():
            raise Refused(f"{signer} does not hold ORACLE_ROLE")
        return signer

    def _models(self, ticket: Ticket, nodes: dict[int, NodeView]) -> list[Model]:
        """Each node's spec and weights as the chain and the store say, for pending nodes of the
        task only, each with the weights the ticket names; every file missing here is noted
        before _Missing is raised."""
        out, missing = [], False
        for node_id, weights in zip(ticket.nodes, ticket.weights, strict=True):
            node = nodes.get(node_id)
            if node is None or node.status != "pending":
                raise Refused(f"node {node_id} is not pending in task {self.task_id}")
            try:
                spec = self._spec(_architecture(nodes, node_id))
                if node.weights_cid(spec) != weights:
                    raise Refused(f"the ticket names other weights than node {node_id}'s")
                out.append(self._model(node, spec))
            except _Missing:
                missing = True
        if missing:
            raise _Missing
        return out

    def _best(self, ticket: Ticket, nodes: dict[int, NodeView]) -> Best | None:
        """The node holding the task's best released score, which the ticket must name: the
        validator counts it again in every session, so the oracle compares against its exact
        score without keeping it. Its weights come from this validator's kept copy (it admitted
        the node once, while pending), else the store; with neither, the session goes on
        without its count (a leader that withdraws its file cannot stop every session)."""
        best = self.market.task(self.task_id, with_info=False).released_best
        if ticket.best != best:
            raise Refused(
                f"the ticket names node {ticket.best} as the task's best, the chain {best}"
            )
        # copies no node still needs: settled trained nodes' weights, unless a node that may
        # yet be counted names the same file (one sent twice must not drop the best's copy)
        needed = {
            n.cid
            for n in nodes.values()
            if (n.kind != "trained" and n.status != "rejected") or n.status == "pending"
        }
        needed |= {nodes[best].cid} if best else set()
        self.kept.drop({n.cid for n in nodes.values() if n.kind == "trained"} - needed)
        if not best:
            return None
        try:
            return Best(best, self._model(nodes[best], self._spec(_architecture(nodes, best))))
        except _Missing:
            return Best(best, None)  # asked of the model party (the admission raises _Missing)
        except StoreDown:
            raise  # the store is down: the session waits for it, and nobody's bar moves
        except Refused as exc:
            self._log(time.time(), None, None, f"best node unreadable: {str(exc)[:MAX_LOGGED]}")
            return Best(best, None)

    def _winner(self, ticket: Ticket) -> list[Model]:
        """The test part: the finalized task's winner only, before any test score is recorded."""
        task = self.market.task(self.task_id, with_info=False)
        if not task.finalized or not task.winner:
            raise Refused(f"task {self.task_id} has no winner yet: the test part waits for one")
        if ticket.nodes != (task.winner,):
            raise Refused(f"the test part scores task {self.task_id}'s winner {task.winner} only")
        if self.market.test_score(self.task_id) is not None:
            raise Refused(f"task {self.task_id}'s test score is already recorded")
        nodes = self.market.nodes(self.task_id)
        spec = self._spec(_architecture(nodes, task.winner))
        if ticket.weights != (nodes[task.winner].weights_cid(spec),):
            raise Refused(f"the ticket names other weights than the winner {task.winner}'s")
        return [self._model(nodes[task.winner], spec)]

    def _model(self, node: NodeView, spec: ModelSpec) -> Model:
        """The node's weights, read from the store by the CID the chain records: the model the
        validator evaluates is the node's, whatever weights the other party holds (a party 1
        that shared weights of its own choosing would turn each node into a counting question
        about the rows of its choosing; found by the attacker review of the sessions)."""
        cid = node.weights_cid(spec)
        where = f"weights of node {node.id}"
        made = None if node.kind == "trained" else self._initial(cid, spec)
        raw = made if made is not None else self._read(cid, weights_io.max_bytes(spec), where)
        try:
            return Model(node.id, spec, weights_io.load(raw, spec, where))
        except UserError as exc:  # a file at fault
            raise Refused(f"{where}: {str(exc)[:MAX_LOGGED]}") from None

    def _read(self, cid: str, limit: int, where: str) -> bytes:
        """A file by the CID the chain records: this validator's copy, else what the model
        party gave for it this session, else the store (then kept, for the day the node is the
        task's best and its author's file is gone). A file the store does not have, or whose
        blocks do not hash, is noted to be asked of the model party (_Missing), and refused
        once it was asked."""
        data = self.kept.read(cid, limit)
        if data is not None:
            return data
        data = self.supplied.get(cid)
        try:
            if data is None:
                data = get_bytes(self.market.store, cid, limit)
        except StoreUnavailable as exc:
            raise StoreDown(f"{where}: {str(exc)[:MAX_LOGGED]}") from None
        except (BlockMissing, BlockCorrupted) as exc:
            if cid not in self._asked:
                self._wanted.append(Wanted(cid, limit))
                raise _Missing from None
            raise Refused(
                f"{where}: {str(exc)[:MAX_LOGGED]}; the model party did not give it either"
            ) from None
        except StoreError as exc:  # a file at fault (over the limit, not a file)
            raise Refused(f"{where}: {str(exc)[:MAX_LOGGED]}") from None
        self._keep(cid, data)
        return data

    @staticmethod
    def _initial(cid: str, spec: ModelSpec) -> bytes | None:
        """An architecture's weights, made from its spec's seed when they are the ones the spec
        names (they need no copy and no store)."""
        made = weights_io.initial_weights(spec)
        return made if cid_of(made) == cid else None

    def _claim_test_session(self) -> Path:
        """Claims one of the task's MAX_TEST_SESSIONS test sessions (each a marker file created
        exclusively, so two validators of one home cannot both take the last)."""
        self.test_marker.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        for attempt in range(1, MAX_TEST_SESSIONS + 1):
            marker = self.test_marker.with_name(f"{self.test_marker.name}.{attempt}")
            try:
                os.close(os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
                return marker
            except FileExistsError:
                continue
        raise Refused(
            f"the test part of task {self.task_id} was already admitted {MAX_TEST_SESSIONS} times"
        )

    def _release_test_session(self, admitted: Admitted) -> None:
        """Gives back the test session claimed at admission when the session ends before it
        counted anything (the winner's files refused once the model party was asked, or the store
        down): the winner was never evaluated, so nothing was learned, and a session that
        evaluated nothing used up one of the few the task has."""
        claimed, self._claimed = self._claimed, None
        if admitted.part == TEST and claimed is not None:
            claimed.unlink(missing_ok=True)

    def _spec(self, arch: NodeView) -> ModelSpec:
        """An architecture's spec: from this validator's copy, what the model party gave, else
        the store (then kept)."""
        raw = self._read(arch.cid, MAX_SPEC_BYTES, f"spec of node {arch.id}")
        try:
            return load_spec(raw, f"spec of node {arch.id}")
        except UserError as exc:
            raise Refused(str(exc)) from None

    def _keep(self, cid: str, raw: bytes) -> None:
        why = self.kept.keep(cid, raw)
        if why:
            self._log(time.time(), None, None, why[:MAX_LOGGED])

    def _admitted_within(self, now: float) -> int:
        """Sessions admitted in the last hour: the nonce files younger than MEMORY_S (older ones
        are removed here, so the folder never holds more than an hour's sessions)."""
        count = 0
        try:
            entries = list(os.scandir(self.nonces))
        except FileNotFoundError:
            return 0
        for entry in entries:
            try:
                if entry.stat().st_mtime > now - MEMORY_S:
                    count += 1
                else:
                    os.unlink(entry.path)
            except FileNotFoundError:
                continue
        return count

    def _claim_nonce(self, nonce: str, now: float) -> None:
        """Records an admitted ticket's nonce, atomically: of two sessions with one ticket, the
        second finds it taken."""
        self.nonces.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            fd = os.open(self.nonces / nonce, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise Refused("ticket already used") from None
        os.close(fd)
        os.utime(self.nonces / nonce, (now, now))

    def _log(self, now: float, signer: str | None, ticket: Ticket | None, outcome: str) -> None:
        """One line per session. Only what validated is written: a refused ticket's fields are
        a stranger's, and are left out (its reason is bounded)."""
        entry = {
            "at": now,
            "signer": signer,
            "task": self.task_id,
            "part": ticket.part if ticket else None,
            "nodes": list(ticket.nodes) if ticket else None,
            "outcome": outcome,
        }
        if ticket:
            entry["nonce"] = ticket.nonce
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self._log_lock:  # screens run in many threads; one rotation at a time
            with contextlib.suppress(FileNotFoundError):
                if self.log_path.stat().st_size > LOG_MAX_BYTES:
                    os.replace(self.log_path, self.log_path.with_name(self.log_path.name + ".1"))
            fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "a") as f:
                f.write(json.dumps(entry) + "\n")
