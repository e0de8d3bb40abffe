"""The test part `task create --split` keeps: scored once, for the finalized winner only, through
the real validator's admission gate and a real two-party session."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bountytree.delivery.model_card import front_matter, resolve
from bountytree.market.validation import registered_test, validator_folder
from bountytree.models import weights
from bountytree.models.datasets import load_file
from bountytree.storage.store import get_bytes
from demo.sample_data import digits, write_csv
from oracle.admission import (
    MAX_TEST_SESSIONS,
    TEST,
    VALIDATION,
    Gate,
    Refused,
    Wanted,
    _Missing,
    issue,
)
from oracle.service import Oracle
from tests.conftest import (
    advance_time,
    cli_ok,
    created_task_id,
    market_for,
    new_task,
    node_id_of,
)

pytestmark = pytest.mark.mpc

MLP = "examples/mlp.json"


def _plain_correct(market, node_id: int, rows) -> int:
    node = market.node(node_id)
    spec = market.architecture_spec(node)
    model = weights.load_model(get_bytes(market.store, node.weights_cid(spec), 1 << 24), spec)
    with torch.no_grad():
        return int((model(torch.from_numpy(rows.X)).argmax(1).numpy() == rows.y).sum())


def _split_task(settings, tmp_path, target: str = "0.5") -> int:
    sponsor_file = write_csv(digits().subset(np.arange(1000)), tmp_path / "sponsor.csv")
    out = cli_ok(
        settings,
        "task",
        "create",
        "--validation",
        str(sponsor_file),
        "--name",
        "tested",
        "--bounty",
        "1",
        "--target",
        target,
        "--deadline",
        "2h",
        "--split",
        "40/30/30",
    )
    assert "kept the test part" in out, out
    return created_task_id(out)


def test_the_winner_is_scored_once_on_the_test_part(settings, deployed, files, tmp_path):
    task_id = _split_task(settings, tmp_path)
    arch = node_id_of(
        cli_ok(settings, "propose", "--task", str(task_id), "--spec", MLP, "--account", "1")
    )
    cli_ok(
        settings,
        "--task",
        str(task_id),
        "--data",
        str(files["owner1"]),
        "--parent",
        str(arch),
        "--account",
        "3",
        "--quiet",
        module="trainer",
    )
    oracle_market = market_for(settings, 0)
    lines: list[str] = []
    oracle = Oracle(oracle_market, log=lines.append, settings_env=settings.to_env())
    (r,) = oracle.run_round([task_id])
    log = "\n".join(lines)
    task = oracle_market.task(task_id)
    assert task.finalized and task.winner, log
    assert r.error is None and r.test_bps is not None, log
    assert f"scoring winner node {task.winner} on the test part, once" in log

    home, chain_id = settings.home, oracle_market.chain.chain_id
    test_rows = load_file(registered_test(home, chain_id, task_id))
    assert len(test_rows) == task.info.test_rows == 300
    plain = _plain_correct(oracle_market, task.winner, test_rows)
    assert abs(r.test_bps * len(test_rows) / 10_000 - plain) <= 1.5, (r.test_bps, plain)
    shown = cli_ok(settings, "task", "show", str(task_id))
    line = f"winner node {task.winner}: validation {task.best_bps / 100:.2f}%, test "
    assert oracle_market.test_score(task_id) == r.test_bps
    assert line + f"{r.test_bps / 100:.2f}%" in shown, shown
    # The model card carries the recorded test score.
    card = resolve(oracle_market, task_id)
    assert card.test_bps == r.test_bps
    assert front_matter(card)["bountytree"]["test_accuracy"] == r.test_bps / 10_000

    # The validator admits no second test session for the task, whoever asks and for what.
    gate = Gate(
        oracle_market,
        task_id,
        validator_folder(home, chain_id) / "sessions.log",
        parts=(VALIDATION, TEST),
    )
    with pytest.raises(Refused, match="already"):
        gate.admit(issue(oracle_market, task_id, [task.winner], part=TEST))
    with pytest.raises(Refused, match="winner"):
        gate.admit(issue(oracle_market, task_id, [arch, task.winner], part=TEST))
    # A second round does not try again.
    (again,) = oracle.run_round([task_id])
    assert again.test_bps is None and again.error is None


def test_a_test_session_cut_off_after_admission_is_tried_again(
    settings, deployed, files, tmp_path, monkeypatch
):
    """A test session admitted and then cut off (the oracle's party dies, the network drops) used
    to use up the test part: the validator marked it scored when it admitted the session, and
    the winner was never tested. Now the validator admits up to MAX_TEST_SESSIONS of them; the
    oracle's next attempt is admitted and the winner's test score recorded, and past the cap
    nobody is admitted again."""
    task_id = _split_task(settings, tmp_path, target="0.999")
    arch = node_id_of(
        cli_ok(settings, "propose", "--task", str(task_id), "--spec", MLP, "--account", "1")
    )
    oracle_market = market_for(settings, 0)
    oracle = Oracle(oracle_market, log=lambda line: None, settings_env=settings.to_env())
    oracle.run_round([task_id])  # scored; the target is out of reach, so not finalized
    assert oracle_market.node(arch).status == "scored"
    advance_time(settings, 2 * 3600 + 60)
    cli_ok(settings, "finalize", "--task", str(task_id), "--account", "5")
    home, chain_id = settings.home, oracle_market.chain.chain_id
    gate = Gate(
        oracle_market,
        task_id,
        validator_folder(home, chain_id) / "sessions.log",
        parts=(VALIDATION, TEST),
    )
    assert gate.admit(issue(oracle_market, task_id, [arch], part=TEST)).part == TEST  # cut off
    # A session refused once its files were asked of the model party evaluated nothing: it gives
    # its claim back (a deviating or unlucky model party used to spend the task's test sessions
    # that way). The refusal is forced here: the winner's files are all at hand.
    markers = lambda: sorted(gate.test_marker.parent.glob(gate.test_marker.name + ".*"))  # noqa: E731
    assert len(markers()) == 1
    contents = iter([_Missing(), Refused("weights of node 1: gone; the model party did not…")])

    def refusing(ticket):
        gate._wanted.append(Wanted("bafy", 1))
        raise next(contents)

    with monkeypatch.context() as patched:
        patched.setattr(gate, "_contents", refusing)
        asked = gate.admit(issue(oracle_market, task_id, [arch], part=TEST))
        assert asked.wanted and len(markers()) == 2
        with pytest.raises(Refused, match="gone"):
            gate.complete(asked, {})
    assert len(markers()) == 1
    lines: list[str] = []
    oracle = Oracle(oracle_market, log=lines.append, settings_env=settings.to_env())
    (r,) = oracle.run_round([task_id])
    assert r.error is None and r.test_bps is not None, "\n".join(lines)
    assert oracle_market.test_score(task_id) == r.test_bps
    with pytest.raises(Refused, match="already recorded"):
        gate.admit(issue(oracle_market, task_id, [arch], part=TEST))
    assert MAX_TEST_SESSIONS == 3  # and the third, had the score not been recorded, is the last
    gate._claim_test_session()
    with pytest.raises(Refused, match="admitted 3 times"):
        gate._claim_test_session()


def test_the_test_part_is_refused_before_finalize_and_where_there_is_none(
    settings, deployed, files, tmp_path
):
    market = market_for(settings, 0)
    task_id = _split_task(settings, tmp_path)
    arch = node_id_of(
        cli_ok(settings, "propose", "--task", str(task_id), "--spec", MLP, "--account", "1")
    )
    log = validator_folder(settings.home, market.chain.chain_id) / "sessions.log"
    gate = Gate(market, task_id, log, parts=(VALIDATION, TEST))
    with pytest.raises(Refused, match="no winner yet"):
        gate.admit(issue(market, task_id, [arch], part=TEST))
    with pytest.raises(Refused, match="no part 'train'"):
        gate.admit(issue(market, task_id, [arch], part="train"))
    no_test = Gate(market, task_id, log)  # a validator started without a test part
    with pytest.raises(Refused, match="holds no test part"):
        no_test.admit(issue(market, task_id, [arch], part=TEST))
    # The validation part is admitted for the pending node as before.
    assert gate.admit(issue(market, task_id, [arch])).part == VALIDATION

    plain_task = new_task(settings, files["validation"], "no split")
    assert registered_test(settings.home, market.chain.chain_id, plain_task) is None
