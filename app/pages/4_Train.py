"""Train: your data stays on this machine; only the trained weights are uploaded."""

import sys
import tempfile
from pathlib import Path

import streamlit as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import ui

from bountytree.errors import UserError
from trainer.client import Trainer

market, task_id = ui.task_page("Train a node", "Train")
if task_id is not None:
    upload = st.file_uploader("Your private data (CSV or .npz)", type=["csv", "npz"])
    path_text = st.text_input("…or its path on this machine", key="data_path")
    nodes = market.nodes(task_id)
    choices = ["best"] + [n.id for n in nodes.values() if n.status != "rejected"]
    parent = st.selectbox(
        "Parent",
        choices,
        key="parent",
        format_func=lambda c: (
            "best node (default)"
            if c == "best"
            else f"#{c} {nodes[c].kind} {ui.pct(nodes[c].accuracy_bps) if nodes[c].status == 'scored' else nodes[c].status}"
        ),
    )
    path = None
    if upload is not None:
        path = Path(tempfile.mkdtemp(prefix="bountytree-data-")) / upload.name
        path.write_bytes(upload.getvalue())
    elif path_text:
        path = Path(path_text).expanduser()
    if st.button("Train and submit", type="primary", disabled=path is None, key="train"):
        bar = st.progress(0.0, text="training")
        chart = st.empty()
        losses = []

        def progress(step, total, loss):
            losses.append(loss)
            if step % 5 == 0 or step == total:
                bar.progress(step / total, text=f"step {step}/{total}, loss {loss:.4f}")
                chart.line_chart({"loss": losses})

        try:
            sub = Trainer(market).run(task_id, path, parent, 0, progress)
            st.success(
                f"Node {sub.node_id} submitted on parent {sub.parent_id}: local holdout accuracy "
                f"{sub.holdout_accuracy * 100:.1f}% (parent {sub.parent_holdout_accuracy * 100:.1f}%), "
                f"gas {sub.gas}, weights {sub.weights_cid}."
            )
        except UserError as exc:
            ui.fail(exc)
