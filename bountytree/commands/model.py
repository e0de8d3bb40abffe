"""`bountytree model export --task N [--node ID] --out DIR [--format …]`: the model a task paid
for, as a folder anyone can load (weights, spec, model card; ONNX or TorchScript on request).

Heavy imports (torch, onnx) wait inside `run_export`, so `bountytree --help` stays quick."""

from __future__ import annotations

import argparse
from pathlib import Path

from bountytree.config import Settings

# bountytree.export.FORMATS, repeated here so that parsing imports no torch.
FORMATS = ("safetensors", "onnx", "torchscript")


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    p = sub.add_parser("model", parents=[common], help="the model a task produced: export it")
    verbs = p.add_subparsers(dest="verb", required=True)
    e = verbs.add_parser(
        "export",
        parents=[common],
        help="write the winner (or a scored node) as a Hugging Face-style folder",
    )
    e.add_argument("--task", type=int, required=True)
    e.add_argument("--node", type=int, help="a scored node of the task (default: the winner)")
    e.add_argument("--out", required=True, help="a new or empty folder")
    e.add_argument(
        "--format",
        choices=FORMATS,
        default="safetensors",
        help="safetensors only (default), or also model.onnx or model.pt (TorchScript)",
    )
    e.add_argument(
        "--check-data",
        help="rows (CSV with the task's label column, or .npz) to check a converted file on "
        "(default: a dataset published to the task, else the example digits)",
    )
    e.add_argument(
        "--key-file",
        help="a private task's winner: the sponsor's key file, which opens the custodians' "
        "hand-overs",
    )
    e.set_defaults(run=run_export)


def run_export(args: argparse.Namespace, settings: Settings) -> int:
    from bountytree.delivery.export import CheckRows, check_rows, export_model, require_empty
    from bountytree.delivery.model_card import read_market, resolve
    from bountytree.models.datasets import check_against, load_file

    out = Path(args.out)
    require_empty(out)  # before anything is read: a refused target costs nothing
    market = read_market(settings)
    opened = None
    if market.chain.custody is not None:
        from bountytree.delivery.private import open_winner

        opened = open_winner(market, args.task, args.node, args.key_file)
    source = resolve(market, args.task, args.node, opened)
    if args.check_data:
        info = source.task.description
        ds = load_file(args.check_data, info.label_column if info else "label")
        check_against(ds, source.spec.num_features, source.spec.num_classes, args.check_data)
        rows = CheckRows(ds.X[:256], args.check_data)
    else:
        rows = check_rows(market, source)
    done = export_model(source, out, args.format, rows)
    role = "winner" if source.is_winner else "scored node"
    print(
        f"exported node {source.node.id} ({role} of task {args.task}, validation accuracy "
        f"{source.node.accuracy_bps / 100:.2f}%) to {done.folder}"
    )
    for name in done.files:
        print(f"  {name:<18} {(done.folder / name).stat().st_size:>10,} bytes")
    for c in done.checks:
        print(
            f"  checked {c.file}: {c.rows} rows of {c.source}, largest logit difference "
            f"{c.max_abs_diff:.2g}, classes identical on {c.classes_agree}/{c.rows}"
        )
    return 0
