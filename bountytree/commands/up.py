"""`bountytree up`: the whole marketplace on this machine.

Starts the local chain (Ganache, or anvil with `--chain anvil`) with its state under the home
folder (a second `up` resumes the same chain),
deploys the contracts unless this chain already has them, starts the oracle and the app, and
with `--demo` plays the scripted market. Ctrl-C stops every process it started.
With `--store ipfs` the store is a js-ipfs daemon (offline, API on 127.0.0.1) whose repo is kept
in `.bountytree/ipfs` like the chain's state (`bountytree/storage/daemon.py`).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from typing import Any, BinaryIO
from urllib.parse import urlparse

from bountytree.config import ROOT, Settings
from bountytree.errors import UserError

# What may carry a key: never in the app's environment, which every session of it shares.
KEY_VARIABLES = ("BOUNTYTREE_PRIVATE_KEY", "BOUNTYTREE_KEYSTORE_PASSWORD")


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "up", parents=[common], help="local chain (state on disk), deploy if needed, oracle, app"
    )
    p.add_argument(
        "--demo",
        action="store_true",
        help="play the scripted market on digits once everything is up",
    )
    p.add_argument("--no-app", action="store_true", help="do not start the Streamlit app")
    p.add_argument(
        "--no-oracle",
        action="store_true",
        help="do not start the oracle (run your own: python -m oracle --account ...)",
    )
    p.add_argument(
        "--chain-only",
        action="store_true",
        help="only the chain (and the contracts, deployed if needed): no oracle, no app",
    )
    p.add_argument(
        "--chain",
        choices=("ganache", "anvil"),
        default="ganache",
        help="the local chain to start (state in .bountytree/chain or .bountytree/anvil)",
    )
    p.add_argument(
        "--private-models",
        action="store_true",
        help="also start two custodians (dev:10, dev:11) and a dealer (dev:12) for private "
        "tasks; with --demo, play a private task",
    )
    p.add_argument("--app-port", type=int, default=8501)
    p.add_argument(
        "--exit", action="store_true", help="stop everything once the demo is done (for scripts)"
    )
    p.set_defaults(run=run)


def _deployed(settings: Settings) -> bool:
    from bountytree.chain.client import Chain, deployment_path

    chain = Chain(settings, need_contracts=False)
    path = deployment_path(settings.deployments, chain.chain_id)
    if not path.exists():
        return False
    import json

    from bountytree.chain.client import load_artifact

    deployed = json.loads(path.read_text())
    for name in ("BountyTree", "PrivateCustody"):
        record = deployed.get(name)
        if record is None or record["abi"] != load_artifact(settings.build, name)["abi"]:
            return False  # deployed from older sources: a new interface needs new contracts
    # the file may outlive a reset chain
    return len(chain.w3.eth.get_code(deployed["BountyTree"]["address"])) > 0


def _start_custody(settings: Settings, env: dict[str, str], spawn: Any, logs: Any) -> None:
    """Two custodians and a dealer as local development accounts (their key files under the
    home folder, created once), meeting at a free loopback port."""
    from bountytree.chain.client import ganache_account
    from bountytree.market.actions import open_market
    from bountytree.market.custody import LOCAL_PARTIES, Custody, local_key_file
    from bountytree.private.sealing import write_private_key
    from bountytree.processes import free_port

    peer = f"127.0.0.1:{free_port()}"
    *custodians, dealer = LOCAL_PARTIES
    admin = Custody(open_market(settings, ganache_account(0)))  # the deployer
    for account in LOCAL_PARTIES:
        address = ganache_account(account).address
        if not admin.is_approved(address):
            admin.approve(address)
    keys = {}
    for account in LOCAL_PARTIES:
        keys[account] = local_key_file(settings.home, account)
        if not keys[account].exists():
            keys[account].parent.mkdir(parents=True, exist_ok=True)
            write_private_key(keys[account])
    for index, account in enumerate(custodians):
        argv = ["serve", "--key-file", str(keys[account]), "--peer", peer, "--interval", "2"]
        spawn(
            f"custodian{index}",
            [sys.executable, "-m", "custodian", *argv],
            {**env, "BOUNTYTREE_ACCOUNT": f"dev:{account}"},
        )
    spawn(
        "dealer",
        [
            sys.executable,
            "-m",
            "custodian",
            "dealer",
            "--key-file",
            str(keys[dealer]),
            "--peer",
            peer,
        ],
        {**env, "BOUNTYTREE_ACCOUNT": f"dev:{dealer}"},
    )
    print(
        f"custody    custodians dev:{custodians[0]}, dev:{custodians[1]} and dealer dev:{dealer} "
        f"at {peer} (logs: {logs / 'custodian0.log'} …)"
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    from bountytree.chain.client import LOCAL_CHAIN_IDS, connect, deploy, deployment_path
    from bountytree.chain.local import STATE_FOLDERS, BlockClock, start_chain
    from bountytree.processes import die_with_parent, stop, wait_for_port

    url = urlparse(settings.rpc)
    if url.hostname not in ("127.0.0.1", "localhost") or not url.port:
        raise UserError(
            f"bountytree up runs a local chain; --rpc {settings.rpc} is not http://127.0.0.1:PORT"
        )
    logs = settings.home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    started: list[tuple[str, subprocess.Popen[bytes]]] = []

    def shutdown(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, shutdown)
    # Each process writes to its own log under .bountytree/logs; the files close when up ends.
    files = contextlib.ExitStack()

    def log(name: str) -> BinaryIO:
        return files.enter_context(open(logs / name, "ab"))

    def spawn(name: str, argv: list[str], env: dict[str, str]) -> None:
        started.append(
            (
                name,
                subprocess.Popen(
                    argv,
                    env=env,
                    stdout=log(f"{name}.log"),
                    stderr=subprocess.STDOUT,
                    preexec_fn=die_with_parent(),  # no role outlives `up`, even killed
                ),
            )
        )

    try:
        if settings.store == "ipfs":  # a js-ipfs daemon, its repo in .bountytree/ipfs
            from bountytree.storage.daemon import start as start_ipfs

            daemon = start_ipfs(settings.home / "ipfs", logs / "ipfs.log")
            if daemon.proc is not None:
                started.append(("ipfs", daemon.proc))
            settings = settings.with_overrides(store=daemon.url)
            print(f"store      IPFS daemon at {daemon.url}, repo in {daemon.repo}")
        try:
            wait_for_port(url.port, timeout=0.5)
            print(f"chain      already running at {settings.rpc}")
            BlockClock(settings.rpc).start()  # reveals need a block after their commit
        except UserError:
            state = settings.home / STATE_FOLDERS[args.chain]
            local = start_chain(args.chain, url.port, state, log=log(f"{args.chain}.log"))
            started.append((args.chain, local.proc))
            print(f"chain      {args.chain} at {settings.rpc}, state in {state}")
        chain_id = int(connect(settings.rpc).eth.chain_id)
        if chain_id not in LOCAL_CHAIN_IDS:
            raise UserError(
                f"the chain at {settings.rpc} has chain id {chain_id}, not a local development "
                f"chain ({', '.join(map(str, sorted(LOCAL_CHAIN_IDS)))}): `up` would run its oracle "
                "with a public development key there. Deploy with `bountytree deploy --account "
                "KEYSTORE` and run `python -m oracle --account KEYSTORE` instead"
            )
        if _deployed(settings):
            path = deployment_path(settings.deployments, chain_id)
            print(f"contracts  already deployed ({path})")
        else:
            record = deploy(settings)["record"]
            print(f"contracts  deployed BountyTree {record['BountyTree']['address']}")
        # The oracle acts as the deployer, the local chain's account 0. The roles are processes,
        # never imports: the core knows them only by their module names.
        env = {**os.environ, **settings.to_env(), "BOUNTYTREE_ACCOUNT": "dev:0"}
        if not (args.no_oracle or args.chain_only):
            spawn("oracle", [sys.executable, "-m", "oracle", "--interval", "2"], env)
            print(f"oracle     dev:0, scoring every 2 s (log: {logs / 'oracle.log'})")
        if not (args.no_app or args.chain_only):
            # Settings in app/.streamlit/config.toml (127.0.0.1, headless, no usage
            # statistics); the app holds no key, so none is passed on.
            app = [sys.executable, "-m", "streamlit", "run", str(ROOT / "app" / "main.py")]
            app_env = {k: v for k, v in env.items() if k not in KEY_VARIABLES}
            spawn("app", [*app, "--server.port", str(args.app_port)], app_env)
            print(f"app        http://localhost:{args.app_port}")
        if args.private_models and not args.chain_only:
            _start_custody(settings, env, spawn, logs)
        # The scripted market runs the trainer, a role: a process as well.
        demo = [
            sys.executable,
            "-m",
            "demo",
            *(["--private-models"] if args.private_models else []),
        ]
        if args.demo and subprocess.run(demo, env=env).returncode:
            raise UserError("the scripted market stopped (see above)")
        if args.exit:
            return 0
        print(
            "Ctrl-C stops everything."
            + (
                f" The app stays at http://localhost:{args.app_port}"
                if not (args.no_app or args.chain_only)
                else ""
            ),
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
        files.close()
