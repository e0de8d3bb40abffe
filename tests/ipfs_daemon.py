"""A real IPFS daemon for the tests: js-ipfs, offline, its API on 127.0.0.1 on a free port.

`ipfs_daemon` is one fresh daemon per test session (per xdist worker), in its own temporary
repo, stopped at the end; `own_daemon` starts one a test may kill.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from bountytree.processes import free_port
from bountytree.storage import daemon as ipfsd


@contextlib.contextmanager
def own_daemon(folder: Path) -> Iterator[ipfsd.IpfsDaemon]:
    daemon = ipfsd.start(folder / "repo", folder / "daemon.log", port=free_port())
    try:
        yield daemon
    finally:
        ipfsd.stop_daemon(daemon)


@pytest.fixture(scope="session")
def ipfs_daemon(tmp_path_factory) -> Iterator[ipfsd.IpfsDaemon]:
    with own_daemon(tmp_path_factory.mktemp("ipfs")) as daemon:
        yield daemon
