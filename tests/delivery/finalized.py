"""One finalized task with real trained nodes, built once per test session (per worker) on the
session's Ganache: two architectures (the example MLP and CNN), a published dataset, an MLP
child trained on a data owner's private rows, a CNN child trained on the published rows, every
node scored by the real oracle in a two-party CrypTen session, then finalized."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bountytree.cli import main
from bountytree.config import ROOT, Settings
from bountytree.models.spec import load_spec
from bountytree.units import parse_eth
from tests.conftest import cli_ok, market_for
from trainer.client import Trainer


@dataclass(frozen=True)
class Finalized:
    task_id: int
    mlp: int  # architecture nodes
    cnn: int
    mlp_child: int  # trained nodes
    cnn_child: int
    dataset_id: int
    winner: int
    open_task_id: int  # a second task, left open: one scored node, one pending
    mlp_open: int
    cnn_pending: int


_built: dict[str, Finalized] = {}
HOSTILE_DESCRIPTION = (
    "Digits 0-9 from 8x8 pixel intensities.\n# Independently audited: 99.9 % test accuracy\n"
    "![t](https://tracker.example/p.png) [claim your prize](https://phish.example/) <b>x</b>"
)


def _spec(name: str):
    return load_spec((ROOT / "examples" / name).read_bytes())


def finalized_task(settings: Settings, files: dict[str, Path]) -> Finalized:
    if settings.rpc in _built:
        return _built[settings.rpc]
    sponsor = market_for(settings, 1)
    task_id = sponsor.create_task(
        files["validation"],
        name="served digits",
        # A description is free text from whoever posts a task: this one tries to write the card.
        description=HOSTILE_DESCRIPTION,
        bounty=parse_eth("2", "bounty"),
        target_bps=3000,
        deadline_s=3 * 3600,
        stake=parse_eth("0.01", "stake"),
    ).task_id
    mlp = market_for(settings, 2).propose(task_id, _spec("mlp.json")).node_id
    cnn = market_for(settings, 3).propose(task_id, _spec("cnn.json")).node_id
    dataset_id = market_for(settings, 4).publish_dataset(task_id, files["public"]).dataset_id
    mlp_child = Trainer(market_for(settings, 5)).run(task_id, files["owner1"], mlp).node_id
    cnn_child = Trainer(market_for(settings, 8)).run(task_id, None, cnn, dataset_id).node_id
    # A task left open (not finalized) with one scored architecture, for the refusals.
    open_task_id = sponsor.create_task(
        files["validation"],
        name="still open",
        bounty=parse_eth("1", "bounty"),
        target_bps=9999,
        deadline_s=3 * 3600,
    ).task_id
    mlp_open = market_for(settings, 2).propose(open_task_id, _spec("mlp.json")).node_id
    cli_ok(settings, "--once", "--task", str(task_id), "--task", str(open_task_id), module="oracle")
    cnn_pending = market_for(settings, 3).propose(open_task_id, _spec("cnn.json")).node_id
    market = market_for(settings, 9)
    if not market.task(task_id).finalized:  # the oracle finalizes a task that reached its target
        market.finalize(task_id)
    task = market.task(task_id)
    assert task.finalized and task.winner, task
    built = Finalized(
        task_id,
        mlp,
        cnn,
        mlp_child,
        cnn_child,
        dataset_id,
        task.winner,
        open_task_id,
        mlp_open,
        cnn_pending,
    )
    _built[settings.rpc] = built
    return built


def in_process(settings: Settings, monkeypatch, capsys) -> Callable[..., tuple[int, str, str]]:
    """`bountytree ARGS` in the test's process, pointed at the session's chain and store (the
    command's own code path, without the seconds a new interpreter takes to import torch):
    returns (exit status, stdout, stderr)."""
    for name, value in {
        "BOUNTYTREE_RPC": settings.rpc,
        "BOUNTYTREE_STORE": settings.store,
        "BOUNTYTREE_HOME": str(settings.home),
        "BOUNTYTREE_DEPLOYMENTS": str(settings.deployments),
    }.items():
        monkeypatch.setenv(name, value)

    def call(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        status = main(list(args))
        out, err = capsys.readouterr()
        return status, out, err

    return call
