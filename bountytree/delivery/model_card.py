"""Which model a task produced, where it came from, and its model card.

`resolve` finds the model a sponsor paid for — the winner the contract recorded when the task was
finalized, or any scored node on request — reads its spec and weights from the store through the
checked loaders, and gathers its lineage from the chain: every node from the architecture down,
with its author, data, accuracy, raise and what the payout rule credited it. `model_card` writes
that as a Hugging Face-style README.md (YAML front matter, then prose), so a model found on disk
names the task, the chain and the contract that can prove it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from eth_account import Account

from bountytree.config import Settings
from bountytree.errors import UserError
from bountytree.market.actions import (
    Market,
    NodeView,
    TaskView,
    open_market,
)
from bountytree.market.custody import Custody
from bountytree.market.ladder import shown_score
from bountytree.market.records import Payout
from bountytree.market.taskinfo import TaskInfo
from bountytree.models.spec import ModelSpec
from bountytree.models.weights import load as load_weights
from bountytree.models.weights import max_bytes
from bountytree.storage.store import get_bytes
from bountytree.text import markdown

BPS = 10_000


@dataclass(frozen=True)
class LineageStep:
    """One node on the path from the architecture to the exported node."""

    node_id: int
    parent_id: int
    kind: str
    author: str
    accuracy_bps: int
    # over the task's best before it, if it set a new one (what the data share pays); None for
    # the architecture
    raise_bps: int | None
    dataset_id: int  # 0: the author's private data
    data_provider: str  # who a data payout for this node goes to (author, or the publisher)
    cid: str  # the spec for the architecture, the weights for a trained node
    verified_ops: int
    paid: dict[str, int] = field(default_factory=dict)  # payout kind -> wei, at finalize


@dataclass(frozen=True)
class FormatCheck:
    """An exported file loaded back and compared with PyTorch on the same rows."""

    file: str
    rows: int
    source: str  # where the rows came from
    max_abs_diff: float
    classes_agree: int


@dataclass(frozen=True)
class ModelSource:
    """Everything an export, a server or a model card needs about one scored node."""

    chain_id: int
    contract: str
    task: TaskView
    node: NodeView
    is_winner: bool
    spec: ModelSpec
    spec_cid: str
    weights_cid: str
    weights: bytes
    lineage: tuple[LineageStep, ...]
    payouts: tuple[Payout, ...]  # PayoutCredited events of the task, stakes left out
    pool: int | None  # bounty + forfeited stakes at finalize
    # The winner's score on the sponsor's test part, recorded once on-chain (None: not recorded,
    # or not the winner).
    test_bps: int | None = None

    @property
    def model_name(self) -> str:
        """The name the server publishes (`/v2/models/<name>`)."""
        return f"task-{self.task.id}"

    @property
    def version(self) -> str:
        return str(self.node.id)

    @property
    def title(self) -> str:
        name = self.task.description.name if self.task.description else f"task {self.task.id}"
        role = "winner" if self.is_winner else "a scored node"
        return f"{name}: node {self.node.id} ({role} of task {self.task.id})"


def read_market(settings: Settings) -> Market:
    """A Market for reading only. Export and serve sign nothing, so they need no key: a fresh
    throwaway account stands in (and the refusal of public dev keys off a local chain never
    applies)."""
    return open_market(settings, Account.create())


def resolve(
    market: Market,
    task_id: int,
    node_id: int | None = None,
    opened: tuple[bytes, str] | None = None,
) -> ModelSource:
    """The winner of a finalized task by default, or scored node `node_id` of the task; its
    weights are read from the store (or, for a private task, are the `opened` hand-over: the
    weights file and what it was opened from) and checked against the spec before anything uses
    them."""
    task = market.task(task_id)
    if node_id is None:
        if not task.finalized:
            raise UserError(
                f"task {task_id} is not finalized, so it has no winner yet; "
                "give --node ID to use a scored node"
            )
        if not task.winner:
            raise UserError(f"task {task_id} was finalized with no scored node: it has no model")
        node_id = task.winner
    nodes = market.nodes(task_id)
    node = nodes.get(node_id)
    if node is None:
        raise UserError(f"node {node_id} is not in task {task_id}")
    if node.status != "scored":
        raise UserError(
            f"node {node_id} is {node.status}, not scored: it has no accuracy to stand on"
        )
    path = _path(node, nodes)
    spec = market.architecture_spec(node)
    if opened is not None:
        raw, weights_cid = opened
    elif market.chain.custody is not None and Custody(market).of(task_id) is not None:
        raise UserError(
            f"task {task_id} is private: its models are never public; its sponsor opens the "
            f"winner with `bountytree model export --task {task_id} --key-file KEY`"
        )
    else:
        weights_cid = node.weights_cid(spec)
        raw = get_bytes(market.store, weights_cid, max_bytes(spec))
    load_weights(raw, spec, f"weights {weights_cid} of node {node.id}")
    publisher_of = functools.cache(lambda d: market.dataset_record(task.id, d).publisher)
    paid = (
        _paid_by_rule(market, task, nodes, publisher_of) if task.finalized and task.winner else {}
    )
    lineage = tuple(
        LineageStep(
            node_id=n.id,
            parent_id=n.parent_id,
            kind=n.kind,
            author=n.author,
            accuracy_bps=n.accuracy_bps,
            raise_bps=None if n.kind == "architecture" else n.raise_bps,
            dataset_id=n.dataset_id,
            data_provider=publisher_of(n.dataset_id) if n.dataset_id else n.author,
            cid=n.cid,
            verified_ops=n.verified_ops,
            paid=paid.get(n.id, {}),
        )
        for n in path
    )
    finalized = market.logs("TaskFinalized", taskId=task_id) if task.finalized else []
    return ModelSource(
        chain_id=market.chain.chain_id,
        contract=str(market.tree.address),
        task=task,
        node=node,
        is_winner=task.finalized and task.winner == node.id,
        spec=spec,
        spec_cid=path[0].cid,
        weights_cid=weights_cid,
        weights=raw,
        lineage=lineage,
        payouts=tuple(p for p in market.payouts(task_id) if p.kind != "stake"),
        pool=int(finalized[0]["args"]["pool"]) if finalized else None,
        test_bps=market.test_score(task_id) if task.finalized and task.winner == node.id else None,
    )


def _path(node: NodeView, nodes: dict[int, NodeView]) -> list[NodeView]:
    path = [node]
    while path[-1].parent_id:
        path.append(nodes[path[-1].parent_id])
    return path[::-1]


def _paid_by_rule(
    market: Market,
    task: TaskView,
    nodes: dict[int, NodeView],
    publisher_of: Callable[[int], str],
) -> dict[int, dict[str, int]]:
    """node id -> {payout kind: wei} for the winner's path, by the contract's own arithmetic
    (floor division; data and expertise by the raises of new bests over the task's sum of them,
    compute by each node's compute weight over raisedBps × WEIGHT_PER_BPS; each credit
    net of the reputation levy unless it goes to the sponsor). The events say who was credited what; this says for which node."""
    events = market.logs("TaskFinalized", taskId=task.id)
    if not events:
        return {}
    pool = int(events[0]["args"]["pool"])
    path = _path(nodes[task.winner], nodes)
    trained = path[1:]
    data_pool, compute_pool, expertise_pool = (pool * bps // BPS for bps in task.shares_bps)
    levy_bps = market.limits.reputation_levy_bps

    def net(amount: int, payee: str) -> int:
        return amount if payee == task.sponsor else amount - amount * levy_bps // BPS

    out: dict[int, dict[str, int]] = {}
    for n in trained:
        paid = {}
        if n.raise_bps:
            provider = publisher_of(n.dataset_id) if n.dataset_id else n.author
            paid["data"] = net(data_pool * n.raise_bps // task.raised_bps, provider)
        if n.compute_weight:
            paid["compute"] = net(
                compute_pool * n.compute_weight // (task.raised_bps * market.limits.weight_per_bps),
                n.author,
            )
        out[n.id] = {k: v for k, v in paid.items() if v}
    expertise = expertise_pool
    if task.raised_bps:
        expertise = expertise_pool * sum(n.raise_bps for n in trained) // task.raised_bps
    out[path[0].id] = {"expertise": net(expertise, path[0].author)} if expertise else {}
    return out


# ── the model card ───────────────────────────────────────────────────────────


def _features(info: TaskInfo | None) -> list[dict[str, Any]] | None:
    """The rows' schema, in column order: each feature's name (when the sponsor's file had a
    header) and the range the sponsor's rows span (what a row the model was scored on holds)."""
    box = info.input_box if info else None
    if info is None or box is None:
        return None
    names = info.feature_names or tuple(f"feature {i}" for i in range(info.num_features))
    return [
        {"name": name, "dtype": "float32", "min": low, "max": high}
        for name, low, high in zip(names, box.low, box.high, strict=True)
    ]


def _eth(wei: int) -> str:
    from bountytree.market.render import eth

    return eth(wei)


def front_matter(source: ModelSource, checks: Sequence[FormatCheck] = ()) -> dict[str, Any]:
    """The YAML header: Hugging Face's fields (model-index with the validation accuracy) and a
    `bountytree` block a program can check against the chain."""
    task, node, info = source.task, source.node, source.task.description
    accuracy = node.accuracy_bps / BPS
    task_name = info.name if info else f"task {task.id}"
    return {
        "library_name": "pytorch",
        "tags": ["bountytree", "classification", "safetensors"],
        "pipeline_tag": "tabular-classification",
        "model-index": [
            {
                "name": f"{task_name} node {node.id}",
                "results": [
                    {
                        "task": {"type": "tabular-classification", "name": "classification"},
                        "dataset": {
                            "name": f"{task_name}: the sponsor's private validation set",
                            "type": "private",
                        },
                        "metrics": [
                            {
                                "type": "accuracy",
                                "value": accuracy,
                                "name": "validation accuracy (two-party CrypTen, recorded on-chain)",
                            }
                        ],
                    }
                ],
            }
        ],
        "bountytree": {
            "chain_id": source.chain_id,
            "contract": source.contract,
            "task": task.id,
            "task_description_cid": task.description_cid,
            "finalized": task.finalized,
            "node": node.id,
            "winner": source.is_winner,
            "spec_cid": source.spec_cid,
            "weights_cid": source.weights_cid,
            "input_shape": list(source.spec.input_shape),
            "num_classes": source.spec.num_classes,
            "validation_accuracy": accuracy,
            "validation_rows": info.validation_rows if info else None,
            "test_accuracy": None if source.test_bps is None else source.test_bps / BPS,
            "features": _features(info),
            "target_accuracy": task.target_bps / BPS,
            "pool_wei": source.pool,
            "lineage": [
                {
                    "node": s.node_id,
                    "kind": s.kind,
                    "author": s.author,
                    "dataset": None if s.kind == "architecture" else (s.dataset_id or "private"),
                    "accuracy": s.accuracy_bps / BPS,
                    "raise": None if s.raise_bps is None else s.raise_bps / BPS,
                    "cid": s.cid,
                    "paid_wei": dict(s.paid),
                }
                for s in source.lineage
            ],
            "checked": [{"file": c.file, "rows": c.rows, "source": c.source} for c in checks],
        },
    }


def model_card(source: ModelSource, checks: Sequence[FormatCheck] = ()) -> str:
    """README.md: front matter, then what the model is, how good, where it came from, how to use."""
    import yaml  # type: ignore[import-untyped]

    task, node, spec = source.task, source.node, source.spec
    info = task.description
    header = yaml.safe_dump(front_matter(source, checks), sort_keys=False, allow_unicode=True)
    lines = [
        "---",
        str(header).rstrip(),
        "---",
        "",
        f"# {markdown(source.title)}",
        "",
        (markdown(info.description, block=True) + "\n") if info and info.description else "",
        f"A classifier of rows of {list(spec.input_shape)} features into {spec.num_classes} "
        f"classes, {markdown(spec.name) or 'unnamed'} ({spec.num_params:,} parameters), trained on the "
        f"bountytree marketplace. "
        + (
            "It is the winner the contract recorded when the task was finalized."
            if source.is_winner
            else "It is a scored node of the task, not (or not yet) its recorded winner."
        ),
        "",
        "## Accuracy",
        "",
        "| metric | value |",
        "| --- | --- |",
        f"| validation accuracy | {node.accuracy_bps / 100:.2f} % on "
        f"{info.validation_rows if info else '?'} rows the sponsor keeps private; computed by the "
        "oracle in a two-party CrypTen session and recorded on-chain |",
        f"| target of the task | {task.target_bps / 100:.2f} % |",
        (
            f"| test accuracy | {source.test_bps / 100:.2f} % on the sponsor's test part, scored "
            "once for the winner and recorded on-chain |"
            if source.test_bps is not None
            else "| test accuracy | none recorded (the sponsor kept no test part, or this node "
            "is not the winner) |"
        ),
        "",
        "## Lineage",
        "",
        "From the architecture down to this node. Gain is the accuracy a node added over the best "
        "already reached above it on the path (what the data share pays); paid is what the "
        "payout rule credited for the node when the task was finalized.",
        "",
        "| node | kind | author | data | accuracy | raise | paid | CID |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    recorded = {s.node_id: s.accuracy_bps for s in source.lineage}
    for s in source.lineage:
        data = "—" if s.kind == "architecture" else "private"
        if s.dataset_id:
            data = f"dataset {s.dataset_id} (published by {s.data_provider})"
        paid = ", ".join(f"{kind} {_eth(wei)}" for kind, wei in s.paid.items()) or "—"
        raised = "—" if s.raise_bps is None else f"{s.raise_bps / 100:+.2f} pts"
        parent_bps = recorded.get(s.parent_id) if s.kind == "trained" else None
        lines.append(
            f"| #{s.node_id} | {s.kind} | {s.author} | {data} | "
            f"{shown_score(s.accuracy_bps, parent_bps)} | {raised} | {paid} | `{s.cid}` |"
        )
    features = _features(info)
    if features:
        lines += [
            "",
            "## Input",
            "",
            "One row per prediction, the features in this order, as float32 (the ranges are "
            "those of the sponsor's rows; the model was scored on rows within them). No "
            "preprocessing happens outside the model.",
            "",
            "| # | feature | min | max |",
            "| --- | --- | --- | --- |",
        ]
        lines += [
            f"| {i} | {markdown(f['name'])} | {f['min']:.6g} | {f['max']:.6g} |"
            for i, f in enumerate(features)
        ]
    lines += ["", "## Payouts", ""]
    if source.payouts:
        lines += [
            f"Credited at finalize from a pool of {_eth(source.pool or 0)} (PayoutCredited events):",
            "",
            "| account | kind | amount |",
            "| --- | --- | --- |",
        ]
        lines += [f"| {p.account} | {p.kind} | {_eth(p.amount)} |" for p in source.payouts]
    else:
        lines.append("None yet: the task is not finalized.")
    lines += [
        "",
        "## Provenance",
        "",
        f"- chain id {source.chain_id}, BountyTree contract `{source.contract}`, task {task.id}",
        f"- task description `{task.description_cid}`",
        f"- model spec `{source.spec_cid}` (`config.json`, format bountytree/model@1)",
        f"- weights `{source.weights_cid}` (`model.safetensors`, byte for byte: adding it to IPFS "
        "gives this CID)",
        "",
    ]
    if checks:
        lines += ["## Exported formats, checked", ""]
        lines += [
            f"- `{c.file}` loaded back and run on {c.rows} rows of {c.source}: largest logit "
            f"difference from PyTorch {c.max_abs_diff:.2g}, predicted classes identical on "
            f"{c.classes_agree} of {c.rows} rows"
            for c in checks
        ]
        lines.append("")
    lines += [
        "## Use",
        "",
        "```python",
        "from pathlib import Path",
        "",
        "import numpy as np",
        "from bountytree.models.inference import Predictor",
        "from bountytree.models.spec import load_spec",
        "",
        "spec = load_spec(Path('config.json').read_bytes())",
        "model = Predictor.from_weights(Path('model.safetensors').read_bytes(), spec)",
        f"rows = np.zeros((3, {spec.num_features}), dtype=np.float32)  # your rows, one per line",
        "print(model.predict(rows).classes)",
        "```",
        "",
        f"or serve it: `bountytree serve --task {task.id} --node {node.id}` (Open Inference "
        "Protocol, see docs/models.md of bountytree).",
        "",
    ]
    return "\n".join(lines)
