"""The scripted private task `bountytree up --demo --private-models` plays: the sponsor posts a
bounty whose models stay secret (custodians Kai and Lin, dealer Dee, started by `up`), shares
its validation rows with the custodians, Ada proposes an architecture, Alice, Bob and Carol
send their rows as shares over a few rounds while the custodians train and score on shares,
the sponsor finalizes once the target is reached, the custodians hand the winner over, and the
sponsor opens it into an ordinary model folder and checks it against what the chain recorded.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

import torch

from bountytree.chain.client import ganache_account
from bountytree.config import ROOT, Settings
from bountytree.delivery.export import check_rows, export_model
from bountytree.delivery.model_card import resolve
from bountytree.delivery.private import open_winner
from bountytree.market.actions import open_market
from bountytree.market.custody import LOCAL_PARTIES, Custody, custody_terms, local_key_file
from bountytree.market.ladder import round_down
from bountytree.models import weights as weights_io
from bountytree.models.datasets import load_file
from bountytree.models.spec import build_torch, load_spec
from bountytree.private.sealing import public_key, read_private_key, write_private_key

from .actors import ACTORS
from .market import DemoResult, _wait, save_cast
from .sample_data import market_files

TARGET_BPS = 7000
MAX_ROUNDS = 3
WAIT_S = 600


def run(settings: Settings, log: Callable[[str], None] = print) -> DemoResult:
    started = time.perf_counter()
    people = (1, 2, 5, 6, 7, *LOCAL_PARTIES)
    who = {i: open_market(settings, ganache_account(i)) for i in people}
    save_cast(settings, who[1].chain.chain_id)
    files = market_files(settings.home / "demo-data")
    sponsor = who[1]
    key_file = settings.home / "custody" / "sponsor-demo.key"
    if not key_file.exists():
        key_file.parent.mkdir(parents=True, exist_ok=True)
        write_private_key(key_file)
    *custodians, dealer = LOCAL_PARTIES
    created = sponsor.create_task(
        files["validation"],
        name="Handwritten digits, private models",
        bounty=10 * 10**18,
        target_bps=TARGET_BPS,
        deadline_s=3600,
        stake=10**16,
        shares_bps=(8000, 0, 2000),
        description="Every trained model stays secret-shared between two custodians until paid for.",
        private_models=True,
    )
    task_id = created.task_id
    terms = custody_terms(
        (ganache_account(custodians[0]).address, ganache_account(custodians[1]).address),
        ganache_account(dealer).address,
        key_file,
        stake=10**17,
        fee=3 * 10**17,
        window_s=2 * 86400,
    )
    Custody(sponsor).register(task_id, terms)
    log(f"Sponsor posted private task {task_id}: 10 ETH for {TARGET_BPS / 100:.0f}%")
    for account in LOCAL_PARTIES:
        key = public_key(read_private_key(local_key_file(settings.home, account)))
        party = Custody(who[account])
        party.accept(task_id, key, party.require(task_id).terms)  # the terms it reads
    log("Kai and Lin (custodians) and Dee (dealer) staked and accepted custody")
    rows = Custody(sponsor).share_validation_file(task_id)
    log(f"Sponsor shared its {rows} validation rows as two sealed shares")
    spec = load_spec((ROOT / "examples" / "mlp-private.json").read_bytes())
    arch = who[2].propose(task_id, spec).node_id
    log(f"Ada proposed {spec.name} as node {arch}")
    custody = Custody(sponsor)

    def all_scored() -> bool:
        return all(n.status != "pending" for n in sponsor.nodes(task_id).values())

    _wait("the custodians' scores", all_scored, WAIT_S)
    for round_no in range(1, MAX_ROUNDS + 1):
        task = sponsor.task(task_id, with_info=False)
        if task.best_bps >= TARGET_BPS:
            break
        best = task.best_node
        log(f"round {round_no}: the data owners build on node {best} ({task.best_bps / 100:.2f}%)")
        for index, name in ((5, "owner1"), (6, "owner2"), (7, "owner3")):
            data = load_file(files[name])
            node = Custody(who[index]).submit_rows(task_id, best, data).node_id
            log(f"  {ACTORS[index][0]} sent {len(data)} rows as shares: node {node}")
        _wait(f"round {round_no}'s scores", all_scored, WAIT_S)
    task = sponsor.task(task_id, with_info=False)
    log(f"best node {task.best_node} at {task.best_bps / 100:.2f}% (recorded by both custodians)")
    finalized = sponsor.finalize(task_id)
    log(f"Sponsor finalized: winner node {finalized.winner}")
    _wait("the hand-over", lambda: custody.require(task_id).settled, WAIT_S)
    opened = open_winner(sponsor, task_id, None, str(key_file))
    source = resolve(sponsor, task_id, None, opened)
    # the demo's own folder, replaced: a demo on a new chain numbers its tasks from 1 again,
    # and found an earlier demo's export of the same task id there (it stopped here)
    folder = settings.home / "demo-exports" / f"private-task-{task_id}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.parent.mkdir(exist_ok=True)
    export_model(source, folder, "safetensors", check_rows(sponsor, source))
    model = build_torch(source.spec)
    model.load_state_dict(
        weights_io.load((Path(folder) / "model.safetensors").read_bytes(), source.spec)
    )
    validation = load_file(files["validation"])
    with torch.no_grad():
        right = int((model(torch.from_numpy(validation.X)).argmax(1).numpy() == validation.y).sum())
    exact = right * 10_000 // len(validation)
    log(
        f"Sponsor opened the winner into {folder}: {exact / 100:.2f}% on its validation rows, "
        f"recorded {finalized.accuracy_bps / 100:.2f}% (the Ladder rounds down to the margin): "
        f"{'matches' if round_down(exact, 100) == finalized.accuracy_bps else 'DOES NOT MATCH'}"
    )
    withdrawn = {}
    for index, market in who.items():
        total = market.withdraw().amount if market.pending() else 0
        own = Custody(market)
        total += own.withdraw()[0] if own.pending() else 0
        if total:
            withdrawn[ACTORS[index][0]] = total
    return DemoResult(
        task_id=task_id,
        withdrawn=withdrawn,
        market=sponsor,
        spent={"private task": time.perf_counter() - started},
    )
