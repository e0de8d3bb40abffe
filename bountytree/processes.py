"""Local processes the commands start (a chain, an IPFS daemon, a role): a free port to give
one, waiting until it listens, and stopping it. Shared by the chain and the store, so neither
imports the other for it."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Callable
from typing import cast

from bountytree.errors import UserError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_port(
    port: int,
    proc: subprocess.Popen[bytes] | None = None,
    timeout: float = 60,
    name: str = "the chain",
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise UserError(
                f"{name} exited with status {proc.returncode} before listening on {port}"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise UserError(f"{name} did not listen on port {port} within {timeout:.0f} s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stops a local process, a chain or an IPFS daemon: SIGTERM first (anvil dumps its state on
    a clean exit; a chain's block clock ends with it), SIGKILL after 10 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def die_with_parent() -> Callable[[], None]:
    """A `preexec_fn` for a child that must not outlive the process that starts it, however
    that process ends (SIGKILL included): Linux delivers SIGTERM to the child when its parent
    dies; a parent already gone by then makes the child exit at once. Elsewhere the hook does
    nothing (the parent's own shutdown still stops its children). Call it in the parent, just
    before starting the child: the hook only calls a C function resolved when this module was
    imported and compares pids, nothing to import or lock between fork and exec."""
    parent = os.getpid()

    def hook() -> None:
        if _PRCTL is not None:
            _PRCTL(1, 15)  # PR_SET_PDEATHSIG, SIGTERM
            if os.getppid() != parent:  # the parent died before the signal was armed
                os._exit(1)

    return hook


def _prctl() -> Callable[[int, int], int] | None:
    try:
        import ctypes

        return cast(Callable[[int, int], int], ctypes.CDLL(None, use_errno=True).prctl)
    except (OSError, AttributeError):
        return None


_PRCTL = _prctl()
