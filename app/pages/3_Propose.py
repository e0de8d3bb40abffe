"""Propose an architecture: build it layer by layer from the whitelist, or upload a spec."""

import json

import streamlit as st

from app import ui
from bountytree.errors import UserError
from bountytree.models.spec import LAYERS, OPTIMIZERS, load_spec, parse_spec

here = ui.task_page("Propose an architecture")
if here is not None:
    market, task_id = here.market, here.task_id
    info = market.task(task_id).info
    st.caption(f"Rows have {info.num_features} features; {info.num_classes} classes.")
    mode = st.radio("Spec", ["Layer builder", "Upload JSON"], horizontal=True, key="mode")
    spec, problem = None, None
    if mode == "Upload JSON":
        upload = st.file_uploader("bountytree/model@1 spec", type=["json"])
        text = st.text_area("…or paste it", key="spec_text")
        raw = upload.getvalue() if upload is not None else text.encode()
        if raw.strip():
            try:
                spec = load_spec(raw)
            except UserError as exc:
                problem = str(exc)
    else:
        if "layers" not in st.session_state:
            st.session_state.layers = [
                {"type": "Linear", "in_features": info.num_features, "out_features": 32},
                {"type": "ReLU"},
                {"type": "Linear", "in_features": 32, "out_features": info.num_classes},
            ]
        layers = st.session_state.layers
        shape = st.text_input(
            "input_shape", value=json.dumps([info.num_features]), key="input_shape"
        )
        for i, layer in enumerate(list(layers)):
            cols = st.columns([2, 6, 1, 1, 1])
            cols[0].markdown(f"**{i}. {layer['type']}**")
            with cols[1]:
                for name, arg in LAYERS[layer["type"]].args.items():
                    value = layer.get(name, arg.default)
                    if isinstance(arg.default, bool) or name == "bias":
                        layer[name] = st.checkbox(
                            name,
                            value=bool(value if value is not None else True),
                            key=f"l{i}{name}",
                        )
                    elif isinstance(value, float) or name in ("p", "eps", "momentum"):
                        layer[name] = st.number_input(
                            name, value=float(value), key=f"l{i}{name}", format="%g"
                        )
                    else:
                        layer[name] = int(
                            st.number_input(name, value=int(value or 0), step=1, key=f"l{i}{name}")
                        )
            if cols[2].button("↑", key=f"up{i}", disabled=i == 0):
                layers[i - 1], layers[i] = layers[i], layers[i - 1]
                st.rerun()
            if cols[3].button("↓", key=f"down{i}", disabled=i == len(layers) - 1):
                layers[i + 1], layers[i] = layers[i], layers[i + 1]
                st.rerun()
            if cols[4].button("✕", key=f"remove{i}"):
                layers.pop(i)
                st.rerun()
        add_cols = st.columns([3, 1])
        new_type = add_cols[0].selectbox("Add a layer", list(LAYERS), key="new_type")
        if add_cols[1].button("Add", key="add_layer"):
            layers.append(
                {
                    "type": new_type,
                    **{
                        n: (a.default if a.default is not None else 1)
                        for n, a in LAYERS[new_type].args.items()
                    },
                }
            )
            st.rerun()
        st.markdown("**Training recipe**")
        t = st.columns(6)
        training = {
            "optimizer": t[0].selectbox("optimizer", OPTIMIZERS, key="optimizer"),
            "lr": t[1].number_input("lr", value=0.01, format="%g", key="lr"),
            "momentum": t[2].number_input("momentum", value=0.0, key="momentum"),
            "batch_size": int(t[3].number_input("batch size", value=32, step=1, key="batch_size")),
            "epochs": int(t[4].number_input("epochs", value=5, step=1, key="epochs")),
            "seed": int(t[5].number_input("seed", value=0, step=1, key="seed")),
        }
        name = st.text_input("Name", value="my architecture", key="spec_name")
        try:
            spec = parse_spec(
                {
                    "name": name,
                    "input_shape": json.loads(shape),
                    "num_classes": info.num_classes,
                    "layers": [
                        {k: v for k, v in layer.items() if v is not None} for layer in layers
                    ],
                    "training": training,
                }
            )
        except (UserError, ValueError) as exc:
            problem = str(exc)
    if problem:
        st.error(problem)
    elif spec is not None:
        st.success(f"Valid spec: {spec.num_params:,} parameters")
    clicked = ui.button(
        "Propose",
        key="propose",
        primary=True,
        why_not=None if spec is not None else "the spec above is not valid yet",
    )
    out = ui.act(
        "propose",
        clicked,
        lambda m: m.propose(task_id, ui.required(spec, "a valid spec")),
        what="Proposing the architecture",
    )
    if out is not None:
        st.success(
            f"Node {out.node_id} proposed: spec {out.spec_cid}, initial weights "
            f"{out.weights_cid}. Committed in {out.commit.tx_hash}, revealed in "
            f"{out.reveal.tx_hash}; gas {out.gas}."
        )
