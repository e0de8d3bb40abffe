"""The sponsor's side of a task: the validation file, kept on this machine only.

`bountytree task create` copies the file here (owner-only permissions) under the task's chain
and id with a fresh 32-byte salt, and SHA-256(salt ‖ cid) is the commitment the task records,
where `cid` is the 32-byte SHA-256 digest inside the file's CIDv0 (as `ipfs add` would name it;
computed here, nothing is published): without the salt, a guessed file cannot be confirmed
against the chain, and after finalize the sponsor can open the commitment on-chain
(`bountytree audit publish`): the contract checks SHA-256(salt ‖ cid) itself and anyone can
fetch the file by that CID. The oracle's validator party reads the file and salt from here when
it runs on the same machine, and the test part (`task-N-test.npz`) too. Nothing in this folder
is uploaded until the sponsor publishes it.

The validator's link keys (`link-keys/<public key>.key`, a fresh one per task) are kept here
too: each task description names its key's public half (`validator_key`), and the oracle's model
party talks only to a validator that proves it, so whoever else answers at the validator's
address cannot pose as the sponsor's validator and feed the oracle counts of its own. Back this
folder up: a task whose key is lost cannot be scored.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
from pathlib import Path

from bountytree.errors import UserError
from bountytree.files import atomic_write
from bountytree.private.sealing import new_private_key, public_key, write_private_key
from bountytree.storage.unixfs import build_file, read_chunks

SALT_BYTES = 32


def file_digest(path: str | Path) -> bytes:
    """The 32-byte digest inside the file's CIDv0, as the store would name it (kubo's layout),
    computed without writing a block anywhere."""
    with open(path, "rb") as f:
        return build_file(read_chunks(f), lambda digest, block: None).digest


def data_digest(data: bytes) -> bytes:
    """file_digest of bytes in memory (what an auditor fetched)."""
    return build_file(read_chunks(io.BytesIO(data)), lambda digest, block: None).digest


def opening(salt: bytes, cid_digest: bytes) -> bytes:
    """SHA-256(salt ‖ cid): the commitment a salt and a file's CID digest open."""
    return hashlib.sha256(bytes(salt) + bytes(cid_digest)).digest()


def commitment(path: str | Path, salt: bytes) -> bytes:
    """SHA-256(salt ‖ cid of the file): what a task records of its validation file."""
    return opening(salt, file_digest(path))


def validator_folder(home: Path, chain_id: int) -> Path:
    """The sponsor's private folder for one chain (owner-only): validation files, salts, the
    validator's session log."""
    folder = Path(home) / "validator" / str(chain_id)
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(Path(home) / "validator", 0o700)
    return folder


def validator_key_path(home: Path, chain_id: int, public_hex: str) -> Path:
    """Where `task create` kept the validator link key whose public half is `public_hex`."""
    return Path(home) / "validator" / str(chain_id) / "link-keys" / f"{public_hex}.key"


def new_validator_key(home: Path, chain_id: int) -> str:
    """A fresh validator link key for one task, kept here under its public half (hex), which
    the task description names: copying one task's key to a validator host gives it no other."""
    private = new_private_key()
    public_hex = public_key(private).hex()
    path = validator_key_path(home, chain_id, public_hex)
    validator_folder(home, chain_id)
    path.parent.mkdir(mode=0o700, exist_ok=True)
    write_private_key(path, private)
    return public_hex


def _salt_path(home: Path, chain_id: int, task_id: int) -> Path:
    return Path(home) / "validator" / str(chain_id) / "salts" / f"task-{task_id}"


def register(home: Path, chain_id: int, task_id: int, source: str | Path, salt: bytes) -> Path:
    """Keeps a private copy of the validation file, and its salt, for the task's validator party."""
    target = validator_folder(home, chain_id) / f"task-{task_id}{Path(source).suffix or '.csv'}"
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    shutil.copyfile(source, tmp)
    os.chmod(tmp, 0o600)
    os.replace(tmp, target)
    salt_file = _salt_path(home, chain_id, task_id)
    salt_file.parent.mkdir(mode=0o700, exist_ok=True)
    atomic_write(salt_file, salt.hex().encode())
    os.chmod(salt_file, 0o600)
    return target


def registered_salt(home: Path, chain_id: int, task_id: int) -> bytes | None:
    """The salt `register` kept for a task, or None."""
    try:
        return bytes.fromhex(_salt_path(home, chain_id, task_id).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def registered(home: Path, chain_id: int, task_id: int) -> Path | None:
    folder = Path(home) / "validator" / str(chain_id)
    matches = sorted(folder.glob(f"task-{task_id}.*")) if folder.is_dir() else []
    return matches[0] if matches else None


def kept_test_name(task_id: int) -> str:
    return f"task-{task_id}-test.npz"


def registered_test(home: Path, chain_id: int, task_id: int) -> Path | None:
    """The test part `task create --split` kept for a task, or None."""
    path = Path(home) / "validator" / str(chain_id) / kept_test_name(task_id)
    return path if path.is_file() else None


def check_commitment(path: str | Path, salt: bytes | None, onchain: bytes) -> bytes:
    """Refuses a validation file (with its salt) that does not open the task's on-chain commitment;
    returns the salt that opens it."""
    if salt is None:
        raise UserError(
            f"{path}: no salt for this task's validation file (it is kept beside the file "
            "`bountytree task create` registered); refusing to use it"
        )
    digest = commitment(path, salt)
    if digest != bytes(onchain):
        raise UserError(
            f"{path}: SHA-256(salt ‖ cid) {digest.hex()[:16]}… differs from the task's commitment "
            f"{bytes(onchain).hex()[:16]}…; refusing to use it"
        )
    return salt


def save_private(home: Path, chain_id: int, name: str, data: bytes) -> Path:
    """A file that stays on the sponsor's machine (split parts of the sponsor's data)."""
    target = validator_folder(home, chain_id) / name
    atomic_write(target, data)
    os.chmod(target, 0o600)
    return target
