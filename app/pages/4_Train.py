"""Train: your data stays on this machine; only the trained weights are uploaded. Or publish a
dataset to the task, for anyone (a compute provider) to train on."""

import streamlit as st

from app import jobs, ui
from trainer.client import Trainer


def _train(market, task_id, path, parent, dataset_id):
    """The trainer's own run, its losses reported to the page as they come."""
    losses: list[float] = []

    def progress(step: int, total: int, loss: float) -> None:
        losses.append(loss)
        jobs.report((step, total, list(losses)))

    return Trainer(market).run(task_id, path, parent, dataset_id, progress)


def _draw_progress(bar, chart):
    def draw(value) -> None:
        step, total, losses = value
        bar.progress(step / total, text=f"step {step}/{total}, loss {losses[-1]:.4f}")
        chart.line_chart({"loss": losses})

    return draw


here = ui.task_page("Train a node")
if here is not None:
    market, task_id = here.market, here.task_id
    published = market.datasets_of(task_id)
    source = st.radio(
        "Train on",
        ["private", "published"],
        horizontal=True,
        key="source",
        format_func=lambda s: {"private": "my private data", "published": "a published dataset"}[s],
        disabled=not published,
    )
    path, dataset_id = None, 0
    if source == "private":
        path = ui.chosen_file("Your private data (CSV or .npz)", "data_path")
    else:
        dataset_id = st.selectbox("Dataset", [d for d, _ in published], key="dataset")
    nodes = market.nodes(task_id)
    choices = ["best"] + [n.id for n in nodes.values() if n.status != "rejected"]
    parent = st.selectbox(
        "Parent",
        choices,
        key="parent",
        format_func=lambda c: (
            "best node (default)"
            if c == "best"
            else f"#{c} {nodes[c].kind} "
            + (ui.pct(nodes[c].accuracy_bps) if nodes[c].status == "scored" else nodes[c].status)
        ),
    )
    clicked = ui.button(
        "Train and submit",
        key="train",
        primary=True,
        why_not="choose your data file (or a published dataset) first"
        if path is None and not dataset_id
        else None,
    )
    bar, chart = st.empty(), st.empty()
    sub = ui.act(
        f"train-{task_id}",
        clicked,
        lambda m: _train(m, task_id, path, parent, dataset_id),
        what="Training and submitting",
        progress=_draw_progress(bar, chart),
    )
    if sub is not None:
        st.success(
            f"Node {sub.node_id} submitted on parent {sub.parent_id}: local holdout accuracy "
            f"{sub.holdout_accuracy * 100:.1f}% (parent {sub.parent_holdout_accuracy * 100:.1f}%), "
            f"gas {sub.gas}, weights {sub.weights_cid}."
        )

    st.subheader("Publish a dataset")
    st.caption(
        "A published dataset is public: anyone may train on it, and the oracle replays that "
        "training to pay its compute; its gains are paid to you."
    )
    public = ui.chosen_file("Public dataset (CSV or .npz)", "public_path")
    clicked = ui.button(
        "Publish",
        key="publish",
        why_not="choose the dataset file first" if public is None else None,
    )
    out = ui.act(
        f"publish-{task_id}",
        clicked,
        lambda m: m.publish_dataset(task_id, ui.required(public, "a dataset file")),
        what="Publishing the dataset",
    )
    if out is not None:
        st.success(
            f"Dataset {out.dataset_id} published: {out.rows} rows, {out.cid}. "
            f"Committed in {out.commit.tx_hash}, revealed in {out.reveal.tx_hash}; gas {out.gas}."
        )
