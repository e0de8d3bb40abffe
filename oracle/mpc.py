"""Two-party secure evaluation with CrypTen over torch.distributed.

Party 0 is the sponsor's validator: it secret-shares the validation rows and their one-hot
labels. Party 1 is the oracle: it secret-shares each model's weights. Each model runs on the
shared rows, its one-hot predictions are multiplied with the shared labels, and only the sum
(the number of correct rows) is revealed. Nothing else leaves either party.

Party 0 also generates the multiplication triples (CrypTen's trusted-first-party provider).
That is safe here because what party 0 could learn from them are the model's weights, which are
public on IPFS anyway; the secret of this computation is the validation set, and it is party
0's own.

The two parties exchange one JSON header each (as a uint8 tensor; nothing is unpickled by our
code): party 1 names the task and sends the specs of the models, party 0 checks them and
answers with the number of rows. All nodes of one session share one encryption of the rows.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from datetime import timedelta

import numpy as np

from bountytree.mpc import crypten, torch
from bountytree.spec import ModelSpec, build_crypten, parse_spec

MODEL_PARTY, DATA_PARTY = 1, 0
CHUNK_ROWS = 4096
MAX_HEADER = 8 << 20


class SessionRefused(Exception):
    """The other party refused the session (wrong task, invalid spec, …)."""


def join(address: str, rank: int, timeout_s: float = 120) -> None:
    """Joins the two-party session at `address` (host:port; party 0 listens there)."""
    os.environ.update({"DISTRIBUTED_BACKEND": "gloo", "RENDEZVOUS": f"tcp://{address}", "WORLD_SIZE": "2",
                       "RANK": str(rank)})
    torch.set_num_threads(1)
    # CrypTen calls init_process_group without a timeout; give it one so a missing party ends
    # the session instead of hanging forever.
    import torch.distributed as dist

    original = dist.init_process_group

    def with_timeout(*args, **kwargs):
        kwargs.setdefault("timeout", timedelta(seconds=timeout_s))
        return original(*args, **kwargs)

    dist.init_process_group = with_timeout
    try:
        crypten.init()
    finally:
        dist.init_process_group = original
    crypten.cfg.mpc.provider = "TFP"


def leave() -> None:
    crypten.uninit()


def _group():
    return crypten.communicator.get().main_group


def send_json(obj: dict | None, src: int) -> dict:
    """Broadcasts a JSON object from `src`; every party returns it."""
    import torch.distributed as dist

    me = crypten.communicator.get().get_rank()
    raw = json.dumps(obj).encode() if me == src else b""
    size = torch.tensor([len(raw)], dtype=torch.int64)
    dist.broadcast(size, src, group=_group())
    n = int(size.item())
    if n > MAX_HEADER:
        raise SessionRefused(f"header of {n} bytes from party {src}")
    buf = torch.frombuffer(bytearray(raw), dtype=torch.uint8) if me == src else torch.empty(n, dtype=torch.uint8)
    dist.broadcast(buf, src, group=_group())
    return json.loads(bytes(buf.numpy()).decode())


@dataclass
class NodeScore:
    node_id: int
    correct: int
    rows: int
    seconds: float

    @property
    def accuracy_bps(self) -> int:
        return self.correct * 10_000 // self.rows


def _shared_rows(X: np.ndarray | None, y: np.ndarray | None, rows: int, features: int, classes: int):
    """Secret-shares the rows and one-hot labels from party 0, in chunks."""
    chunks = []
    for start in range(0, rows, CHUNK_ROWS):
        n = min(CHUNK_ROWS, rows - start)
        if X is not None:
            x = torch.from_numpy(X[start:start + n])
            onehot = torch.nn.functional.one_hot(torch.from_numpy(y[start:start + n]), classes).float()
        else:
            x, onehot = torch.zeros(n, features), torch.zeros(n, classes)
        chunks.append((crypten.cryptensor(x, src=DATA_PARTY), crypten.cryptensor(onehot, src=DATA_PARTY)))
    return chunks


def _count_correct(model, spec: ModelSpec, chunks) -> int:
    total = None
    with crypten.no_grad():
        for x, onehot in chunks:
            logits = model(x.reshape(x.size(0), *spec.input_shape))
            hits = (logits.argmax(dim=1, one_hot=True) * onehot).sum()
            total = hits if total is None else total + hits
    return int(round(float(total.get_plain_text().item())))


def _evaluate(models: list[tuple[int, ModelSpec, dict | None]], chunks, rows: int) -> list[NodeScore]:
    scores = []
    for node_id, spec, state in models:
        started = time.perf_counter()
        model = build_crypten(spec)
        if state is not None:
            model.load_state_dict({k: v for k, v in state.items() if not k.endswith("num_batches_tracked")},
                                  strict=False)
        model.encrypt(src=MODEL_PARTY)
        model.eval()
        correct = _count_correct(model, spec, chunks)
        scores.append(NodeScore(node_id, correct, rows, time.perf_counter() - started))
    return scores


def model_party(task_id: int, models: list[tuple[int, ModelSpec, dict]]) -> tuple[list[NodeScore], dict]:
    """Party 1: sends the specs, shares the weights, returns the scores (after `join`)."""
    header = {"task": task_id, "nodes": [{"id": i, "spec": s.to_json()} for i, s, _ in models]}
    send_json(header, MODEL_PARTY)
    answer = send_json(None, DATA_PARTY)
    if not answer.get("ok"):
        raise SessionRefused(answer.get("error", "refused"))
    started = time.perf_counter()
    chunks = _shared_rows(None, None, answer["rows"], answer["features"], answer["classes"])
    shared_s = time.perf_counter() - started
    return _evaluate(models, chunks, answer["rows"]), {"share_rows_s": shared_s, "rows": answer["rows"]}


def data_party(task_id: int, X: np.ndarray, y: np.ndarray, num_classes: int) -> list[NodeScore]:
    """Party 0: checks the header, shares the rows, takes part in every evaluation."""
    header = send_json(None, MODEL_PARTY)
    error = None
    models = []
    if header.get("task") != task_id:
        error = f"this validator serves task {task_id}, not task {header.get('task')}"
    else:
        try:
            for node in header["nodes"]:
                spec = parse_spec(node["spec"])
                if spec.num_features != X.shape[1] or spec.num_classes != num_classes:
                    raise ValueError(f"node {node['id']}: spec does not fit the validation rows")
                models.append((int(node["id"]), spec, None))
        except Exception as exc:  # anything wrong in what party 1 sent ends the session cleanly
            error = f"bad header: {exc}"
    send_json({"ok": error is None, "error": error, "rows": len(y), "features": int(X.shape[1]),
               "classes": num_classes}, DATA_PARTY)
    if error:
        raise SessionRefused(error)
    chunks = _shared_rows(X, y, len(y), X.shape[1], num_classes)
    return _evaluate(models, chunks, len(y))
