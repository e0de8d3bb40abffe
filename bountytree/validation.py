"""The sponsor's side of a task: the validation file, kept on this machine only.

`bountytree task create` copies the file here (owner-only permissions) under the task's chain
and id, and its SHA-256 is the commitment the task records; the oracle's validator party reads
it from here when it runs on the same machine. Nothing in this folder is ever uploaded.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from .errors import UserError
from .files import atomic_write


def sha256_file(path: str | Path) -> bytes:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.digest()


def _folder(home: Path, chain_id: int) -> Path:
    folder = Path(home) / "validator" / str(chain_id)
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(Path(home) / "validator", 0o700)
    return folder


def register(home: Path, chain_id: int, task_id: int, source: str | Path) -> Path:
    """Keeps a private copy of the validation file for the task's validator party."""
    target = _folder(home, chain_id) / f"task-{task_id}{Path(source).suffix or '.csv'}"
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    shutil.copyfile(source, tmp)
    os.chmod(tmp, 0o600)
    os.replace(tmp, target)
    return target


def registered(home: Path, chain_id: int, task_id: int) -> Path | None:
    folder = Path(home) / "validator" / str(chain_id)
    matches = sorted(folder.glob(f"task-{task_id}.*")) if folder.is_dir() else []
    return matches[0] if matches else None


def check_commitment(path: str | Path, commitment: bytes) -> None:
    """Refuses a validation file whose SHA-256 differs from the task's on-chain commitment."""
    digest = sha256_file(path)
    if digest != bytes(commitment):
        raise UserError(f"{path}: SHA-256 {digest.hex()[:16]}… differs from the task's commitment "
                        f"{bytes(commitment).hex()[:16]}…; refusing to use it")


def save_private(home: Path, chain_id: int, name: str, data: bytes) -> Path:
    """A file that stays on the sponsor's machine (split parts of the sponsor's data)."""
    target = _folder(home, chain_id) / name
    atomic_write(target, data)
    os.chmod(target, 0o600)
    return target
