"""Sealing a file to one X25519 public key (an ECIES "sealed box").

A sealed file is MAGIC ‖ the sender's ephemeral public key (32 bytes) ‖ a ChaCha20-Poly1305
nonce (12) ‖ the ciphertext ‖ its tag (16). The key is HKDF-SHA256 of the X25519 agreement
between the ephemeral key and the recipient's key, bound to both public keys. Only the holder of
the recipient's private key opens it, and any change to a byte makes opening fail; the sender
keeps nothing that opens it. pycryptodome, which web3's stack already pins, supplies the cipher
and the key derivation; `cryptography` the X25519 agreement, in OpenSSL's C (pycryptodome's
X25519 is Python arithmetic: 11 ms of CPU per end of a link handshake, 1.1 ms now, under the
GIL, and a flood of handshakes at a party's port turned that into seconds per handshake).

A private key file holds the 32-byte X25519 seed, hex, readable by its owner only; the public
key is 32 bytes, written as 64 hex digits (how a task records the sponsor's key on-chain).
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from Crypto.Cipher import ChaCha20_Poly1305
from Crypto.Hash import SHA256
from Crypto.Protocol.KDF import HKDF
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from bountytree.errors import UserError

MAGIC = b"bountytree-sealed-v1\n"
KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16


class SealError(UserError):
    """A sealed file that does not open with this key (wrong key, damaged or not a sealed file)."""


def new_private_key() -> bytes:
    """A fresh X25519 private key (its 32-byte seed)."""
    return X25519PrivateKey.generate().private_bytes_raw()


def public_key(private: bytes) -> bytes:
    """The 32-byte public key of a private key."""
    return X25519PrivateKey.from_private_bytes(private).public_key().public_bytes_raw()


def agree(private: bytes, public: bytes) -> bytes:
    """The X25519 shared secret of a private key and a peer's public key; ValueError for a
    public key that is not one (not 32 bytes, or a point of small order, whose secret is 0)."""
    return X25519PrivateKey.from_private_bytes(private).exchange(
        X25519PublicKey.from_public_bytes(public)
    )


def _key(shared: bytes, ephemeral: bytes, recipient: bytes, context: bytes) -> bytes:
    info = b"bountytree seal" + ephemeral + recipient + context
    key = HKDF(shared, 32, b"", SHA256, context=info)
    assert isinstance(key, bytes)  # one key asked for, so not a tuple of keys
    return key


def seal(
    data: bytes, recipient: bytes, context: bytes = b"", ephemeral: bytes | None = None
) -> bytes:
    """`data` sealed to the recipient's 32-byte public key. `context` (not stored) binds the
    file to what it is for: it opens only with the same context, so a sealed file copied into
    another task, node or author's submission does not open there. `ephemeral` (32 bytes, kept
    secret until the file may be public) makes the ephemeral key and nonce from it, so the same
    data seals to the same bytes: whoever later learns it can seal again and compare, and open
    the file."""
    if len(recipient) != KEY_BYTES:
        raise UserError(f"a public key is {KEY_BYTES} bytes, this one is {len(recipient)}")
    if ephemeral is None:
        own, nonce = new_private_key(), os.urandom(NONCE_BYTES)
    else:
        own = ephemeral
        nonce = SHA256.new(b"bountytree seal nonce" + ephemeral).digest()[:NONCE_BYTES]
    mine = public_key(own)
    try:
        key = _key(agree(own, recipient), mine, recipient, context)
    except ValueError:
        raise UserError("not an X25519 public key") from None
    cipher = ChaCha20_Poly1305.new(key=key, nonce=nonce)
    cipher.update(MAGIC + mine + context)
    body, tag = cipher.encrypt_and_digest(data)
    return MAGIC + mine + nonce + body + tag


def open_sealed(
    sealed: bytes, private: bytes, what: str = "sealed file", context: bytes = b""
) -> bytes:
    """The data of a sealed file; SealError if it is not one sealed to this key and context, or
    was changed."""
    head = len(MAGIC) + KEY_BYTES + NONCE_BYTES
    if not sealed.startswith(MAGIC) or len(sealed) < head + TAG_BYTES:
        raise SealError(f"{what}: not a sealed file")
    theirs = sealed[len(MAGIC) : len(MAGIC) + KEY_BYTES]
    nonce = sealed[len(MAGIC) + KEY_BYTES : head]
    body, tag = sealed[head:-TAG_BYTES], sealed[-TAG_BYTES:]
    try:
        key = _key(agree(private, theirs), theirs, public_key(private), context)
        cipher = ChaCha20_Poly1305.new(key=key, nonce=nonce)
        cipher.update(MAGIC + theirs + context)
        return bytes(cipher.decrypt_and_verify(body, tag))
    except ValueError:
        raise SealError(
            f"{what}: does not open with this key (another key's, or changed)"
        ) from None


def write_private_key(path: Path, private: bytes | None = None) -> bytes:
    """Creates a private key file (owner-only, never overwritten) holding `private` (a fresh key
    by default); returns the public key. The file appears whole or not at all: written under a
    temporary name, then linked to its own (a reader never sees it empty, and a crash leaves
    no empty key file behind)."""
    path = Path(path)
    private = new_private_key() if private is None else private
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    try:  # O_EXCL, no link followed: the temporary file is this call's own
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise UserError(f"{path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(private.hex().encode() + b"\n")
            f.flush()
            os.fsync(f.fileno())
        os.link(tmp, path)  # never replaces an existing file, or one created meanwhile
    except FileExistsError:
        raise UserError(f"{path} exists; a key file is never overwritten") from None
    except OSError as exc:
        raise UserError(f"{path}: {exc.strerror}") from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    return public_key(private)


def read_private_key(path: Path) -> bytes:
    """A private key file's key; refuses one other users can read, or that is not a key."""
    path = Path(path)
    try:
        info = path.stat()
        # a regular, small, owner-only file before a byte is read: a device or a pipe named
        # here (the app's form takes a path) would never end
        if not stat.S_ISREG(info.st_mode) or info.st_size > 1024:
            raise UserError(f"{path}: not a private key file (64 hex digits)")
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise UserError(f"{path}: a private key must be readable by its owner only (chmod 600)")
        text = path.read_text().strip()
    except OSError as exc:
        raise UserError(f"{path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        text = ""
    try:
        private = bytes.fromhex(text)
    except ValueError:
        private = b""
    if len(private) != KEY_BYTES:
        raise UserError(f"{path}: not a private key file (64 hex digits)")
    return private
