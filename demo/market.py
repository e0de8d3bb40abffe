"""The scripted market `make demo` plays on scikit-learn's digits: a sponsor posts a bounty, two
architects propose, one data owner publishes a public dataset, three data owners with different
class mixes and one compute provider train over several rounds while the oracle (a separate
process started by `bountytree up`) scores, the oracle finalizes once the target is reached,
and everyone paid withdraws.

Every step calls the same functions as the command line (Market, Trainer); the oracle is the
real one, so the demo waits for its scores rather than producing them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from bountytree.chain.addressbook import AddressBook
from bountytree.chain.client import ganache_account
from bountytree.config import ROOT, Settings
from bountytree.errors import UserError
from bountytree.market.actions import Market, open_market
from bountytree.market.render import eth, show_task
from bountytree.models.spec import load_spec
from trainer.client import Trainer

from .actors import ACTORS, names
from .sample_data import market_files

TARGET_BPS = 9000
MAX_ROUNDS = 5
SCORE_TIMEOUT_S = 300


class Clock:
    """Where the scripted market's wall time goes, by phase."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = {}
        self._mark = time.perf_counter()

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.spent[phase] = self.spent.get(phase, 0.0) + now - self._mark
        self._mark = now


def _wait(what: str, done: Callable[[], bool], timeout_s: float = SCORE_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            raise UserError(
                f"demo: gave up waiting for {what} after {timeout_s:.0f}s (is the oracle running?)"
            )
        time.sleep(0.5)


def _all_scored(market: Market, task_id: int) -> bool:
    return market.task(task_id, with_info=False).finalized or all(
        n.status != "pending" for n in market.nodes(task_id).values()
    )


@dataclass(frozen=True)
class DemoResult:
    task_id: int
    withdrawn: dict[str, int]  # actor name -> wei withdrawn
    market: Market  # the sponsor's
    spent: dict[str, float]  # phase -> seconds


def save_cast(settings: Settings, chain_id: int) -> None:
    """Names the demo's cast in the product's address book, so the app and `task show` label
    them; the product itself knows no demo."""
    book = AddressBook(settings.home, chain_id)
    for i, (name, role) in ACTORS.items():
        book.save(ganache_account(i).address, name, role)


def run(settings: Settings, log: Callable[[str], None] = print) -> DemoResult:
    clock = Clock()
    who = {i: open_market(settings, ganache_account(i)) for i in ACTORS}
    save_cast(settings, who[0].chain.chain_id)
    files = market_files(settings.home / "demo-data")
    sponsor = who[1]
    created = sponsor.create_task(
        files["validation"],
        name="Handwritten digits",
        bounty=10 * 10**18,
        target_bps=TARGET_BPS,
        deadline_s=3600,
        stake=10**16,
        description="Classify 8x8 digit images; the validation set stays with the sponsor.",
    )
    task_id = created.task_id
    log(
        f"Sponsor posted task {task_id}: 10 ETH for {TARGET_BPS / 100:.0f}% accuracy  ({created.sent})"
    )
    for index, spec_file in ((2, "mlp.json"), (3, "cnn.json")):
        spec = load_spec((ROOT / "examples" / spec_file).read_bytes())
        out = who[index].propose(task_id, spec)
        log(f"{ACTORS[index][0]} proposed {spec.name} as node {out.node_id}")
    public = who[4].publish_dataset(task_id, files["public"])
    log(f"Pat published dataset {public.dataset_id} ({public.rows} rows)")
    clock.lap("post, propose, publish")
    _wait("the architectures' scores", lambda: _all_scored(sponsor, task_id))
    clock.lap("waiting for the oracle")
    for round_no in range(1, MAX_ROUNDS + 1):
        task = sponsor.task(task_id, with_info=False)
        if task.finalized:
            break
        best = task.best_node
        log(f"round {round_no}: everyone starts from node {best} ({task.best_bps / 100:.2f}%)")
        jobs = [
            (5, files["owner1"], 0),
            (6, files["owner2"], 0),
            (7, files["owner3"], 0),
            (8, None, public.dataset_id),
        ]
        for index, data, dataset_id in jobs:
            if sponsor.task(task_id, with_info=False).finalized:
                break
            try:
                sub = Trainer(who[index]).run(task_id, data, best, dataset_id)
            except UserError as exc:  # the oracle may finalize mid-round: that ends the market
                log(f"  {ACTORS[index][0]}: {exc}")
                break
            log(
                f"  {ACTORS[index][0]} submitted node {sub.node_id} (local holdout "
                f"{sub.holdout_accuracy * 100:.1f}%, gas {sub.gas})"
            )
        clock.lap("training and submitting")
        _wait(f"round {round_no}'s scores", lambda: _all_scored(sponsor, task_id))
        clock.lap("waiting for the oracle")
    _wait("finalization", lambda: sponsor.task(task_id, with_info=False).finalized)
    clock.lap("waiting for the oracle")
    withdrawn = {}
    for index, market in who.items():
        if market.pending() > 0:
            withdrawn[ACTORS[index][0]] = market.withdraw().amount
    clock.lap("withdrawals")
    return DemoResult(task_id=task_id, withdrawn=withdrawn, market=sponsor, spent=clock.spent)


def summary(market: Market, task_id: int, withdrawn: dict[str, int]) -> str:
    label = names()
    lines = [show_task(market, task_id, label), "", "withdrawn:"]
    lines += [f"  {name:<10} {eth(amount)}" for name, amount in withdrawn.items()]
    lines += ["", "reputation:"]
    for index, (name, role) in ACTORS.items():
        score = market.reputation(ganache_account(index).address)
        if score:
            lines.append(f"  {name:<10} {score:+d}  ({role})")
    return "\n".join(lines)


__all__ = ["DemoResult", "run", "summary"]
