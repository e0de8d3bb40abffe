"""make bench-trainer: one submission by the trainer against a plain PyTorch loop doing the same
training on the same rows, and where the trainer's time goes (download, train, hash, chain).

Runs on its own Ganache and embedded store. The two are measured alternately, several times,
and the medians compared, so machine noise hits both alike. Writes bench/trainer.md.
Goals: everything but training adds under 2 s; training within 10 % of the plain loop.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from bountytree.chain.client import deploy, ganache_account
from bountytree.chain.local import start_ganache
from bountytree.config import ROOT, Settings
from bountytree.market.actions import open_market
from bountytree.models.datasets import holdout_split, load_file
from bountytree.models.spec import parse_spec
from bountytree.models.training import HOLDOUT
from bountytree.processes import free_port, stop
from demo.sample_data import digits, write_csv
from trainer.client import Trainer

RUNS = 5
SPECS = {
    "MLP 64-64-10": {
        **json.loads((ROOT / "examples" / "mlp.json").read_text()),
        "training": {"optimizer": "adam", "lr": 0.01, "batch_size": 32, "epochs": 20, "seed": 1},
    },
    "CNN conv3x3x8": {
        **json.loads((ROOT / "examples" / "cnn.json").read_text()),
        "training": {
            "optimizer": "sgd",
            "lr": 0.05,
            "momentum": 0.9,
            "batch_size": 32,
            "epochs": 5,
            "seed": 2,
        },
    },
}


def plain_loop(spec_json: dict, X: torch.Tensor, y: torch.Tensor, state: dict) -> float:
    """The training a practitioner would write by hand: same model, recipe, order and rows."""
    t = spec_json["training"]
    layers = []
    for layer in spec_json["layers"]:
        kwargs = {k: v for k, v in layer.items() if k != "type"}
        layers.append(getattr(torch.nn, layer["type"])(**kwargs))
    model = torch.nn.Sequential(*layers)
    model.load_state_dict(state)
    X = X.reshape(len(X), *spec_json["input_shape"])
    if t["optimizer"] == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=t["lr"])
    else:
        opt = torch.optim.SGD(model.parameters(), lr=t["lr"], momentum=t.get("momentum", 0))
    g = torch.Generator().manual_seed(t["seed"])
    torch.manual_seed(t["seed"])
    start = time.perf_counter()
    model.train()
    for _ in range(t["epochs"]):
        order = torch.randperm(len(y), generator=g)
        for i in range(0, len(y), t["batch_size"]):
            idx = order[i : i + t["batch_size"]]
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model(X[idx]), y[idx]).backward()
            opt.step()
    return time.perf_counter() - start


def main() -> None:
    torch.set_num_threads(1)
    folder = Path(tempfile.mkdtemp(prefix="bench-trainer-"))
    port = free_port()
    chain = start_ganache(port, db_path=None)
    try:
        settings = Settings(
            rpc=f"http://127.0.0.1:{port}",
            account="0",
            store=str(folder / "store"),
            home=folder,
            deployments=folder / "deployments",
        )
        deploy(settings)
        data = write_csv(digits(), folder / "digits.csv")
        sponsor = open_market(settings, ganache_account(0))
        task_id = sponsor.create_task(
            data, name="bench", bounty=10**18, target_bps=9999, deadline_s=86400, stake=10**16
        ).task_id
        rows = load_file(data)
        lines = [
            "# Trainer benchmark (make bench-trainer)",
            "",
            f"One submission on {len(rows)} digits rows ({int(len(rows) * (1 - HOLDOUT))} trained on), "
            f"median of {RUNS} runs each, measured alternately in one process with one torch thread. "
            "Goal: overhead (download + hash + chain) under 2 s; trainer's training time within 10 % of "
            "the plain loop (ratio ≤ 1.10).",
            "",
            "| model | plain loop | trainer train | ratio | download | hash | chain | overhead | goal met |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for i, (name, spec_json) in enumerate(SPECS.items()):
            spec = parse_spec(spec_json)
            arch = open_market(settings, ganache_account(1)).propose(task_id, spec).node_id
            trainer = Trainer(open_market(settings, ganache_account(2 + i)))
            train_rows, _ = holdout_split(rows, HOLDOUT, spec.training["seed"])
            _, _, _, _, model = trainer.prepare(task_id, data, arch)
            state = model.state_dict()
            X, y = torch.from_numpy(train_rows.X), torch.from_numpy(train_rows.y)
            plain, runs = [], []
            for _ in range(RUNS):
                plain.append(plain_loop(spec_json, X, y, state))
                runs.append(trainer.run(task_id, data, arch).timings)
            med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            base = statistics.median(plain)
            ratio = med["train"] / base
            overhead = med["download"] + med["hash"] + med["chain"]
            ok = "yes" if overhead < 2 and ratio <= 1.10 else "no"
            lines.append(
                f"| {name} | {base:.3f} s | {med['train']:.3f} s | {ratio:.3f} | {med['download']:.3f} s | "
                f"{med['hash']:.3f} s | {med['chain']:.3f} s | {overhead:.3f} s | {ok} |"
            )
            print(lines[-1], flush=True)
        lines += [
            "",
            "download: task, parent node and spec reads on-chain and from the store, data loading and "
            "checks; hash: the weights' CID, computed locally; chain: commit, upload the weights into the store, wait for the next block, reveal.",
        ]
        (ROOT / "bench" / "trainer.md").write_text("\n".join(lines) + "\n")
        print("wrote bench/trainer.md")
    finally:
        stop(chain)


if __name__ == "__main__":
    main()
