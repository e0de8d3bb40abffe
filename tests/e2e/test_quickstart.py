"""The README's "Bring your own data" quickstart, run as written: every command between its
markers, in order, in a fresh folder, against the session's chain (the quickstart's
`up --chain-only`). Only the task id is substituted (the README assumes a fresh chain's first
task). If the README changes, this runs the new steps."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from bountytree.config import ROOT

pytestmark = pytest.mark.mpc


def _steps() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    block = readme.split("<!-- quickstart -->", 1)[1].split("<!-- /quickstart -->", 1)[0]
    lines = block.strip().removeprefix("```sh").removesuffix("```").strip().splitlines()
    return [line for line in lines if line.strip() and not line.lstrip().startswith("#")]


def test_the_quickstart_runs_as_written(settings, deployed, tmp_path):
    steps = _steps()
    assert len(steps) >= 7 and any("task create" in s for s in steps)
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    env = {
        **os.environ,
        "BOUNTYTREE_RPC": settings.rpc,
        "BOUNTYTREE_STORE": settings.store,
        "BOUNTYTREE_HOME": str(settings.home),
        "BOUNTYTREE_DEPLOYMENTS": str(settings.deployments),
    }
    env.pop("BOUNTYTREE_ACCOUNT", None)  # every step names its account
    bindir = Path(sys.executable).parent
    task_id = None
    outputs = []
    for step in steps:
        argv = shlex.split(step)
        argv[0] = str(bindir / Path(argv[0]).name)
        if task_id is not None:  # the README's task 1 is this chain's task_id
            argv = [
                str(task_id) if a == "1" and i > 0 and argv[i - 1] in ("--task", "show") else a
                for i, a in enumerate(argv)
            ]
        done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, timeout=600)
        out = done.stdout.decode()
        assert done.returncode == 0, (step, out, done.stderr.decode()[-2000:])
        outputs.append(out)
        if task_id is None and (found := re.search(r"^task (\d+) created", out, re.M)):
            task_id = int(found.group(1))
    assert task_id is not None
    shown = next(o for s, o in zip(steps, outputs, strict=True) if "task show" in s)
    assert "winner node" in shown, shown
    assert (tmp_path / "winner" / "README.md").exists()
    assert (tmp_path / "winner" / "model.safetensors").exists()
