"""`bountytree up`: the whole marketplace on this machine.

Starts Ganache with its state under the home folder (a second `up` resumes the same chain),
deploys the contracts unless this chain already has them, starts the oracle and the app, and
with `--demo` plays the scripted market. Ctrl-C stops every process it started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from urllib.parse import urlparse

from ..chain import Chain, deploy, deployment_path
from ..config import ROOT
from ..errors import UserError
from ..localchain import start_ganache, stop, wait_for_port


def register(sub, common) -> None:
    p = sub.add_parser(
        "up", parents=[common], help="local Ganache (state on disk), deploy if needed, oracle, app"
    )
    p.add_argument(
        "--demo",
        action="store_true",
        help="play the scripted market on digits once everything is up",
    )
    p.add_argument("--no-app", action="store_true", help="do not start the Streamlit app")
    p.add_argument("--app-port", type=int, default=8501)
    p.add_argument(
        "--exit", action="store_true", help="stop everything once the demo is done (for scripts)"
    )
    p.set_defaults(run=run)


def _deployed(settings) -> bool:
    chain = Chain(settings, need_contracts=False)
    path = deployment_path(settings.deployments, chain.chain_id)
    if not path.exists():
        return False
    import json

    address = json.loads(path.read_text())["BountyTree"]["address"]
    return len(chain.w3.eth.get_code(address)) > 0  # the file may outlive a chain that was reset


def run(args, settings) -> int:
    url = urlparse(settings.rpc)
    if url.hostname not in ("127.0.0.1", "localhost") or not url.port:
        raise UserError(
            f"bountytree up runs a local chain; --rpc {settings.rpc} is not http://127.0.0.1:PORT"
        )
    logs = settings.home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    started: list[tuple[str, subprocess.Popen]] = []

    def shutdown(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, shutdown)
    try:
        try:
            wait_for_port(url.port, timeout=0.5)
            print(f"chain      already running at {settings.rpc}")
        except UserError:
            chain_log = open(logs / "ganache.log", "ab")
            started.append(
                ("ganache", start_ganache(url.port, settings.home / "chain", log=chain_log))
            )
            print(f"chain      Ganache at {settings.rpc}, state in {settings.home / 'chain'}")
        if _deployed(settings):
            print(f"contracts  already deployed ({deployment_path(settings.deployments, 1337)})")
        else:
            record = deploy(settings)["record"]
            print(f"contracts  deployed BountyTree {record['BountyTree']['address']}")
        # The oracle and the app act as the deployer, the local chain's account 0.
        env = {**os.environ, **settings.to_env(), "BOUNTYTREE_ACCOUNT": "dev:0"}
        oracle_log = open(logs / "oracle.log", "ab")
        started.append(
            (
                "oracle",
                subprocess.Popen(
                    [sys.executable, "-m", "oracle", "--interval", "2"],
                    env=env,
                    stdout=oracle_log,
                    stderr=subprocess.STDOUT,
                ),
            )
        )
        print(f"oracle     scoring every 2 s (log: {logs / 'oracle.log'})")
        if not args.no_app:
            app_log = open(logs / "app.log", "ab")
            started.append(
                (
                    "app",
                    subprocess.Popen(
                        [
                            sys.executable,
                            "-m",
                            "streamlit",
                            "run",
                            str(ROOT / "app" / "Home.py"),
                            "--server.headless",
                            "true",
                            "--server.port",
                            str(args.app_port),
                            "--browser.gatherUsageStats",
                            "false",
                        ],
                        env=env,
                        stdout=app_log,
                        stderr=subprocess.STDOUT,
                    ),
                )
            )
            print(f"app        http://localhost:{args.app_port}")
        if args.demo:
            # The scripted market runs the trainer, a role: it is a process, never an import.
            if subprocess.run([sys.executable, "-m", "demo"], env=env).returncode != 0:
                raise UserError("the scripted market stopped (see above)")
        if args.exit:
            return 0
        print(
            "Ctrl-C stops everything."
            + (f" The app stays at http://localhost:{args.app_port}" if not args.no_app else ""),
            flush=True,
        )
        while True:
            for name, proc in started:
                if proc.poll() is not None:
                    raise UserError(f"{name} stopped (exit {proc.returncode}); see {logs}")
            time.sleep(1)
    except KeyboardInterrupt:
        print("\nstopping", file=sys.stderr)
        return 0
    finally:
        for _, proc in reversed(started):
            stop(proc)
