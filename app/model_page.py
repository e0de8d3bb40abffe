"""The Model page: the model a finalized task paid for. Its model card, downloads of the export
(the folder `bountytree model export` writes, zipped) and a "try it" box that predicts the rows
of an uploaded CSV with `bountytree.inference.Predictor`, the code `bountytree serve` runs.

The body is `render()`, so the page file is a two-line wrapper whichever way the app lists its
pages."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import streamlit as st

from app import ui
from bountytree.delivery.export import FORMATS, check_rows, export_zip
from bountytree.delivery.model_card import ModelSource, model_card, resolve
from bountytree.errors import UserError
from bountytree.market.actions import Market, NodeView
from bountytree.models.inference import Predictor, accuracy, rows_from_csv
from bountytree.text import markdown

FORMAT_LABELS = {
    "safetensors": "safetensors",
    "onnx": "+ ONNX",
    "torchscript": "+ TorchScript",
}
PREVIEW_ROWS = 200


@st.cache_resource(max_entries=8, show_spinner="Reading the model from the chain and the store…")
def _load(
    chain_id: int, contract: str, task_id: int, node_id: int, finalized: bool, _market: Market
) -> tuple[ModelSource, Predictor]:
    """One node's source and predictor, kept across reruns (the key names the chain and task
    state: a task finalized since is read again)."""
    source = resolve(_market, task_id, node_id)
    return source, Predictor.from_weights(source.weights, source.spec, source.weights_cid)


@st.cache_data(max_entries=16, show_spinner=False)
def _zip(
    chain_id: int,
    contract: str,
    node_id: int,
    winner: bool,
    fmt: str,
    _market: Market,
    _source: ModelSource,
) -> bytes:
    return export_zip(_source, fmt, check_rows(_market, _source))


def _download(market: Market, source: ModelSource, fmt: str) -> Callable[[], bytes]:
    """Built when the button is clicked (an ONNX or TorchScript export is converted and
    checked then, not on every run of the page)."""
    return lambda: _zip(
        source.chain_id, source.contract, source.node.id, source.is_winner, fmt, market, source
    )


def _node_label(n: NodeView, winner: int) -> str:
    star = "  ★ winner" if n.id == winner else ""
    return f"#{n.id} {n.kind}, {ui.pct(n.accuracy_bps)}{star}"


def _try_it(source: ModelSource, predictor: Predictor) -> None:
    st.subheader("Try it")
    info = source.task.description
    label_column = info.label_column if info else "label"
    upload = st.file_uploader(
        f"Rows to predict: a CSV with a header and {source.spec.num_features} feature columns "
        f"(a {markdown(repr(label_column))} column, if present, is compared with the predictions)",
        type=["csv"],
        key="model_rows",
    )
    if upload is None:
        return
    try:
        rows = rows_from_csv(upload.getvalue(), source.spec.num_features, label_column, upload.name)
        prediction = predictor.predict(rows.X, upload.name)
    except UserError as exc:
        ui.fail(exc)
        return
    cols = st.columns(3)
    cols[0].metric("Rows", f"{len(prediction):,}")
    if rows.labels is not None:
        cols[1].metric("Accuracy on these rows", f"{accuracy(prediction, rows.labels):.2%}")
    probabilities = prediction.probabilities()
    table = {
        "row": np.arange(len(prediction))[:PREVIEW_ROWS],
        "predicted class": prediction.classes[:PREVIEW_ROWS],
        "probability": probabilities.max(axis=1)[:PREVIEW_ROWS].round(4),
    }
    if rows.labels is not None:
        table["label"] = rows.labels[:PREVIEW_ROWS]
    st.dataframe(table, hide_index=True, width="stretch")
    if len(prediction) > PREVIEW_ROWS:
        st.caption(f"The first {PREVIEW_ROWS} of {len(prediction):,} rows.")


def render() -> None:
    here = ui.task_page("Model")
    if here is None:
        return
    market, task_id = here.market, here.task_id
    task = market.task(task_id)
    nodes = market.nodes(task_id)
    scored = sorted(
        (n for n in nodes.values() if n.status == "scored"), key=lambda n: (-n.accuracy_bps, n.id)
    )
    if not scored:
        st.info(f"Task {task_id} has no scored node yet: there is no model to show.")
        return
    if not (task.finalized and task.winner):
        st.info(
            f"Task {task_id} is not finalized: it has no winner yet. Its scored nodes can be "
            "looked at and exported; the best so far is selected."
        )
    ids = [n.id for n in scored]
    default = ids.index(task.winner) if task.winner in ids else 0
    node_id = st.selectbox(
        "Node",
        ids,
        index=default,
        key="model_node",
        format_func=lambda i: _node_label(nodes[i], task.winner),
    )
    try:
        source, predictor = _load(
            market.chain.chain_id,
            str(market.tree.address),
            task_id,
            node_id,
            task.finalized,
            market,
        )
    except UserError as exc:
        ui.fail(exc)
        return
    spec = source.spec
    cols = st.columns(4)
    cols[0].metric("Validation accuracy", ui.pct(source.node.accuracy_bps))
    cols[1].metric("Target", ui.pct(task.target_bps))
    cols[2].metric("Parameters", f"{spec.num_params:,}")
    cols[3].metric("Role", "winner" if source.is_winner else "scored node")

    _try_it(source, predictor)

    st.subheader("Download")
    st.caption(
        "The folder `bountytree model export` writes: model.safetensors, config.json (the spec) "
        "and README.md (the model card); ONNX and TorchScript are converted and checked against "
        "PyTorch when the button is clicked. Loading model.pt runs TorchScript."
    )
    buttons = st.columns(len(FORMATS))
    for col, fmt in zip(buttons, FORMATS, strict=True):
        col.download_button(
            f"Download {FORMAT_LABELS[fmt]} (.zip)",
            _download(market, source, fmt),
            file_name=f"{source.model_name}-node-{source.node.id}-{fmt}.zip",
            mime="application/zip",
            key=f"model_download_{fmt}",
            on_click="ignore",
        )
    st.caption(f"Or serve it: `bountytree serve --task {task_id} --node {node_id}`")

    st.subheader("Model card")
    card = model_card(source)
    # The front matter ends at the first line that is exactly "---" (text in the card may
    # hold "---" elsewhere, escaped or not).
    front, body = card.removeprefix("---\n").split("\n---\n", 1)
    st.markdown(body)
    with st.expander("Front matter (YAML)"):
        st.code(front, language="yaml")
