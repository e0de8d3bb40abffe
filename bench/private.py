"""make bench-private: what keeping a model's weights secret costs, against the public-weights
scoring the oracle runs today, measured in the same run.

- Scoring (MLP 64-64-10 and the small CNN, 1,000 digits rows): public is the oracle's layout
  (two parties, the weights' holder encrypts them, party 0 deals the triples); private is two
  custodians holding shares of the weights and of the rows, with a dealer, and the Ladder
  computed inside (only its record revealed). Private is reported inline (every triple fetched
  from the dealer when needed) and pre-dealt (the dealer deals a node's triples before it is
  scored: offline; then the node is scored: online). Goal: private online ≤ 1.5 × public.
- Training (the MLP, 300 rows, one epoch, SGD): online and offline time of an epoch with
  pre-dealt triples, the largest difference from plaintext training from the same parent on
  the same rows, and both children's holdout accuracy. Goals: ≤ 5 s online; ≤ 2e-3; holdout
  within one row.
- Hand-over: both custodians seal their share, the sponsor opens both, checks both commitments
  and adds them. Goal: < 5 s.

Medians of REPEAT runs. Writes bench/private.md (`--no-scoring` skips the scoring table).
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bountytree.config import ROOT
from bountytree.models import weights
from bountytree.models.datasets import Dataset, holdout_indices
from bountytree.models.spec import build_torch, parse_spec
from bountytree.models.training import HOLDOUT, fit, train_node
from bountytree.mpc.local import run_parties
from bountytree.private import handover, ring, sealing, shares
from demo.sample_data import digits

ROWS = 1000
TRAIN_ROWS = 300
REPEAT = 3
MODELS = {"MLP 64-64-10": "mlp.json", "CNN conv3x3x8-pool-linear": "cnn.json"}
SCORE_RATIO_GOAL = 1.5
EPOCH_GOAL_S = 5.0
TRAIN_ERROR_GOAL = 2e-3
HANDOVER_GOAL_S = 5.0
SGD = {"optimizer": "sgd", "lr": 0.1, "momentum": 0.0, "batch_size": 32, "epochs": 1}


def _spec(file: str, **training) -> dict:
    raw = json.loads((ROOT / "examples" / file).read_text())
    raw["training"].update(training)
    return raw


# ── the parties' tasks (module level: spawned processes import them) ──


def public_scoring(rank: int, spec_json: dict, state, X, y, repeat: int) -> dict:
    """The oracle's layout: rank 1 encrypts plaintext weights, rank 0 the rows and labels."""
    from bountytree.mpc.counting import chunk_rows, shared_hits
    from bountytree.mpc.crypten_import import crypten
    from bountytree.mpc.models import build_crypten

    spec = parse_spec(spec_json)
    step = chunk_rows([spec])
    chunks = []
    for i in range(0, ROWS, step):
        x = (
            torch.from_numpy(X[i : i + step])
            if rank == 0
            else torch.zeros(min(step, ROWS - i), spec.num_features)
        )
        h = (
            torch.eye(spec.num_classes)[torch.from_numpy(y[i : i + step])]
            if rank == 0
            else torch.zeros(min(step, ROWS - i), spec.num_classes)
        )
        chunks.append((crypten.cryptensor(x, src=0), crypten.cryptensor(h, src=0)))
    times, counts = [], []
    for _ in range(repeat):
        started = time.perf_counter()
        model = build_crypten(spec)
        if rank == 1:
            model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=False)
        model.encrypt(src=1)
        model.eval()
        counts.append(round(float(shared_hits(model, spec, chunks).get_plain_text())))
        times.append(time.perf_counter() - started)
    return {"online": statistics.median(times), "count": counts[0]}


def private_scoring(rank: int, spec_json: dict, weights_share, X, Y, best, repeat: int) -> dict:
    """Custodians: weights, rows and the task's best as shares; inline, then pre-dealt."""
    from bountytree.mpc import private
    from bountytree.mpc.crypten_import import crypten
    from bountytree.private.shares import Share

    spec = parse_spec(spec_json)
    rows = private.SharedRows(X, Y)
    provider = crypten.mpc.get_default_provider()

    def node() -> int:
        count = private.shared_count(spec, Share(rank, weights_share), rows)
        return private.ladder(count, ROWS, best, 100, 0).recorded_bps

    inline = []
    for i in range(repeat):
        provider.trace(i == 0)  # the first node's requests are what later nodes pre-deal
        started = time.perf_counter()
        recorded = node()
        inline.append(time.perf_counter() - started)
    provider.trace(False)
    offline, online = [], []
    for _ in range(repeat):
        started = time.perf_counter()
        provider.fill_cache()
        offline.append(time.perf_counter() - started)
        started = time.perf_counter()
        node()
        online.append(time.perf_counter() - started)
        provider.tuple_cache = {}
    return {
        "inline": statistics.median(inline),
        "offline": statistics.median(offline),
        "online": statistics.median(online),
        "recorded": recorded,
    }


def private_training(rank: int, spec_json: dict, parent_share, X, Y, repeat: int) -> dict:
    """Custodians: one traced epoch (inline), then pre-dealt epochs from the same parent."""
    from bountytree.mpc import private
    from bountytree.mpc.crypten_import import crypten
    from bountytree.private.shares import Share

    spec = parse_spec(spec_json)
    rows = private.SharedRows(X, Y)
    provider = crypten.mpc.get_default_provider()
    provider.trace(True)
    started = time.perf_counter()
    first = private.train(spec, Share(rank, parent_share), rows)
    inline = time.perf_counter() - started
    provider.trace(False)
    offline, online = [], []
    for _ in range(repeat):
        started = time.perf_counter()
        provider.fill_cache()
        offline.append(time.perf_counter() - started)
        started = time.perf_counter()
        child = private.train(spec, Share(rank, parent_share), rows)
        online.append(time.perf_counter() - started)
        provider.tuple_cache = {}
    return {
        "inline": inline,
        "offline": statistics.median(offline),
        "online": statistics.median(online),
        **{f"w:{k}": v for k, v in child.tensors.items()},
        **{f"i:{k}": v for k, v in first.tensors.items()},
    }


# ── the driver ──


def _trained(spec, data: Dataset):
    model = weights.load_model(weights.initial_weights(spec), spec)
    fit(model, spec, data)
    return model.eval()


def scoring(work: Path, data: Dataset) -> list[str]:
    lines = [
        "| model | public per node | private inline | private offline | private online | "
        "online ÷ public | goal | met | record (private) / exact (plaintext) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    X, y = data.X[:ROWS], data.y[:ROWS]
    onehot = np.eye(10, dtype=np.float32)[y]
    for name, file in MODELS.items():
        raw = _spec(file)
        spec = parse_spec(raw)
        model = _trained(spec, Dataset(X, y))
        state = {k: v.detach().numpy() for k, v in model.state_dict().items()}
        with torch.no_grad():
            exact = int(
                (
                    model(torch.from_numpy(X).reshape(ROWS, *spec.input_shape)).argmax(1).numpy()
                    == y
                ).sum()
            )
        public = run_parties(
            public_scoring,
            [(raw, None, X, y, REPEAT), (raw, state, None, None, REPEAT)],
            work / f"public-{file}",
            dealer=False,
        )[0]
        a, b = shares.split_state(state)
        xa, xb = ring.share_floats(X)
        ya, yb = ring.share_floats(onehot)
        best = ring.split(np.zeros((), dtype=np.int64))
        private = run_parties(
            private_scoring,
            [(raw, a.tensors, xa, ya, best[0], REPEAT), (raw, b.tensors, xb, yb, best[1], REPEAT)],
            work / f"private-{file}",
        )[0]
        ratio = private["online"] / public["online"]
        lines.append(
            f"| {name} | {public['online']:.3f} s | {private['inline']:.3f} s | "
            f"{private['offline']:.3f} s | {private['online']:.3f} s | {ratio:.2f} | "
            f"≤ {SCORE_RATIO_GOAL} | {'yes' if ratio <= SCORE_RATIO_GOAL else 'no'} | "
            f"{private['recorded']} / {exact * 10_000 // ROWS} bps (public count {public['count']}, plaintext {exact}) |"
        )
        print(lines[-1], flush=True)
    return lines


def training(work: Path, data: Dataset) -> list[str]:
    raw = _spec("mlp.json", **SGD)
    spec = parse_spec(raw)
    rows = Dataset(data.X[:TRAIN_ROWS], data.y[:TRAIN_ROWS])
    parent = _trained(spec, Dataset(data.X[1000:1300], data.y[1000:1300]))
    state = {k: v.detach().numpy() for k, v in parent.state_dict().items()}
    a, b = shares.split_state(state)
    xa, xb = ring.share_floats(rows.X)
    ya, yb = ring.share_floats(np.eye(10, dtype=np.float32)[rows.y])
    result = run_parties(
        private_training,
        [(raw, a.tensors, xa, ya, REPEAT), (raw, b.tensors, xb, yb, REPEAT)],
        work / "train",
    )
    child = {
        k[2:]: ring.decode(ring.combine(result[0][k], result[1][k]))
        for k in result[0]
        if k.startswith("w:")
    }
    inline_child = {
        k[2:]: ring.decode(ring.combine(result[0][k], result[1][k]))
        for k in result[0]
        if k.startswith("i:")
    }
    plain = train_node(weights.load_model(weights.to_bytes(parent), spec), spec, rows).model

    def error(weights_: dict) -> float:
        return max(
            float(np.abs(weights_[k] - v.detach().numpy()).max())
            for k, v in plain.state_dict().items()
        )

    def as_model(weights_: dict):
        model = build_torch(spec)
        model.load_state_dict({k: torch.from_numpy(v) for k, v in weights_.items()})
        return model

    _, holdout = holdout_indices(TRAIN_ROWS, HOLDOUT, spec.training["seed"])

    def right(model) -> int:
        with torch.no_grad():
            return int(
                (
                    model(torch.from_numpy(rows.X[holdout])).argmax(1).numpy() == rows.y[holdout]
                ).sum()
            )

    online = max(r["online"] for r in result)
    inline = max(r["inline"] for r in result)
    rows_out = []
    for how, seconds, offline, child_ in (
        ("inline triples", inline, "—", inline_child),
        ("pre-dealt triples", online, f"{result[0]['offline']:.2f} s", child),
    ):
        e = error(child_)
        rows_out.append(
            f"| {how} | {offline} | {seconds:.2f} s | ≤ {EPOCH_GOAL_S} s | {'yes' if seconds <= EPOCH_GOAL_S else 'no'} | "
            f"{e:.1e} | ≤ {TRAIN_ERROR_GOAL:g} | {'yes' if e <= TRAIN_ERROR_GOAL else 'no'} | "
            f"{right(as_model(child_))} / {right(plain)} of {len(holdout)} |"
        )
    return [
        "| epoch with | offline | online | goal | met | max weight difference from plaintext | goal | met | holdout right (private / plaintext) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        *rows_out,
    ]


def hand_over(data: Dataset) -> list[str]:
    lines = [
        "| model | seal both | open, check, add | total | goal | met | max error |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    sponsor = sealing.new_private_key()
    for name, file in MODELS.items():
        spec = parse_spec(_spec(file))
        state = {k: v.detach().numpy() for k, v in build_torch(spec).state_dict().items()}
        a, b = shares.split_state(state)
        salts = (shares.new_salt(), shares.new_salt())
        commitments = tuple(
            shares.commitment(s, salt) for s, salt in zip((a, b), salts, strict=True)
        )
        started = time.perf_counter()
        sealed = tuple(
            handover.seal_share(s, salt, sealing.public_key(sponsor))
            for s, salt in zip((a, b), salts, strict=True)
        )
        sealed_s = time.perf_counter() - started
        started = time.perf_counter()
        opened = handover.open_handover(sealed, sponsor, commitments)
        opened_s = time.perf_counter() - started
        error = max(float(np.abs(opened[k] - state[k]).max()) for k in state)
        total = sealed_s + opened_s
        lines.append(
            f"| {name} | {sealed_s * 1e3:.1f} ms | {opened_s * 1e3:.1f} ms | {total * 1e3:.1f} ms | < {HANDOVER_GOAL_S} s | "
            f"{'yes' if total < HANDOVER_GOAL_S else 'no'} | {error:.1e} |"
        )
    return lines


def main() -> None:
    torch.set_num_threads(1)
    data = digits()
    work = Path(tempfile.mkdtemp(prefix="bench-private-"))
    lines = [
        "# Private models benchmark (make bench-private)",
        "",
        f"Each party a process with one torch thread on this 2-core machine; medians of {REPEAT}. "
        "Public: the oracle's two-party layout (weights in the clear at one party). Private: two "
        "custodians with shares of weights and rows and a dealer; inline fetches each triple when "
        "needed, pre-dealt splits offline (dealing) from online (scoring).",
        "",
        "### Scoring a node (1,000 rows, Ladder inside for private)",
        "",
        *(scoring(work, data) if "--no-scoring" not in sys.argv else []),
        "",
        f"### Training one epoch in MPC (MLP, {TRAIN_ROWS} rows, {int(TRAIN_ROWS * (1 - HOLDOUT))} trained on, SGD 0.1, batch 32)",
        "",
        *training(work, data),
        "",
        "### Hand-over of the winner",
        "",
        *hand_over(data),
    ]
    (ROOT / "bench" / "private.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print("wrote bench/private.md")


if __name__ == "__main__":
    main()
