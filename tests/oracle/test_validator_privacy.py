"""Hostile parties against the sponsor's real validator (`python -m oracle validator`, party 0):
strangers at its port get no answer without a ticket signed by the oracle for pending nodes and
for the key their link proves, and a party 1 that tampers with its shares is told a node's own
count, nothing of its choosing."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from web3.exceptions import Web3RPCError

from bountytree.config import ROOT
from bountytree.models import weights as weights_io
from bountytree.models.counting import count_correct
from bountytree.models.datasets import load_file
from bountytree.models.spec import load_spec
from bountytree.mpc import links
from bountytree.private.sealing import new_private_key, write_private_key
from bountytree.processes import free_port
from oracle.admission import LOG_MAX_BYTES, VALIDATION, Gate, Refused, Ticket, issue
from oracle.mpc import Admission
from tests.conftest import cli_ok, market_for, new_task, node_id_of, validator_process

pytestmark = pytest.mark.mpc

MLP = ROOT / "examples" / "mlp.json"
CLASSES = 10
POSITIONS = 8  # row positions whose labels the tampering party tries to read per session


def _env(settings) -> dict:
    return {
        **os.environ,
        "BOUNTYTREE_RPC": settings.rpc,
        "BOUNTYTREE_STORE": settings.store,
        "BOUNTYTREE_HOME": str(settings.home),
        "BOUNTYTREE_DEPLOYMENTS": str(settings.deployments),
    }


def _constant_model(cls: int) -> dict:
    """MLP weights that predict class `cls` for every row (and nothing else)."""
    spec = load_spec(MLP.read_bytes())
    state = {
        k: [[0.0] * s[1] for _ in range(s[0])] if len(s) == 2 else [0.0] * s[0]
        for k, s in spec.tensors.items()
    }
    state["2.bias"][cls] = 1.0
    return state


def _link_key(tmp_path: Path) -> tuple[Path, bytes]:
    """A fresh link key file for the hostile party, and its public key."""
    path = tmp_path / f"link-{secrets.token_hex(4)}.key"
    return path, write_private_key(path)


def _session(
    settings,
    files,
    task_id: int,
    header: dict | Callable[[bytes], dict],
    nodes: list[dict],
    tmp_path: Path,
    key: tuple[Path, bytes] | None = None,
) -> tuple[dict, str]:
    """One session: the real validator against the hostile party, which proves `key` (a fresh
    one by default) and opens with `header` (or `header(its public key)`); (what party 1 got,
    the validator's output)."""
    address = f"127.0.0.1:{free_port()}"
    key_file, public = key or _link_key(tmp_path)
    opening = header(public) if callable(header) else header
    job, out = tmp_path / f"job-{address[-5:]}.json", tmp_path / f"out-{address[-5:]}.json"
    job.write_text(
        json.dumps({"header": opening, "spec": json.loads(MLP.read_text()), "nodes": nodes})
    )
    validator = validator_process(
        settings, task_id, files["validation"], address, "--sessions", "1", "--wait", "30"
    )
    party = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tests" / "oracle" / "hostile_party.py"),
            "--address",
            address,
            "--job",
            str(job),
            "--key",
            str(key_file),
            "--out",
            str(out),
        ],
        env={**_env(settings), "PYTHONPATH": str(ROOT)},
        capture_output=True,
        timeout=300,
    )
    got = (
        json.loads(out.read_text()) if out.exists() else {"crashed": party.stderr.decode()[-2000:]}
    )
    if "refused" in got:
        # turned away at the door: the validator goes on waiting for the oracle
        time.sleep(1)
        assert validator.poll() is None, "a refused connection ended the validator's session"
        validator.terminate()
    out_text, err = validator.communicate(timeout=300)
    return got, out_text.decode() + err.decode()


@pytest.fixture(scope="module")
def pending_task(settings, deployed, files):
    """A task with 2 × CLASSES pending architecture nodes (the MLP), nothing scored."""
    task_id = new_task(settings, files["validation"], "hostile parties")
    ids = [
        node_id_of(
            cli_ok(
                settings, "propose", "--task", str(task_id), "--spec", str(MLP), "--account", "1"
            )
        )
        for _ in range(2 * CLASSES)
    ]
    return task_id, ids


def test_strangers_get_no_answer(settings, deployed, files, pending_task, tmp_path):
    task_id, ids = pending_task
    oracle, stranger = market_for(settings, 0), market_for(settings, 5)
    node = [{"id": ids[0], "state": _constant_model(0)}]
    key = _link_key(tmp_path)
    genuine = issue(oracle, task_id, [ids[0]], link=key[1])

    def tampered(link: bytes) -> dict:
        """A genuine ticket for this link with its nodes changed after it was signed."""
        ticket = issue(oracle, task_id, [ids[0]], link=link)
        ticket["ticket"]["nodes"] = [ids[1]]
        return ticket

    for header, why in (
        ({}, "no valid signed ticket"),
        ({"ticket": "junk", "signature": "0x00"}, "no valid signed"),
        (lambda link: issue(stranger, task_id, [ids[0]], link=link), "does not hold ORACLE_ROLE"),
        (tampered, "does not hold ORACLE_ROLE"),
        (lambda link: issue(oracle, task_id + 1000, [ids[0]], link=link), "serves task"),
        (lambda link: issue(oracle, task_id, [ids[-1] + 10_000], link=link), "is not pending"),
        # the genuine ticket, copied by a stranger whose link proves another key
        (genuine, "issued for another link"),
    ):
        got, out = _session(settings, files, task_id, header, node, tmp_path)
        assert "counts" not in got and why in got.get("refused", ""), (got, out[-500:])
        assert "refused a connection: " in out and why in out, out[-500:]
    # the genuine ticket is admitted once, over the link it names; replayed, it is refused
    got, out = _session(settings, files, task_id, genuine, node, tmp_path, key)
    assert "counts" in got, (got, out[-1000:])
    got, _ = _session(settings, files, task_id, genuine, node, tmp_path, key)
    assert "already used" in got.get("refused", "")
    log = (
        (settings.home / "validator" / str(oracle.chain.chain_id) / "sessions.log")
        .read_text()
        .splitlines()
    )
    outcomes = Counter(json.loads(line)["outcome"].split(":")[0] for line in log)
    assert outcomes["refused"] >= 8 and outcomes["admitted"] >= 1


def test_the_validator_remembers_used_tickets_whatever_the_log_holds(
    settings, deployed, pending_task, tmp_path
):
    """A stranger's junk is not written to the log, and the memory of used tickets is not the
    log: after megabytes of junk (one connection used to write 7.7 MB and wipe that memory), a
    replayed ticket is still refused, and tickets name the weights they admit."""
    task_id, ids = pending_task
    oracle = market_for(settings, 0)
    gate = Gate(oracle, task_id, tmp_path / "validator" / "sessions.log")
    genuine = issue(oracle, task_id, [ids[0]])
    assert gate.admit(genuine).part == VALIDATION
    junk = {
        "ticket": {
            "chain_id": oracle.chain.chain_id,
            "contract": "x" * 3_000_000,
            "task": task_id,
            "nodes": ["9" * 1_000_000] * 50,
            "expires": 0,
            "nonce": "n" * 1_000_000,
            "part": "p" * 1_000_000,
        },
        "signature": "0x" + "00" * 65,
    }
    before = gate.log_path.stat().st_size
    for _ in range(3):
        with pytest.raises(Refused):
            gate.admit(junk)
    assert gate.log_path.stat().st_size - before < 3 * 400  # bounded lines, not megabytes
    with gate.log_path.open("a") as log:  # and even a log buried under junk forgets nothing
        log.write(("x" * 1000 + "\n") * 8000)
    with pytest.raises(Refused, match="already used"):
        gate.admit(genuine)
    # A ticket names each node's weights, as the chain has them; one signed for other weights
    # (the weights of another node) is refused.
    other = issue(oracle, task_id, [ids[1]])
    spec = oracle.architecture_spec(oracle.node(ids[1]))
    assert other["ticket"]["weights"] == [oracle.node(ids[1]).weights_cid(spec)]
    ticket = Ticket(**{**other["ticket"], "nodes": (ids[1],), "weights": ("QmOther",)})
    signed = Account.sign_message(encode_defunct(ticket.message()), oracle.chain.account.key)
    wrong = {
        "ticket": {**other["ticket"], "weights": ["QmOther"]},
        "signature": signed.signature.hex(),
    }
    with pytest.raises(Refused, match="other weights"):
        gate.admit(wrong)


def test_a_flood_of_refused_connections_cannot_fill_the_sponsors_disk(
    settings, deployed, pending_task, tmp_path
):
    """Each refused opening writes one bounded line; a stranger opening thousands used to grow
    sessions.log without end. Past LOG_MAX_BYTES it is rotated (one older file kept), so the
    log holds at most twice that, and the memory of used tickets, kept apart, is untouched."""
    task_id, ids = pending_task
    oracle = market_for(settings, 0)
    gate = Gate(oracle, task_id, tmp_path / "validator" / "sessions.log")
    genuine = issue(oracle, task_id, [ids[0]])
    assert gate.admit(genuine).part == VALIDATION
    with gate.log_path.open("a") as log:  # the log as a long flood left it, just under the cap
        log.write(("x" * 999 + "\n") * (LOG_MAX_BYTES // 1000))
    junk = {"ticket": {"task": task_id}, "signature": "0x"}
    for _ in range(50):  # the flood goes on: each refusal one line
        with pytest.raises(Refused):
            gate.admit(junk)
    older = gate.log_path.with_name("sessions.log.1")
    assert older.exists() and gate.log_path.stat().st_size < 50 * 400
    assert older.stat().st_size + gate.log_path.stat().st_size <= 2 * LOG_MAX_BYTES
    with pytest.raises(Refused, match="already used"):
        gate.admit(genuine)


def _initial_count(files) -> int:
    """Correct validation rows of the MLP's initial weights (every pending node here), in
    plaintext."""
    spec = load_spec(MLP.read_bytes())
    rows = load_file(files["validation"])
    state = weights_io.load(weights_io.initial_weights(spec), spec)
    return count_correct(state, spec, rows.X, rows.y).correct


def test_a_tampering_model_party_is_told_the_nodes_own_count_whatever_it_adds(
    settings, deployed, files, pending_task, tmp_path
):
    """Two-party CrypTen has no MACs: party 1 may add what it likes to its shares. Adding one to
    row position 0's prediction of class c shifts the count by one exactly when that row is of
    class c, and 2^i on position i for every class adds a number whose bits are the rows'
    labels: the old validator revealed the shifted counts, so one node per class read a label,
    and one node eight. The validator now counts each node itself from its public weights and
    tells party 1 that count whatever the shared one says: every answer below is the node's own
    count (no label read, no refusal to read either), and the validator's log names the count
    that strayed."""
    task_id, ids = pending_task
    oracle = market_for(settings, 0)
    node_count = _initial_count(files)
    one_bit = [{"id": ids[c], "tamper": [[0, c, 1]]} for c in range(CLASSES)]
    eight_bits = {
        "id": ids[CLASSES],
        "tamper": [[i, c, 2**i] for i in range(POSITIONS) for c in range(CLASSES)],
    }
    nodes = [*one_bit, eight_bits]
    got, err = _session(
        settings,
        files,
        task_id,
        lambda link: issue(oracle, task_id, [n["id"] for n in nodes], link=link),
        nodes,
        tmp_path,
    )
    assert got.get("counts") == {str(n["id"]): node_count for n in nodes}, (got, err[-1000:])
    strayed = f"node {ids[CLASSES]}: the shared count {node_count + 2**POSITIONS - 1} strays"
    assert strayed in err, err[-1000:]
    assert all(f"node {n['id']}: the shared count" not in err for n in one_bit), err[-1000:]


def test_the_validator_evaluates_each_node_s_own_weights_whatever_party_1_holds(
    settings, deployed, files, pending_task, tmp_path
):
    """Party 1 used to share the weights: holding a model of its own choosing (here one that
    says class 0 for every row) made each node a counting question of its choosing about the
    rows (found by the attacker review of the sessions). The validator now shares each node's
    weights itself, read from the store by the CID the chain records."""
    task_id, ids = pending_task
    oracle = market_for(settings, 0)
    rows = load_file(files["validation"])
    node_count = _initial_count(files)
    chosen_count = int((rows.y == 0).sum())  # what the model party's own weights would count
    assert node_count != chosen_count
    node = [{"id": ids[0], "state": _constant_model(0)}]
    got, out = _session(
        settings,
        files,
        task_id,
        lambda link: issue(oracle, task_id, [ids[0]], link=link),
        node,
        tmp_path,
    )
    assert got.get("counts") == {str(ids[0]): node_count}, (got, out[-500:])


def test_strangers_signing_their_own_tickets_from_many_addresses_take_no_place_in_the_queue(
    settings, deployed, pending_task, tmp_path
):
    """Strangers at nine addresses, four at a time each (36: more than the 32 places of the
    admission queue), complete the handshake and open with well-formed tickets for the pending
    node, signed with keys of their own, again and again (found by the third review of session
    15). Each such opening used to wait in the queue for a role check on the chain, inside the
    one-at-a-time admission, so they could keep the queue full and the oracle out. The real
    validator's gate now screens an opening first (its signer must be among ORACLE_ROLE's holders
    the chain's events name): no stranger's opening reaches the admission, and the oracle's
    ticket is admitted while they go on."""
    task_id, ids = pending_task
    oracle = market_for(settings, 0)
    gate = Gate(oracle, task_id, tmp_path / "validator" / "sessions.log")
    admitted: list[dict] = []  # the openings that got a place in the queue, in order

    def admit(header: dict, key: bytes):
        admitted.append(header)
        return gate.admit(header, link_key=key)

    admission = Admission(
        admit, 64, CLASSES, has_test=False, screen=lambda h, key: gate.screen(h, link_key=key)
    )
    address = f"127.0.0.1:{free_port()}"
    host, port = address.rsplit(":", 1)
    out: dict = {}

    def validator() -> None:
        me = links.Identity(new_private_key(), {1: None})
        try:
            out["links"] = links.connect(
                address,
                me,
                0,
                2,
                rendezvous_s=300,  # the strangers' turns come first, slowly on a loaded machine
                timeout_s=5,
                admit=admission,
                screen=admission.screen,
            )
        except Exception as exc:
            out["error"] = exc

    template = issue(oracle, task_id, [ids[0]])["ticket"]  # what a stranger can read for itself
    refusals: list[str] = []
    stop = threading.Event()

    def stranger(source: str) -> None:
        me = links.Identity(new_private_key(), {0: None})
        signer = Account.create()
        while not stop.is_set():
            with contextlib.suppress(OSError, links.LinkError, links.LinkRefused, ValueError):
                sock = socket.create_connection(
                    (host, int(port)), timeout=5, source_address=(source, 0)
                )
                link = links._handshake(sock, me, 1, 2, {0: None})
                fields = {
                    **template,
                    "nonce": secrets.token_hex(16),
                    "expires": int(time.time()) + 300,
                    "link": me.public_key.hex(),
                }
                ticket = Ticket(
                    **{
                        **fields,
                        "nodes": tuple(fields["nodes"]),
                        "weights": tuple(fields["weights"]),
                    }
                )
                signed = Account.sign_message(encode_defunct(ticket.message()), signer.key)
                link.send(
                    json.dumps({"ticket": fields, "signature": signed.signature.hex()}).encode()
                )
                refusals.append(json.loads(link.recv(links.MAX_OPENING)).get("error", ""))
                link.close()

    listening = threading.Thread(target=validator, daemon=True)
    listening.start()
    time.sleep(0.5)
    crowd = [
        threading.Thread(target=stranger, args=(f"127.0.0.{2 + i % 9}",), daemon=True)
        for i in range(36)
    ]
    for t in crowd:
        t.start()
    try:
        started = time.monotonic()
        while len(refusals) < 72:  # every stranger has been turned away, and comes again
            # bounded: a listener whose rendezvous ran out left the strangers spinning on refused
            # connections, and this loop waiting for good
            assert "error" not in out and time.monotonic() - started < 240, (out, len(refusals))
            time.sleep(0.05)
        key = links.Identity(new_private_key(), {0: None})
        genuine = json.dumps(issue(oracle, task_id, [ids[0]], link=key.public_key)).encode()
        mine = links.connect(address, key, 1, 2, rendezvous_s=30, timeout_s=5, opening=genuine)
    finally:
        stop.set()
    listening.join(10)
    assert "error" not in out, out
    assert out["links"][1].peer_key == key.public_key
    # turned away at the screen (or told to come again while others were being screened)
    assert all("does not hold ORACLE_ROLE" in why or why == links.BUSY for why in refusals)
    assert sum("does not hold ORACLE_ROLE" in why for why in refusals) >= 36
    # the gain measured: places in the queue the strangers took (each a role check on the chain)
    assert [h["ticket"]["link"] for h in admitted] == [key.public_key.hex()], len(admitted)
    for link in [*out["links"].values(), *mine.values()]:
        link.close()


def test_the_screen_follows_the_roles_grants_and_revocations(
    settings, deployed, pending_task, tmp_path, monkeypatch
):
    """The screen knows ORACLE_ROLE's holders from the chain's events: an account granted the
    role while the validator runs is let through by the next read (at most ROLE_REFRESH_S
    later), one revoked is turned away by the admission, and a stranger never reaches it."""
    from oracle import admission
    from oracle.admission import ROLE_REFRESH_S

    monkeypatch.setattr(admission, "ROLE_SCAN_BLOCKS", 25)  # many queries, as on a long chain
    task_id, ids = pending_task
    admin, newcomer = market_for(settings, 0), market_for(settings, 6)
    gate = Gate(admin, task_id, tmp_path / "validator" / "sessions.log")
    gate.screen(issue(admin, task_id, [ids[0]]))  # the oracle (the deployer holds the role)
    with pytest.raises(Refused, match="does not hold ORACLE_ROLE"):
        gate.screen(issue(newcomer, task_id, [ids[0]]))
    tree, role = admin.tree, admin.tree.functions.ORACLE_ROLE().call()
    admin.chain.send(tree.functions.grantRole(role, newcomer.chain.address), action="grant")
    try:
        time.sleep(ROLE_REFRESH_S)
        gate.screen(issue(newcomer, task_id, [ids[0]]))
    finally:
        admin.chain.send(tree.functions.revokeRole(role, newcomer.chain.address), action="revoke")
    # revoked: a signer the screen knows is not read again for (a revoked oracle is no
    # stranger), and the admission, which asks the chain, refuses it
    with pytest.raises(Refused, match="does not hold ORACLE_ROLE"):
        gate.admit(issue(newcomer, task_id, [ids[1]]))


def test_the_validators_copies_never_stop_an_admission(settings, deployed, pending_task, tmp_path):
    """The validator keeps a copy of each trained node's weights and each spec it admits (for the
    Ladder's exact best, once the node leads and its author's file is gone). The first version wrote it outside the
    admission's error handling: a full or read-only disk ended every admission. A copy that
    cannot be written is logged and the session goes on; something planted where a copy goes
    (a link to an endless file) is never read, and is replaced by the real copy."""
    task_id, ids = pending_task
    oracle = market_for(settings, 0)
    log = tmp_path / "validator" / "sessions.log"
    gate = Gate(oracle, task_id, log)
    gate.kept.folder.parent.mkdir(parents=True)
    gate.kept.folder.write_text("a file where the folder goes: every write fails")
    admitted = gate.admit(issue(oracle, task_id, [ids[0]]))
    assert [m.node_id for m in admitted.models] == [ids[0]]
    assert "no copy kept" in log.read_text()

    gate.kept.folder.unlink()
    gate.kept.folder.mkdir()
    cid = oracle.node(ids[1]).cid  # the architecture's spec, which the validator keeps too
    (gate.kept.folder / cid).symlink_to("/dev/zero")
    admitted = gate.admit(issue(oracle, task_id, [ids[1]]))
    assert [m.node_id for m in admitted.models] == [ids[1]]
    copy = gate.kept.folder / cid
    assert not copy.is_symlink() and copy.is_file()
    assert gate.kept.read(cid, 1 << 20) == copy.read_bytes()


def _events_refused(*args, **kwargs):
    raise Web3RPCError("query returned more than 10000 results")  # a node capping eth_getLogs


def test_a_screen_that_cannot_read_the_roles_events_turns_strangers_away_asking_once_each(
    settings, deployed, pending_task, tmp_path, monkeypatch
):
    """A node that refuses the role's event queries (an RPC capping `eth_getLogs`) used to leave
    the screen letting every signed stranger through to the admission, which asks the chain
    under its lock: strangers could keep the oracle told the validator was busy (attacker review
    of the servers). The screen now asks `hasRole` of each signer, once per ROLE_REFRESH_S."""
    task_id, ids = pending_task
    oracle, stranger = market_for(settings, 0), market_for(settings, 6)
    monkeypatch.setattr(Gate, "_read_holders", _events_refused)
    gate = Gate(oracle, task_id, tmp_path / "validator" / "sessions.log")
    asked: list[str] = []
    has_role = gate.market.tree.functions.hasRole

    def counted(role, account):
        asked.append(account)
        return has_role(role, account)  # the chain's own answer

    monkeypatch.setattr(gate.market.tree.functions, "hasRole", counted)
    gate.screen(issue(oracle, task_id, [ids[0]]))
    for _ in range(5):
        with pytest.raises(Refused, match="does not hold ORACLE_ROLE"):
            gate.screen(issue(stranger, task_id, [ids[0]]))
    assert asked == [oracle.chain.address, stranger.chain.address]  # once each


def test_the_screen_reads_the_roles_on_from_where_the_last_session_ended(
    settings, deployed, pending_task, tmp_path, monkeypatch
):
    """Each session is a fresh process whose gate read ORACLE_ROLE's grants from the
    deployment's first block. It now keeps what it read, and the next session's gate reads on
    from a few blocks short of where the last one ended (a reorg's reach): it knows the oracle
    and turns a stranger away without asking hasRole. A record whose block is not this chain's
    (a dev chain reset under the same id and address) is read again from the start."""
    from oracle.admission import ROLE_REREAD_BLOCKS

    task_id, ids = pending_task
    oracle, stranger = market_for(settings, 0), market_for(settings, 6)
    w3 = oracle.chain.w3
    for _ in range(ROLE_REREAD_BLOCKS + 2):  # a chain longer than what is read again
        w3.provider.make_request("evm_mine", [])
    log = tmp_path / "validator" / "sessions.log"
    Gate(oracle, task_id, log)  # the last session's
    head = w3.eth.block_number
    starts: list[int] = []
    read = Gate._read_holders

    def spied(self) -> None:
        starts.append(self._holders_at)
        read(self)

    monkeypatch.setattr(Gate, "_read_holders", spied)
    gate = Gate(oracle, task_id, log)
    assert starts == [head - ROLE_REREAD_BLOCKS]
    monkeypatch.setattr(gate.market.tree.functions, "hasRole", _events_refused)
    gate.screen(issue(oracle, task_id, [ids[0]]))
    with pytest.raises(Refused, match="does not hold ORACLE_ROLE"):
        gate.screen(issue(stranger, task_id, [ids[0]]))

    record = gate._holders_file
    kept = json.loads(record.read_text())
    record.write_text(json.dumps({**kept, "hash": "00" * 32}))
    Gate(oracle, task_id, log)
    assert starts[-1] == oracle.first_block - 1
