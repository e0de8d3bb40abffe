"""`bountytree audit`: after finalize the sponsor opens its validation commitment, and anyone
recomputes every recorded score in plaintext under the Ladder. On the real chain, store, oracle
and two-party validator: an honest task audits clean; a task whose validator shifted its
counts (tests/oracle/hostile_validator.py) shows one mismatch per node."""

from __future__ import annotations

import pytest
from safetensors.torch import save as to_bytes_state

from bountytree.market.actions import Market
from bountytree.market.validation import commitment, opening, registered_salt
from bountytree.models.fixedpoint import TIE_EPS
from bountytree.models.weights import load, max_bytes
from bountytree.processes import free_port
from bountytree.storage.cid import digest_from_cid
from bountytree.storage.store import add_bytes, add_file, get_bytes
from tests.conftest import (
    advance_time,
    cli_error,
    cli_ok,
    market_for,
    new_task,
    node_id_of,
    run_cli,
    validator_process,
)

pytestmark = pytest.mark.mpc

MLP = "examples/mlp.json"
SHIFT = 60  # rows the hostile validator adds to every count (of 400)


def test_the_commitment_is_to_the_files_cid_and_opens_with_the_salt(settings, tmp_path):
    """SHA-256(salt ‖ cid), with cid the digest of the file's CIDv0 as the store names it:
    computed without the store, and opened by what the sponsor publishes."""
    from bountytree.storage.connect import open_store

    path = tmp_path / "v.csv"
    path.write_bytes(b"px0,label\n" + b"0.5,1\n" * 200_000)  # several 256 KiB chunks
    salt = bytes(range(32))
    cid = add_file(open_store(str(tmp_path / "store")), path)
    assert commitment(path, salt) == opening(salt, digest_from_cid(cid))
    assert opening(bytes(32), digest_from_cid(cid)) != commitment(path, salt)


def _market_with_two_trained_nodes(settings, files, name: str) -> tuple[int, list[int]]:
    task_id = new_task(settings, files["validation"], name, target="0.3")
    arch = node_id_of(
        cli_ok(settings, "propose", "--task", str(task_id), "--spec", MLP, "--account", "1")
    )
    children = [
        node_id_of(
            cli_ok(
                settings,
                "--task",
                str(task_id),
                "--data",
                str(files[owner]),
                "--parent",
                str(arch),
                "--account",
                account,
                "--quiet",
                module="trainer",
            )
        )
        for owner, account in (("owner1", "3"), ("owner2", "4"))
    ]
    return task_id, [arch, *children]


def _audit(settings, task_id: int, monkeypatch, capsys) -> tuple[int, str]:
    """`audit publish` then `audit`, as the sponsor and a stranger run them."""
    cli_ok(settings, "audit", "publish", "--task", str(task_id))
    proc = run_cli(settings, "audit", "--task", str(task_id), "--account", "9")
    return proc.returncode, proc.stdout.decode() + proc.stderr.decode()


def test_an_honest_task_audits_clean(settings, deployed, files, monkeypatch, capsys):
    task_id, nodes = _market_with_two_trained_nodes(settings, files, "audit honest")
    out = cli_ok(settings, "--once", "--task", str(task_id), module="oracle")
    market = market_for(settings)
    assert market.task(task_id, with_info=False).finalized, out
    status, report = _audit(settings, task_id, monkeypatch, capsys)
    assert status == 0, report
    assert f"{len(nodes)} scored node(s) checked, 0 mismatch(es)" in report, report


def test_a_validator_that_shifted_its_counts_is_caught(
    settings, deployed, files, monkeypatch, capsys
):
    task_id, nodes = _market_with_two_trained_nodes(settings, files, "audit shifted")
    address = f"127.0.0.1:{free_port()}"
    validator = validator_process(
        settings, task_id, files["validation"], address,
        "--one-session",  # in this process, where the shift is installed
        hostile=("--shift", str(SHIFT)),
    )  # fmt: skip
    out = cli_ok(
        settings, "--once", "--task", str(task_id), "--validator", address, module="oracle"
    )
    _, err = validator.communicate(timeout=300)
    assert validator.returncode == 0, err.decode()
    market = market_for(settings)
    assert all(market.node(n).status == "scored" for n in nodes), out
    assert market.task(task_id, with_info=False).finalized, out

    status, report = _audit(settings, task_id, monkeypatch, capsys)
    print(report)
    assert status == 1, report
    flagged = {
        int(line.split()[1].rstrip(":")) for line in report.splitlines() if line.startswith("node ")
    }
    assert flagged == set(nodes), report
    assert f"{len(nodes)} scored node(s) checked, {len(nodes)} mismatch(es)" in report


def test_a_node_crafted_to_sit_on_ties_is_reported_as_unchecked(
    settings, deployed, files, monkeypatch, capsys
):
    """A child whose class-1 logit is its class-0 logit, the tie offset cancelled: every row
    either would win sits on a tie, which another machine's arithmetic may break either way.
    The audit accepted any count within a node's undecided rows; for such a node that is nearly
    anything (and, as the best, it covered every later node: the second attacker review of the
    exact best). It is now reported as a node whose count cannot be checked, and the audit fails;
    the honest nodes beside it still match."""
    task_id, nodes = _market_with_two_trained_nodes(settings, files, "audit ties")
    market = market_for(settings, 5)
    parent = market.node(nodes[1])
    spec = market.architecture_spec(parent)
    state = load(get_bytes(market.store, parent.weights_cid(spec), max_bytes(spec)), spec)
    last = len(spec.layers) - 1
    state[f"{last}.weight"][1] = state[f"{last}.weight"][0]
    state[f"{last}.bias"][1] = state[f"{last}.bias"][0] + TIE_EPS
    crafted = market.submit(task_id, parent.id, add_bytes(market.store, to_bytes_state(state)))
    out = cli_ok(settings, "--once", "--task", str(task_id), module="oracle")
    assert market.node(crafted.node_id).status == "scored", out
    if not market.task(task_id, with_info=False).finalized:
        advance_time(settings, 2 * 3600 + 60)
        cli_ok(settings, "finalize", "--task", str(task_id), "--account", "0")
    status, report = _audit(settings, task_id, monkeypatch, capsys)
    assert status == 1, report
    lines = [line for line in report.splitlines() if line.startswith("node ")]
    assert len(lines) == 1 and lines[0].startswith(f"node {crafted.node_id}:"), report
    assert "cannot be checked" in lines[0], report


def test_a_file_that_does_not_open_the_commitment_is_refused(
    settings, deployed, files, monkeypatch
):
    """A sponsor who publishes another file (here: one label changed) cannot pass an audit."""
    task_id = new_task(settings, files["validation"], "audit forged")
    market = market_for(settings)
    forged = files["validation"].read_bytes().replace(b",3\n", b",5\n", 1)
    cid = add_bytes(market.store, forged)
    salt = registered_salt(settings.home, market.chain.chain_id, task_id)
    monkeypatch.setattr(Market, "validation_opening", lambda self, t: (cid, salt))
    from bountytree.commands.audit import published_rows
    from bountytree.errors import UserError

    task = market.task(task_id)
    with pytest.raises(UserError, match="does not open the commitment"):
        published_rows(market, task_id, task.commitment, "label")


def test_user_mistakes_are_one_line_and_send_nothing(settings, deployed, files):
    task_id = new_task(settings, files["validation"], "audit early")
    line = cli_error(settings, "audit", "publish", "--task", str(task_id))
    assert f"task {task_id} is not finalized" in line
    assert "--task is required" in cli_error(settings, "audit")
    # An unpublished task cannot be audited; a stranger's account changes nothing.
    line = cli_error(settings, "audit", "--task", str(task_id), "--account", "9")
    assert "has not published its validation file" in line
