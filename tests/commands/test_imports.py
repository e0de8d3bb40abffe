"""Reading commands start fast: they import neither torch nor CrypTen (`make bench-cli` times
them; torch alone took most of `task show`'s 10 s on a loaded machine)."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("torch", "crypten", "pandas")


@pytest.mark.parametrize(
    "modules",
    [
        "bountytree.cli",
        "bountytree.commands.task, bountytree.market.render, bountytree.market.actions",
        "bountytree.commands.ipfs, bountytree.storage.connect",
    ],
)
def test_reading_the_market_imports_no_heavy_library(modules):
    probe = (
        f"import sys; import {modules}; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", out.stdout
