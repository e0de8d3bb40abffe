"""`bountytree serve --task N [--node ID] [--host 127.0.0.1] [--port 8080]`: the task's model
over HTTP, speaking the Open Inference Protocol (KServe v2 REST); see docs/models.md.
`bountytree serve DIR`: an exported model folder, without a chain or a store.

Heavy imports (torch, starlette, uvicorn) wait inside `run`."""

from __future__ import annotations

import argparse
import sys

from bountytree.config import Settings


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    p = sub.add_parser(
        "serve",
        parents=[common],
        help="serve a task's winner (or a scored node) over HTTP (Open Inference Protocol)",
    )
    p.add_argument(
        "folder",
        nargs="?",
        help="an exported model folder (`model export --out`) to serve without a chain",
    )
    p.add_argument("--task", type=int)
    p.add_argument("--node", type=int, help="a scored node of the task (default: the winner)")
    p.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine)"
    )
    p.add_argument("--port", type=int, default=8080, help="default 8080; 0 picks a free port")
    p.add_argument(
        "--max-batch", type=int, default=64, help="rows per forward pass (1: no batching)"
    )
    p.add_argument(
        "--max-delay-ms",
        type=float,
        default=1.0,
        help="how long a batch waits for requests already arriving (default 1 ms)",
    )
    p.add_argument("--max-rows", type=int, default=1024, help="rows per request (default 1024)")
    p.add_argument("--max-body-mb", type=float, default=4.0, help="request body limit (default 4)")
    p.add_argument(
        "--max-body-memory-mb",
        type=float,
        default=256.0,
        help="request bodies held at once, all requests together (default 256)",
    )
    p.add_argument(
        "--max-connections", type=int, default=1000, help="connections open at once (default 1000)"
    )
    p.add_argument(
        "--header-timeout-s",
        type=float,
        default=10.0,
        help="seconds from a request's first byte to its last header (default 10)",
    )
    p.add_argument(
        "--body-timeout-s",
        type=float,
        default=30.0,
        help="seconds from a request's last header to its body's last byte (default 30)",
    )
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from bountytree.errors import UserError

    if (args.folder is None) == (args.task is None):
        raise UserError("serve a model folder (DIR) or a task's model (--task N): one of the two")
    if args.folder is not None and args.node is not None:
        raise UserError("--node goes with --task: a folder holds one model")
    if not 0 <= args.port <= 65535:
        raise UserError(f"--port: {args.port} is outside 0..65535")
    if not 1 <= args.threads <= 64:
        raise UserError(f"--threads: {args.threads} is outside 1..64")
    import torch

    from bountytree.delivery.http import HttpLimits
    from bountytree.delivery.metrics import ModelInfo
    from bountytree.delivery.model_card import read_market, resolve
    from bountytree.delivery.serving import ServeConfig, build_app, listen
    from bountytree.delivery.serving import run as serve_forever
    from bountytree.models.inference import Predictor

    config = ServeConfig(
        max_batch=args.max_batch,
        max_delay=args.max_delay_ms / 1000,
        max_rows=args.max_rows,
        max_body=int(args.max_body_mb * (1 << 20)),
        body_memory=int(args.max_body_memory_mb * (1 << 20)),
        http=HttpLimits(
            header_timeout=args.header_timeout_s,
            body_timeout=args.body_timeout_s,
            max_connections=args.max_connections,
        ),
    )
    config.check()
    torch.set_num_threads(args.threads)
    if args.folder is not None:
        from bountytree.delivery.folder import load_folder

        held = load_folder(args.folder)
        predictor = Predictor.from_weights(held.weights, held.spec, held.weights_cid)
        model = ModelInfo(held.name, held.version, held.task_id, held.node_id)
        said = f"serving {args.folder} (weights {held.weights_cid})"
    else:
        source = resolve(read_market(settings), args.task, args.node)
        predictor = Predictor.from_weights(source.weights, source.spec, source.weights_cid)
        model = ModelInfo(source.model_name, source.version, source.task.id, source.node.id)
        role = "winner" if source.is_winner else "scored node"
        said = (
            f"serving node {source.node.id} ({role} of task {source.task.id}, validation "
            f"accuracy {source.node.accuracy_bps / 100:.2f}%)"
        )
    predictor.forward(predictor.rows(torch.zeros(config.max_batch, predictor.num_features).numpy()))
    app = build_app(predictor, model, config)
    sock = listen(args.host, args.port)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/v2/models/{model.name}"

    def announce() -> None:
        print(f"{said} at {url}", flush=True)
        if args.host not in ("127.0.0.1", "localhost", "::1"):
            print(
                f"warning: listening on {args.host}: anyone who can reach it may query the model "
                "(no authentication)",
                file=sys.stderr,
                flush=True,
            )

    serve_forever(app, sock, announce)
    print("stopped", flush=True)
    return 0
