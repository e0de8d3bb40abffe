"""A private task played by its services: two custodians and a dealer as long-running
processes (`python -m custodian`), the sponsor, an architect and a data owner on the command
line. Nobody but the sponsor, after the hand-over, ever holds a trained node's weights."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from conftest import (
    advance_time,
    cli_error,
    cli_ok,
    created_task_id,
    custody_terms,
    market_for,
    node_id_of,
    run_cli,
)

from bountytree.chain.client import ganache_account
from bountytree.market.custody import Custody
from bountytree.market.ladder import DEFAULT_MARGIN_BPS, round_down
from bountytree.models import weights as weights_io
from bountytree.models.datasets import Dataset, load_file
from bountytree.models.spec import build_torch, load_spec, parse_spec
from bountytree.private import ring, rows
from bountytree.private.sealing import read_private_key
from bountytree.processes import free_port
from bountytree.reasons import Reason
from bountytree.storage.store import cid_of, get_bytes
from custodian.holdings import Holdings
from tests.e2e.test_private_task import SPEC

CUSTODIANS, DEALER = (8, 9), 10
BOND = ("--audit-bond", "0.1")
WAIT_S = 420


def _start(settings, log: Path, *args: str, account: int, failpoint: str = "") -> subprocess.Popen:
    """A custodian or dealer process; its output goes to `log`."""
    env = {
        "BOUNTYTREE_FAILPOINT": failpoint,
        **os.environ,
        "BOUNTYTREE_RPC": settings.rpc,
        "BOUNTYTREE_STORE": settings.store,
        "BOUNTYTREE_HOME": str(settings.home),
        "BOUNTYTREE_DEPLOYMENTS": str(settings.deployments),
        "BOUNTYTREE_ACCOUNT": str(account),
    }
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "custodian", *args], env=env, stdout=out, stderr=out
        )


def _wait(what, done, procs, timeout=WAIT_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done():
            return
        for p in procs:
            assert p.poll() is None, f"{p.args} stopped"
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}")


def _approved_keys(settings, tmp_path) -> tuple[dict[int, str], dict[str, Path]]:
    """The custodians' and dealer's addresses (approved by the deployer) and fresh key files."""
    address = {i: ganache_account(i).address for i in (*CUSTODIANS, DEALER)}
    admin = Custody(market_for(settings, 0))
    for account in address.values():
        if not admin.is_approved(account):
            admin.approve(account)
    keys = {}
    for name in ("sponsor", "c0", "c1", "dealer"):
        keys[name] = tmp_path / f"{name}.key"
        cli_ok(settings, "custody", "keygen", "--out", str(keys[name]))
    return address, keys


def _create(settings, files, name: str) -> tuple[str, ...]:
    return (
        "task", "create", "--validation", str(files["validation"]),
        "--name", name, "--bounty", "1", "--target", "0.2",
        "--deadline", "2h", "--stake", "0.01", "--shares", "80/0/20",
    )  # fmt: skip


def _terms(address, keys) -> tuple[str, ...]:
    return (
        "--custodians", f"{address[8]},{address[9]}", "--dealer", address[10],
        "--key-file", str(keys["sponsor"]), "--custody-stake", "0.02", "--custody-fee", "0.03",
    )  # fmt: skip


def _accept_and_share(settings, task_id: int, keys) -> None:
    _accept(settings, task_id, keys)
    cli_ok(settings, "custody", "share-validation", "--task", str(task_id))


def _accept(settings, task_id: int, keys) -> None:
    terms = custody_terms(settings, task_id)
    for key, account in (("c0", 8), ("c1", 9), ("dealer", 10)):
        cli_ok(
            settings, "custody", "accept", "--task", str(task_id),
            "--key-file", str(keys[key]), "--account", str(account), "--terms", terms,
        )  # fmt: skip


def _custodian(
    settings, keys, index: int, peer: str, task_id: int, log: Path, failpoint="", budget=None,
    **timeouts,
):  # fmt: skip
    """Custodian `index`'s service; `timeouts` (session, fetch, dealer: seconds) override the
    defaults below, `budget` the session budget's."""
    seconds = {"session": 30, "fetch": 60, "dealer": 600, **timeouts}
    return _start(
        settings, log, "serve", "--key-file", str(keys[f"c{index}"]), "--peer", peer,
        "--task", str(task_id), "--interval", "1",
        *(f"--{what}-timeout={value}" for what, value in seconds.items()),
        *([f"--session-budget={budget}"] if budget else []),
        account=CUSTODIANS[index], failpoint=failpoint,
    )  # fmt: skip


def _dealer(settings, keys, peer: str, log: Path) -> subprocess.Popen:
    return _start(
        settings, log, "dealer", "--key-file", str(keys["dealer"]),
        "--peer", peer, "--session-timeout", "30", "--interval", "1", account=DEALER,
    )  # fmt: skip


def _services(
    settings,
    keys,
    task_id: int,
    folder: Path,
    failpoint: str = "",
    both: bool = False,
    with_dealer: bool = True,
    budget: float | None = None,
    **timeouts: float,
) -> tuple[str, list[subprocess.Popen]]:
    """The dealer (unless not `with_dealer`) and both custodians, logging to
    folder/{dealer,c0,c1}.log; and their peer address. `failpoint` is custodian 1's
    (custodian/session.py), and custodian 0's too if `both`; `budget` and `timeouts` the
    custodians'."""
    peer = f"127.0.0.1:{free_port()}"
    return peer, [
        *([_dealer(settings, keys, peer, folder / "dealer.log")] if with_dealer else []),
        _custodian(
            settings, keys, 0, peer, task_id, folder / "c0.log", failpoint if both else "",
            budget, **timeouts,
        ),
        _custodian(
            settings, keys, 1, peer, task_id, folder / "c1.log", failpoint, budget, **timeouts
        ),
    ]  # fmt: skip


def _propose(settings, task_id: int, tmp_path: Path, spec: dict = SPEC) -> int:
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(spec))
    return node_id_of(
        cli_ok(settings, "propose", "--task", str(task_id), "--spec", str(spec_file),
               "--account", "1")
    )  # fmt: skip


def _owner_rows(files, tmp_path: Path) -> Path:
    owner_rows = tmp_path / "owner.csv"
    lines = files["owner1"].read_text().splitlines()
    owner_rows.write_text("\n".join(lines[:161]) + "\n")
    return owner_rows


def test_custodians_train_score_and_hand_over_a_private_task(settings, deployed, files, tmp_path):
    address, keys = _approved_keys(settings, tmp_path)
    create, terms = _create(settings, files, "private services"), _terms(address, keys)
    tasks_before = market_for(settings).chain.tree.functions.counts().call()[0]
    assert "only with --private-models" in cli_error(settings, *create, *terms)
    assert "needs --dealer" in cli_error(settings, *create, "--private-models", *terms[:2])
    assert "three different accounts" in cli_error(
        settings, *create, "--private-models", *terms[:3], address[8], *terms[4:]
    )
    # refused before anything was sent
    assert market_for(settings).chain.tree.functions.counts().call()[0] == tasks_before
    out = cli_ok(settings, *create, "--private-models", *terms)
    task_id = created_task_id(out)
    assert "private models: custodians" in out
    # rows cannot be shared before the custodians have said where to seal them
    assert "not accepted by all three" in cli_error(
        settings, "custody", "share-validation", "--task", str(task_id)
    )
    # a custodian named and not accepted yet says so, once (it used to wait in silence)
    once = _start(
        settings, tmp_path / "once.log", "serve", "--key-file", str(keys["c0"]), "--peer",
        "127.0.0.1:1", "--task", str(task_id), "--once", account=CUSTODIANS[0],
    )  # fmt: skip
    assert once.wait(120) == 0
    said = (tmp_path / "once.log").read_text()
    assert f"task {task_id}: this account has not accepted the custody" in said, said
    _accept_and_share(settings, task_id, keys)
    _, procs = _services(settings, keys, task_id, tmp_path)
    try:
        # An architecture the custodians cannot train on shares (Adam): the client refuses it
        # with nothing staked; sent anyway (by a client of one's own), it comes first, both
        # custodians reject it, and it stalls nobody behind it.
        refused = cli_error(settings, "propose", "--task", str(task_id), "--spec",
                            "examples/mlp.json", "--account", "3")  # fmt: skip
        assert "nothing staked" in refused and "private" in refused, refused
        architect = market_for(settings, 3)
        adam = load_spec(Path("examples/mlp.json").read_bytes())
        adam = adam.with_init_weights(
            architect.store.add(io.BytesIO(weights_io.initial_weights(adam)))
        )
        unfit = architect.submit(
            task_id, 0, cid_of(adam.to_bytes()), content=adam.to_bytes()
        ).node_id
        arch = _propose(settings, task_id, tmp_path)
        owner_rows = _owner_rows(files, tmp_path)
        child = node_id_of(
            cli_ok(settings, "custody", "submit", "--task", str(task_id), "--parent", str(arch),
                   "--data", str(owner_rows), "--account", "2")
        )  # fmt: skip
        market = market_for(settings)
        # A thief submits a record naming the owner's sealed shares as its own rows: they are
        # bound to the owner's submission, open nowhere else, and the thief's node is rejected.
        stolen = json.loads(get_bytes(market.store, market.node(child).cid, 4096))
        thief = market_for(settings, 4)
        record = rows.PrivateNode(arch, stolen["rows"], tuple(stolen["shares"])).to_bytes()
        theft = thief.submit(task_id, arch, thief.store.add(io.BytesIO(record))).node_id
        # An owner seals a good share to custodian 0 and junk to custodian 1: only custodian 1
        # can see the fault; custodian 0 rejects too rather than leave the node pending, as a
        # fault it cannot confirm (its own share is sound), and the stake comes back: a
        # custodian that rejected honest nodes used to have their stakes forfeited.
        half = market_for(settings, 5)
        owed_before = half.pending()
        context = rows.node_context(market.chain.chain_id, task_id, half.chain.address, arch)
        keys_on_chain = Custody(market).custodian_keys(task_id)
        data = load_file(_owner_rows(files, tmp_path))
        good, _ = rows.seal_rows(data.X, data.y, 10, keys_on_chain, context)
        junk_cids = (half.store.add(io.BytesIO(good)), half.store.add(io.BytesIO(os.urandom(900))))
        record = rows.PrivateNode(arch, len(data), junk_cids).to_bytes()
        junk = half.submit(task_id, arch, half.store.add(io.BytesIO(record))).node_id
        _wait("the child's score", lambda: market.node(child).status == "scored", procs)
        _wait("the theft's rejection", lambda: market.node(theft).status == "rejected", procs)
        assert market.nodes(task_id)[theft].reason == "corrupt"
        _wait(
            "the half-junk node's rejection", lambda: market.node(junk).status == "rejected", procs
        )
        assert market.nodes(task_id)[junk].reason == "unconfirmed"
        assert half.pending() == owed_before + 10**16  # its stake of 0.01 ETH, back
        recorded = market.node(child).accuracy_bps
        assert recorded >= 2000
        assert market.node(unfit).status == "rejected"
        assert market.nodes(task_id)[unfit].reason.startswith("unfit-spec")
        custody = Custody(market)
        # the chain holds commitments, the store only ciphertext: the node's CID is a record
        assert custody.commitment(child, 0) and custody.commitment(child, 1)
        record = get_bytes(market.store, market.node(child).cid, 4096)
        assert json.loads(record)["format"] == "bountytree/private-node@1"
        cli_ok(settings, "finalize", "--task", str(task_id))
        _wait("the hand-over", lambda: custody.require(task_id).settled, procs)
    finally:
        for p in procs:
            p.kill()
            p.wait()
    out_dir = tmp_path / "model"
    # anyone without the sponsor's key gets nothing, in one line
    assert "--key-file" in cli_error(
        settings, "model", "export", "--task", str(task_id), "--out", str(out_dir)
    )
    assert "private" in cli_error(
        settings, "model", "export", "--task", str(task_id), "--node", str(arch),
        "--out", str(out_dir), "--key-file", str(keys["c0"]),
    )  # fmt: skip
    cli_ok(
        settings, "model", "export", "--task", str(task_id), "--out", str(out_dir),
        "--key-file", str(keys["sponsor"]),
    )  # fmt: skip
    spec = parse_spec(SPEC)
    model = build_torch(spec)
    model.load_state_dict(weights_io.load((out_dir / "model.safetensors").read_bytes(), spec))
    validation = load_file(files["validation"])
    with torch.no_grad():
        correct = int(
            (model(torch.from_numpy(validation.X)).argmax(1).numpy() == validation.y).sum()
        )
    assert round_down(correct * 10_000 // len(validation), DEFAULT_MARGIN_BPS) == recorded

    # What every other party holds: the store (every block of the session), each custodian's
    # folder and its output. None of it contains the winner's weights in the clear (the first
    # 32 bytes of each tensor as float32, as a weights file would hold them).
    needles = [t.numpy().tobytes()[:32] for t in model.state_dict().values()]
    views = [Path(settings.store), Path(settings.home) / "custodian"]
    # Not the store's SQLite index (digests and offsets only): opening and closing it from this
    # process would drop this process's own POSIX locks on it, under its open connection.
    held = [
        f
        for folder in views
        for f in folder.rglob("*")
        if f.is_file() and not f.name.startswith("index.sqlite")
    ]
    assert any("custodian" in str(f) for f in held)  # the custodians' holdings are there
    for f in held:
        data = f.read_bytes()
        assert not any(n in data for n in needles), f
    for log in tmp_path.glob("*.log"):
        assert not any(n in log.read_bytes() for n in needles)
    # the sponsor publishes its validation file: anyone checks the custodians scored on its rows
    cli_ok(settings, "audit", "publish", "--task", str(task_id))
    audited = cli_ok(settings, "audit", "--task", str(task_id))
    assert "validation shares are the published file's" in audited, audited


def _private_task(
    settings, files, tmp_path, name: str, *options: str
) -> tuple[int, dict[str, Path]]:
    """A private task (with `options` to `task create`) whose custody all three accepted and
    whose validation rows are shared: (its id, the parties' key files)."""
    address, keys = _approved_keys(settings, tmp_path)
    task_id = created_task_id(
        cli_ok(settings, *_create(settings, files, name), "--private-models", *options,
               *_terms(address, keys))
    )  # fmt: skip
    _accept_and_share(settings, task_id, keys)
    return task_id, keys


def _withhold(settings, cid: str):
    """The store stops serving the file at `cid`: (the store, the file, to serve it again)."""
    from bountytree.storage.cid import digest_from_cid
    from bountytree.storage.embedded import EmbeddedStore
    from tests.store_damage import remove

    store = EmbeddedStore(Path(settings.store))
    sealed = get_bytes(store, cid, rows.MAX_SEALED_ROWS_BYTES)
    remove(store, digest_from_cid(cid))
    return store, sealed


def _submit_child(settings, files, tmp_path, task_id: int, parent: int) -> int:
    """A data owner's child of `parent`, its rows sent as shares (account 2)."""
    return node_id_of(
        cli_ok(settings, "custody", "submit", "--task", str(task_id), "--parent", str(parent),
               "--data", str(_owner_rows(files, tmp_path)), "--account", "2")
    )  # fmt: skip


@contextlib.contextmanager
def _running(procs: list[subprocess.Popen]) -> Iterator[list[subprocess.Popen]]:
    """The services, stopped when the block ends, however it ends (a process the block
    replaces in the list is the one stopped)."""
    try:
        yield procs
    finally:
        for p in procs:
            p.kill()
            p.wait()


def _child_of_a_scored_architecture(settings, files, tmp_path, procs, task_id: int) -> int:
    market = market_for(settings)
    arch = _propose(settings, task_id, tmp_path)
    _wait("the architecture's score", lambda: market.node(arch).status == "scored", procs)
    return _submit_child(settings, files, tmp_path, task_id, arch)


def test_a_custodian_killed_mid_training_loses_nothing_and_the_round_is_retried(
    settings, deployed, files, tmp_path
):
    task_id, keys = _private_task(settings, files, tmp_path, "killed")
    peer, started = _services(settings, keys, task_id, tmp_path)
    market = market_for(settings)
    with _running(started) as procs:
        child = _child_of_a_scored_architecture(settings, files, tmp_path, procs, task_id)
        training = f"node {child}: train session"
        _wait("the training session", lambda: training in (tmp_path / "c1.log").read_text(), procs)
        procs[2].kill()  # custodian 1, and with it its session (it dies with its parent)
        procs[2].wait()
        _wait(
            "custodian 0 to give the round up",
            lambda: f"node {child}: no train session" in (tmp_path / "c0.log").read_text(),
            procs[:2],
        )
        assert Custody(market).commitment(child, 0) is None  # nothing half-done was kept
        procs[2] = _custodian(settings, keys, 1, peer, task_id, tmp_path / "c1.log")
        _wait("the child's score", lambda: market.node(child).status == "scored", procs)
    assert market.node(child).accuracy_bps >= 2000


@pytest.mark.parametrize("said", ["corrupt", "unfit-spec"])
def test_a_custodian_that_rejects_honest_nodes_takes_nothing_from_their_authors(
    settings, deployed, files, tmp_path, said
):
    """Custodian 1 deviates: it rejects the honest child first (`custodian-rejects:1:…`). Said
    of its own share (corrupt), a fault custodian 0 cannot check, custodian 0 follows as
    `unconfirmed` and the stake comes back (it used to be forfeited to the pool). Said of what
    both read alike (the spec unfit), custodian 0, which finds it fit, does not follow: the node
    stays pending, and its author reclaims the stake at the end. Either way the author keeps its
    stake and its reputation."""
    market = market_for(settings)
    task_id, keys = _private_task(settings, files, tmp_path, f"rejects as {said}")
    code = next(r for r in Reason if r.label == said)
    _, started = _services(settings, keys, task_id, tmp_path, f"custodian-rejects:1:{int(code)}")
    owner = market_for(settings, 2)
    with _running(started) as procs:
        arch = _propose(settings, task_id, tmp_path)
        _wait("the architecture's score", lambda: market.node(arch).status == "scored", procs)
        owed, points = owner.pending(), owner.reputation(owner.chain.address)
        child = _submit_child(settings, files, tmp_path, task_id, arch)
        if code.seen_alone(architecture=False):
            _wait("the rejection", lambda: market.node(child).status == "rejected", procs)
            assert market.nodes(task_id)[child].reason == "unconfirmed"
            assert owner.pending() == owed + 10**16  # its stake of 0.01 ETH, back
        else:
            given_up = f"node {child}: the other custodian says {said}; it is not; given up on"
            _wait("custodian 0 to give it up", lambda: given_up in (tmp_path / "c0.log").read_text(),
                  procs)  # fmt: skip
            assert market.node(child).status == "pending"  # its stake stays its author's
        assert owner.reputation(owner.chain.address) == points


def test_a_custodian_killed_between_its_session_and_its_commitment_loses_nothing(
    settings, deployed, files, tmp_path
):
    """Custodian 1 is stopped right after a training session ended well, before it kept its
    share as the node's and committed to it (`custodian-trained:1`). Custodian 0 commits. The
    share was already kept (tentatively, by the session, before either custodian said so), so
    custodian 1, restarted, makes it the node's, commits, and the child is scored. (Before, the
    share lived only in the session's scratch folder: the node stayed pending for good, custodian
    0 committed to a share whose other half was gone.)"""
    market = market_for(settings)
    custody = Custody(market)
    task_id, keys = _private_task(settings, files, tmp_path, "killed after training")
    peer, started = _services(settings, keys, task_id, tmp_path, "custodian-trained:1")
    with _running(started) as procs:
        child = _child_of_a_scored_architecture(settings, files, tmp_path, procs, task_id)
        procs[2].wait(timeout=WAIT_S)  # it stops itself at the failpoint
        _wait("custodian 0's commitment", lambda: custody.commitment(child, 0), procs[:2])
        assert custody.commitment(child, 1) is None
        procs[2] = _custodian(settings, keys, 1, peer, task_id, tmp_path / "c1.log")
        _wait("the child's score", lambda: market.node(child).status == "scored", procs)
    assert market.node(child).accuracy_bps >= 2000


def test_a_custodian_killed_after_scoring_attests_what_both_kept_without_scoring_again(
    settings, deployed, files, tmp_path
):
    """Custodian 1 is stopped right after the architecture's scoring session ended well, before
    it attested (`custodian-scored:1`); custodian 0 attests. Restarted, custodian 1 attests the
    record it kept in that session, and neither runs the node's scoring again. (Before, custodian
    0 ran it again every round the other had not attested, each run drawing fresh shares of the
    best: two runs' shares could end up kept, one on each side, and a custodian that never
    attested got a run, and a bit of the score, a round.) Both shares of the best after it then
    add up to the node's exact score."""
    market = market_for(settings)
    custody = Custody(market)
    task_id, keys = _private_task(settings, files, tmp_path, "killed after scoring")
    peer, started = _services(settings, keys, task_id, tmp_path, "custodian-scored:1")
    with _running(started) as procs:
        arch = _propose(settings, task_id, tmp_path)
        procs[2].wait(timeout=WAIT_S)  # it stops itself at the failpoint
        _wait("custodian 0's attestation", lambda: custody.attestation(arch, 0), procs[:2])
        assert custody.attestation(arch, 1) is None
        procs[2] = _custodian(settings, keys, 1, peer, task_id, tmp_path / "c1.log")
        _wait("the architecture's score", lambda: market.node(arch).status == "scored", procs)
    sessions = [
        (tmp_path / f"c{i}.log").read_text().count(f"node {arch}: score session") for i in (0, 1)
    ]
    assert sessions == [1, 1], sessions  # one run, on each side
    folder = settings.home / "custodian" / str(market.chain.chain_id)
    best = [
        Holdings(
            folder / ganache_account(CUSTODIANS[i]).address.lower(),
            read_private_key(keys[f"c{i}"]),
        ).best_before(task_id, arch + 1, i, arch)
        for i in (0, 1)
    ]
    exact = float(ring.decode(ring.combine(*best)))
    recorded = market.node(arch).accuracy_bps
    assert exact == int(exact) and recorded <= exact < recorded + DEFAULT_MARGIN_BPS, exact


def test_a_custodian_that_never_says_it_kept_its_scoring_gets_one_run(
    settings, deployed, files, tmp_path
):
    """Custodian 1 deviates: every scoring session of the architecture ends on its side once the
    record is revealed, before it says it kept its result (`custodian-withholds:1`). Each run lets
    a deviating custodian choose what the record compares (its share of the best offset; as
    custodian 0, every threshold), so each run is a fresh question about the node's exact score.
    Custodian 0 used to run the scoring again every round; a scoring that revealed the record is
    now never run again (MAX_SCORING_RUNS), the node is given up on, and it stays pending."""
    from custodian.service import MAX_SCORING_RUNS

    task_id, keys = _private_task(settings, files, tmp_path, "withholds")
    market = market_for(settings)
    _, started = _services(settings, keys, task_id, tmp_path, "custodian-withholds:1")
    with _running(started) as procs:
        arch = _propose(settings, task_id, tmp_path)
        _wait(
            "custodian 0 to give the architecture up",
            lambda: f"node {arch}: a scoring revealed" in (tmp_path / "c0.log").read_text(),
            procs,
        )
        time.sleep(10)  # rounds go on: custodian 0 scores it no more
    runs = (tmp_path / "c0.log").read_text().count(f"node {arch}: score session")
    assert runs == MAX_SCORING_RUNS == 1, runs
    assert market.node(arch).status == "pending"


def test_a_custodian_killed_before_saying_it_kept_its_share_leaves_nothing_committed(
    settings, deployed, files, tmp_path
):
    """Custodian 1's session process dies right after it kept its share tentatively, before it
    said so (`custodian-kept:1`): custodian 0 never hears it, so neither commits; the next round
    trains the node again, both keep and commit, and the child is scored."""
    market = market_for(settings)
    custody = Custody(market)
    task_id, keys = _private_task(settings, files, tmp_path, "killed before saying")
    peer, started = _services(settings, keys, task_id, tmp_path, "custodian-kept:1")
    with _running(started) as procs:
        child = _child_of_a_scored_architecture(settings, files, tmp_path, procs, task_id)
        _wait(
            "custodian 0 to give the round up",
            lambda: f"node {child}: no train session" in (tmp_path / "c0.log").read_text(),
            procs,
        )
        assert custody.commitment(child, 0) is None and custody.commitment(child, 1) is None
        procs[2].kill()
        procs[2].wait()
        procs[2] = _custodian(settings, keys, 1, peer, task_id, tmp_path / "c1.log")
        _wait("the child's score", lambda: market.node(child).status == "scored", procs)


def test_custodians_finalize_a_due_task_leaving_a_node_neither_can_score(
    settings, deployed, files, tmp_path
):
    """The child's record falls out of range in both custodians (`custodian-out-of-range`, as a
    deviating custodian would make it): it is never scored. Once the task is due, both agree to
    finalize leaving it, and the task is finalized with the architecture as its winner. (Such a
    node used to hold the task until the grace period after its deadline: only the scorer may
    finalize leaving nodes.) Custodian 1 could not read its validation share for the child
    (withheld again after the architecture's scoring) and said so; served after the deadline,
    it is read, the child given up, and custodian 1 takes its word back before it agrees: a
    given-up node waits on nobody's rows, and the bond is held for the audit. (Its word was
    reviewed only at a round's start, so an agreement in the round it gave the child up could
    finalize the task with the word standing and burn the bond: attacker review.)"""
    market = market_for(settings)
    custody = Custody(market)
    task_id, keys = _private_task(settings, files, tmp_path, "left pending", *BOND)
    arch = _propose(settings, task_id, tmp_path)
    child_id = arch + 1  # the next node of the chain: nothing else submits meanwhile
    failpoint = f"custodian-out-of-range:{child_id}"
    _, started = _services(settings, keys, task_id, tmp_path, failpoint, both=True, fetch=2)
    with _running(started) as procs:
        _wait("the architecture's score", lambda: market.node(arch).status == "scored", procs)
        share1 = custody.validation_shares(task_id)[1]
        store, sealed = _withhold(settings, share1)  # withheld now
        child = _submit_child(settings, files, tmp_path, task_id, arch)
        assert child == child_id
        _wait("custodian 1's word", lambda: custody.validation_unread(task_id) == 0b10, procs)
        advance_time(settings, 2 * 3600 + 60)  # past the deadline: due
        assert store.add(io.BytesIO(sealed)) == share1  # served after all
        _wait(
            "both custodians to give the child up",
            lambda: all(
                f"node {child}: its record fell out of range"
                in (tmp_path / f"c{i}.log").read_text()
                for i in (0, 1)
            ),
            procs,
        )
        _wait("the task's finalization", lambda: market.task(task_id).finalized, procs)
    task = market.task(task_id)
    assert task.winner == arch and market.node(child).status == "pending"
    assert task.bond_state == "held" and not task.validation_unread
    assert "the sponsor's validation share is read; said so" in (tmp_path / "c1.log").read_text()


def test_validation_shares_of_other_rows_than_the_committed_file_show_in_the_audit(
    settings, deployed, files, tmp_path
):
    """A sponsor commits to its validation file but gives the custodians shares of other rows
    (its labels shuffled, say, to steer which node wins), then publishes the committed file for
    its audit. The custodians cannot tell, and the audit could not recompute private scores: the
    swap went unseen. Validation shares are now made from the file and the commitment's salt
    alone, so the audit makes them again from the published file and finds other CIDs."""
    address, keys = _approved_keys(settings, tmp_path)
    task_id = created_task_id(
        cli_ok(settings, *_create(settings, files, "other rows"), "--private-models",
               *_terms(address, keys))
    )  # fmt: skip
    _accept(settings, task_id, keys)
    market = market_for(settings)  # the sponsor
    custody = Custody(market)
    committed = load_file(files["validation"])
    other = Dataset(committed.X, committed.y[::-1].copy())
    context = rows.validation_context(market.chain.chain_id, task_id)
    sealed = rows.seal_rows(other.X, other.y, 10, custody.custodian_keys(task_id), context)
    custody.share_validation(task_id, tuple(market.store.add(io.BytesIO(f)) for f in sealed))
    advance_time(settings, 2 * 3600 + 60)  # past the deadline, nothing submitted
    cli_ok(settings, "finalize", "--task", str(task_id))
    cli_ok(settings, "audit", "publish", "--task", str(task_id))
    audited = run_cli(settings, "audit", "--task", str(task_id))
    out = audited.stdout.decode()
    assert audited.returncode == 1, (out, audited.stderr.decode())
    assert "are not the published file's" in out, out


def test_a_validation_share_the_sponsor_never_serves_is_said_on_chain_and_taken_back_once_read(
    settings, deployed, files, tmp_path
):
    """The sponsor shares its validation rows' CIDs and does not serve custodian 1's share. The
    custodians blame no node for it, so every node used to wait and the sponsor got its bond
    back: a task that paid nobody. Custodian 1 now says on-chain, after its fetch timeout, that
    it cannot read its share, which makes a finalize leaving the nodes burn the bond
    (tests/contracts/test_private_custody.py). Served again, the share is read and pinned; the
    word stays while the architecture that waited on it is unscored (served at the last
    moment, the rows still owe its session), and is taken back once it is scored, though a
    node revealed after the read is still pending (its spec never served). Custodian 1's
    record of its word is lost before (a holdings folder restored from before it): the word
    on-chain is taken as its own and taken back the same (it stood for good: attacker review). It used to stay
    until no node was pending, which a busy task never is: an honest sponsor's bond burned for
    a node left pending for another reason."""
    market = market_for(settings)
    custody = Custody(market)
    task_id, keys = _private_task(settings, files, tmp_path, "never served", *BOND)
    share1 = custody.validation_shares(task_id)[1]
    store, sealed = _withhold(settings, share1)  # never served
    peer, started = _services(settings, keys, task_id, tmp_path, fetch=2, session=8)
    c1_log = tmp_path / "c1.log"
    with _running(started) as procs:
        arch = _propose(settings, task_id, tmp_path)
        _wait("custodian 1's word", lambda: custody.validation_unread(task_id) == 0b10, procs)
        assert market.node(arch).status == "pending"
        assert market.task(task_id).pending_nodes == 1
        log = c1_log.read_text()
        assert "said the sponsor's validation share cannot be read" in log, log
        assert "rejected" not in log  # the sponsor's file blames no node

        for p in procs[1:]:  # both custodians stop; they come back with a long fetch timeout
            p.kill()
            p.wait()
        # custodian 1's holdings restored from before its word: the word on-chain is its own
        folder = settings.home / "custodian" / str(market.chain.chain_id)
        custodian_1 = ganache_account(CUSTODIANS[1]).address.lower()
        record = folder / custodian_1 / f"task-{task_id}" / "validation-word"
        record.unlink()
        assert store.add(io.BytesIO(sealed)) == share1  # served after all
        slow = {"fetch": 600, "session": 8}
        procs[2] = _custodian(settings, keys, 1, peer, task_id, c1_log, **slow)
        read = f"task {task_id}: read the validation share; newest node {arch}"
        _wait("custodian 1's read", lambda: read in c1_log.read_text(), [procs[0], procs[2]])
        # read, and the architecture unscored (custodian 0 is away): the word stays
        assert custody.validation_unread(task_id) == 0b10

        spec_file = tmp_path / "later.json"
        narrower = [
            {"type": "Linear", "in_features": 64, "out_features": 24},
            {"type": "ReLU"},
            {"type": "Linear", "in_features": 24, "out_features": 10},
        ]
        spec_file.write_text(json.dumps({**SPEC, "name": "a later one", "layers": narrower}))
        later = node_id_of(
            cli_ok(settings, "propose", "--task", str(task_id), "--spec", str(spec_file),
                   "--account", "1")
        )  # fmt: skip
        _withhold(settings, market.node(later).cid)  # its spec never served
        procs[1] = _custodian(settings, keys, 0, peer, task_id, tmp_path / "c0.log", **slow)
        _wait("the architecture's score", lambda: market.node(arch).status == "scored", procs)
        _wait("the word taken back", lambda: custody.validation_unread(task_id) == 0, procs)
        assert market.node(later).status == "pending"  # pending, and holding no word
        assert not market.task(task_id, with_info=False).validation_unread
    assert "the sponsor's validation share is read; said so" in c1_log.read_text()
    assert share1 in store.pins()  # kept: not serving it again stalls nothing


def test_a_word_on_the_validation_share_is_not_excused_by_the_dealer_s_absence(
    settings, deployed, files, tmp_path
):
    """Custodian 1 cannot read its validation share and says so. The share is served while the
    dealer is away: the architecture it held now waits for the dealer, which both custodians
    say on-chain, and the word on the share stays (had the rows come in time, the node would
    have been scored before the dealer went). The dealer comes, the node is scored, and the word
    is taken back. Excused for the dealer, the word was cleared in the first version of the
    per-node rule (attacker review): a sponsor that served its share at the last moment, while
    a dealer was away, finalized in the next block and kept its bond."""
    market = market_for(settings)
    custody = Custody(market)
    task_id, keys = _private_task(settings, files, tmp_path, "served late", *BOND)
    share1 = custody.validation_shares(task_id)[1]
    store, sealed = _withhold(settings, share1)
    peer, started = _services(
        settings, keys, task_id, tmp_path, with_dealer=False, fetch=2, session=8, dealer=2
    )
    c1_log = tmp_path / "c1.log"
    with _running(started) as procs:
        arch = _propose(settings, task_id, tmp_path)
        _wait("custodian 1's word", lambda: custody.validation_unread(task_id) == 0b10, procs)
        assert store.add(io.BytesIO(sealed)) == share1  # served, the dealer away
        _wait("the dealer's word", lambda: custody.dealer_wait(arch) == 0b11, procs)
        begun = c1_log.read_text().count("session at")
        _wait(
            "two more sessions", lambda: c1_log.read_text().count("session at") > begun + 1, procs
        )
        assert custody.validation_unread(task_id) == 0b10  # the word stands
        assert market.node(arch).status == "pending"

        procs.append(_dealer(settings, keys, peer, tmp_path / "dealer.log"))
        _wait("the architecture's score", lambda: market.node(arch).status == "scored", procs)
        _wait("the word taken back", lambda: custody.validation_unread(task_id) == 0, procs)
    log = c1_log.read_text()
    assert f"task {task_id}: read the validation share; newest node {arch}" in log, log
    assert log.count("the sponsor's validation share is read; said so") == 1, log


def test_a_node_waiting_for_a_dealer_that_never_comes_is_said_on_chain_until_it_comes(
    settings, deployed, files, tmp_path
):
    """The dealer accepted custody and never runs. No session happens without it, so every node
    waits, and the dealer used to be paid its third at settlement all the same. Each custodian
    now says on-chain, once every session with the other found the dealer alone missing for its
    dealer timeout, that the node waits for the dealer (a task finalized leaving such a node
    refunds the dealer's third: tests/contracts/test_private_custody.py). A dealer that then
    comes to a session and goes silent does not take the word back (it used to: it had come);
    the dealer started, each takes it back at the node's next session, and the architecture is
    scored."""
    task_id, keys = _private_task(settings, files, tmp_path, "no dealer")
    market = market_for(settings)
    custody = Custody(market)
    peer, started = _services(
        settings, keys, task_id, tmp_path, with_dealer=False, session=8, dealer=2
    )
    logs = [tmp_path / f"c{i}.log" for i in (0, 1)]
    with _running(started) as procs:
        arch = _propose(settings, task_id, tmp_path)
        _wait("both custodians' word", lambda: custody.dealer_waiting(task_id) == 1, procs)
        assert custody.dealer_wait(arch) == 0b11 and market.node(arch).status == "pending"
        for log in logs:
            text = log.read_text()
            assert f"node {arch}: said it waits for the dealer, who does not come" in text, text
            assert "rejected" not in text  # the dealer's absence blames no node

        view = custody.of(task_id)
        assert view is not None
        for _ in range(5):  # its rendezvous may fall between two of the custodians' sessions
            silent = subprocess.run(
                [sys.executable, "-m", "tests.e2e.silent_dealer", peer, "8",
                 str(keys["dealer"]), f"{view.keys[0].hex()}:{view.keys[1].hex()}"],
                capture_output=True, timeout=120,
            )  # fmt: skip
            if b"went silent" in silent.stdout:
                break
        else:
            raise AssertionError(f"the silent dealer never joined: {silent.stderr[-300:]!r}")
        # it ends 20 s after the custodians gave its session up: one more session of each
        # proves they have noted how that one ended
        begun = {log: log.read_text().count("session at") for log in logs}
        _wait(
            "both custodians' next session",
            lambda: all(log.read_text().count("session at") > n for log, n in begun.items()),
            procs,
        )
        assert custody.dealer_wait(arch) == 0b11  # the word stands: it came, and failed them
        for log in logs:
            assert "the dealer came to its session" not in log.read_text()
        procs.append(_dealer(settings, keys, peer, tmp_path / "dealer.log"))
        _wait("the architecture's score", lambda: market.node(arch).status == "scored", procs)
    assert custody.dealer_wait(arch) == 0 and custody.dealer_waiting(task_id) == 0
    for log in logs:
        assert f"node {arch}: the dealer came to its session; said so" in log.read_text()


def _assert_held_over_budget(logs: list[Path], node: int, kind: str) -> None:
    """Each custodian held exactly MAX_OVER_BUDGET sessions of `kind` for the node, each over
    the budget, and never said the dealer was to blame."""
    from custodian.service import MAX_OVER_BUDGET

    for log in logs:
        text = log.read_text()
        held = text.count(f"node {node}: {kind} session") - text.count("did not join")
        assert held == MAX_OVER_BUDGET, text
        assert text.count(f"node {node}: the {kind} session ran over") == MAX_OVER_BUDGET, text
        assert "waits for the dealer" not in text, text


def test_a_node_too_slow_to_train_in_the_session_budget_is_refused_after_two_tries(
    settings, deployed, files, tmp_path
):
    """An architect's recipe of a hundred epochs passes the operations counted before training
    (far under MAX_PRIVATE_OPS) and is scored at once, but a data owner's child of it cannot be
    trained within the custodians' session budget. Each such session used to be tried again
    every round for the whole budget: one fee bought both custodians' and the dealer's time for
    good, and held every node behind it. Each custodian now counts a training session over the
    budget that the dealer did not make slow, and after MAX_OVER_BUDGET rejects
    the node as `too-slow` (its stake back, no reputation taken), the other following: the
    gain, sessions spent on it, is two. The dealer is not blamed, and the task goes on: a later architecture is
    scored."""

    market = market_for(settings)
    custody = Custody(market)
    owner = market_for(settings, 2)
    task_id, keys = _private_task(settings, files, tmp_path, "too slow")
    slow = {**SPEC, "training": {**SPEC["training"], "epochs": 100}}
    arch = _propose(settings, task_id, tmp_path, slow)
    logs = [tmp_path / f"c{i}.log" for i in (0, 1)]
    _, started = _services(settings, keys, task_id, tmp_path, budget=150, session=15)
    with _running(started) as procs:
        _wait("the architecture's score", lambda: market.node(arch).status == "scored", procs)
        owed, points = owner.pending(), owner.reputation(owner.chain.address)
        child = _submit_child(settings, files, tmp_path, task_id, arch)
        _wait("the child's rejection", lambda: market.node(child).status == "rejected", procs)
        later = _propose(settings, task_id, tmp_path)
        _wait("a later node's score", lambda: market.node(later).status == "scored", procs)
    assert market.nodes(task_id)[child].reason == "too-slow"
    assert owner.pending() == owed + 10**16  # its stake of 0.01 ETH, back
    assert owner.reputation(owner.chain.address) == points
    assert custody.dealer_wait(child) == 0
    _assert_held_over_budget(logs, child, "train")


def _slow_to_score(relus: int) -> dict:
    """An architecture under every limit a spec has (its fixed-point drift included), never
    trained, whose scoring on shares is slow: a 3x3 convolution out to 1,024 channels followed by
    `relus` ReLUs (65,536 comparisons a row each, each a round of the dealer's randomness and
    messages), and back to one channel."""
    wide = {
        "type": "Conv2d",
        "in_channels": 1,
        "out_channels": 1024,
        "kernel_size": 3,
        "padding": 1,
    }
    narrow = {**wide, "in_channels": 1024, "out_channels": 1}
    relu = {"type": "ReLU"}
    return {
        **SPEC,
        "name": "slow to score",
        "input_shape": [1, 8, 8],
        "layers": [wide, *[relu] * relus, narrow, relu, {"type": "Flatten"},
                   {"type": "Linear", "in_features": 64, "out_features": 10}],
    }  # fmt: skip


def test_an_architecture_too_slow_to_score_in_the_session_budget_is_refused_after_two_tries(
    settings, deployed, files, tmp_path
):
    """An architecture is never trained, so nothing counted before training stops one that is
    cheap to propose but too slow to score on the sponsor's 400 rows within the custodians'
    budget. Its scoring session was tried again every round for the whole budget: one fee held
    both custodians, the dealer and every task they serve for good. Scorings now count as
    trainings do: after MAX_OVER_BUDGET the custodians reject it as `too-slow` (both had
    committed to its shares; the architect's stake back, no reputation taken), the dealer is
    not blamed, and a later architecture is scored."""

    market = market_for(settings)
    architect = market_for(settings, 1)
    task_id, keys = _private_task(settings, files, tmp_path, "too slow to score")
    owed, points = architect.pending(), architect.reputation(architect.chain.address)
    slow = _propose(settings, task_id, tmp_path, _slow_to_score(16))
    logs = [tmp_path / f"c{i}.log" for i in (0, 1)]
    _, started = _services(settings, keys, task_id, tmp_path, budget=150, session=15)
    with _running(started) as procs:
        _wait("the slow architecture's rejection", lambda: market.node(slow).status == "rejected",
              procs, timeout=WAIT_S + 2 * 150)  # fmt: skip
        assert architect.pending() == owed + 10**16  # its stake of 0.01 ETH, back
        assert architect.reputation(architect.chain.address) == points
        later = _propose(settings, task_id, tmp_path)
        _wait("a later node's score", lambda: market.node(later).status == "scored", procs)
    assert market.nodes(task_id)[slow].reason == "too-slow"
    assert all(Custody(market).commitment(slow, i) for i in (0, 1))  # it was a scoring
    _assert_held_over_budget(logs, slow, "score")


def test_custodians_that_counted_a_slow_training_differently_both_refuse_it(
    settings, deployed, files, tmp_path
):
    """Custodian 0 counted the child's training over the budget twice where custodian 1 did
    not (its service stopped the session, say, while custodian 1 timed out waiting on it). It
    gave the node up alone, and the two parted ways for good: custodian 1 kept asking for the
    child's session and custodian 0 for the next node's, and neither round went past them
    (attacker review). Custodian 0's rejection is on-chain, and custodian 1 follows it as
    `too-slow` without training; a later architecture is scored."""
    from custodian.service import MAX_OVER_BUDGET

    market = market_for(settings)
    task_id, keys = _private_task(settings, files, tmp_path, "counted apart")
    peer, started = _services(settings, keys, task_id, tmp_path)
    with _running(started) as procs:
        arch = _propose(settings, task_id, tmp_path)
        _wait("the architecture's score", lambda: market.node(arch).status == "scored", procs)
        procs[1].kill()  # custodian 0
        procs[1].wait()
        child = _submit_child(settings, files, tmp_path, task_id, arch)
        c0 = ganache_account(CUSTODIANS[0]).address.lower()
        folder = settings.home / "custodian" / str(market.chain.chain_id) / c0
        holdings = Holdings(folder, read_private_key(keys["c0"]))
        for _ in range(MAX_OVER_BUDGET):
            holdings.note_over_budget(task_id, child, "train")
        procs[1] = _custodian(settings, keys, 0, peer, task_id, tmp_path / "c0.log")
        _wait("the child's rejection", lambda: market.node(child).status == "rejected", procs)
        later = _propose(settings, task_id, tmp_path)
        _wait("a later node's score", lambda: market.node(later).status == "scored", procs)
    assert market.nodes(task_id)[child].reason == "too-slow"
    assert f"node {child}: trained" not in (tmp_path / "c1.log").read_text()
