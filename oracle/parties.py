"""The two processes of a scoring session: `python -m oracle validator` (party 0, the sponsor's
host) and `python -m oracle model-party` (party 1, started by the oracle)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bountytree import datasets
from bountytree import weights as weights_io
from bountytree.errors import UserError
from bountytree.files import atomic_write_json
from bountytree.market import open_market
from bountytree.spec import parse_spec
from bountytree.validation import check_commitment, registered_salt, validator_folder

from .admission import Gate

SALT_ENV = "BOUNTYTREE_VALIDATION_SALT"


def run_validator(
    settings, task_id: int, validation: str, address: str, sessions: int, salt: bytes | None = None
) -> int:
    """Party 0. Checks the file and its salt (by default the one `task create` kept on this
    machine) against the task's commitment before anything else, then serves `sessions` scoring
    sessions (0: until stopped), each in a fresh process."""
    market = open_market(settings)
    task = market.task(task_id)
    if salt is None and os.environ.get(SALT_ENV):
        salt = bytes.fromhex(os.environ[SALT_ENV])
    if salt is None:
        salt = registered_salt(settings.home, market.chain.chain_id, task_id)
    check_commitment(validation, salt, task.commitment)
    rows = datasets.load_file(validation, task.info.label_column)
    datasets.check_against(rows, task.info.num_features, task.info.num_classes, validation)
    if sessions == 1:
        from . import mpc

        gate = Gate(
            market, task_id, validator_folder(settings.home, market.chain.chain_id) / "sessions.log"
        )
        mpc.join(address, mpc.DATA_PARTY)
        try:
            mpc.data_party(rows.X, rows.y, task.info.num_classes, gate.admit)
        except mpc.SessionRefused as exc:
            raise UserError(f"session refused: {exc}") from None
        finally:
            mpc.leave()
        return 0
    served = 0
    print(
        f"validator for task {task_id} on {address} ({len(rows)} rows, commitment checked)",
        flush=True,
    )
    while sessions == 0 or served < sessions:
        argv = [
            sys.executable,
            "-m",
            "oracle",
            "validator",
            "--task",
            str(task_id),
            "--validation",
            validation,
            "--address",
            address,
            "--sessions",
            "1",
        ]
        if getattr(settings, "rpc", None):
            argv += ["--rpc", settings.rpc]
        # the salt goes by environment (readable by this user only), never on a command line
        status = subprocess.run(argv, env={**os.environ, SALT_ENV: salt.hex()}).returncode
        served += 1
        print(
            f"session {served} {'done' if status == 0 else f'failed (exit {status})'}", flush=True
        )
    return 0


def run_model_party(job_dir: str) -> int:
    """Party 1: shares the weights of the job's nodes and writes the revealed counts."""
    from . import mpc

    job_path = Path(job_dir)
    job = json.loads((job_path / "job.json").read_text())
    models = []
    for node in job["nodes"]:
        spec = parse_spec(node["spec"])
        state = weights_io.load(
            (job_path / node["weights"]).read_bytes(), spec, f"node {node['id']}"
        )
        models.append((int(node["id"]), spec, state))
    mpc.join(job["address"], mpc.MODEL_PARTY)
    try:
        scores, info = mpc.model_party(job["header"], models, job["expect"])
    except mpc.SessionRefused as exc:
        raise UserError(f"the validator refused the session: {exc}") from None
    finally:
        mpc.leave()
    atomic_write_json(
        job_path / "result.json",
        {
            "rows": info["rows"],
            "share_rows_s": info["share_rows_s"],
            "correct": {str(s.node_id): s.correct for s in scores},
            "seconds": {str(s.node_id): s.seconds for s in scores},
        },
    )
    return 0
