"""Cryptographic randomness for CrypTen.

CrypTen draws every mask, share and triple from a torch.Generator: a Mersenne Twister that
torch seeds from the low 32 bits of its seed, and whose whole state anyone recovers from 624 of
its outputs. Both are fatal here. The oracle's model party knows the weights it shares, so each
opened ε = weights − a hands it the validator's mask a, drawn from the validator's own generator:
from those it would predict the masks of the rows. A custodian receives the dealer's answer,
computed from the other custodian's generator, and could search its 2^32 seeds (found by the
attacker review of the links). So every generator CrypTen uses in a session is replaced by a
`Stream`: a ChaCha20 keystream under a 256-bit key from the operating system's generator (OpenSSL
through the `cryptography` package), shared over the session's links where CrypTen shares a seed
(the two computing parties' pairwise and global generators, each party's generator with the
dealer), and CrypTen's two drawing functions take their values from it.
"""

from __future__ import annotations

import math
import os
from typing import Any

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from .crypten_import import crypten, torch

KEY_BYTES = 32
CPU = torch.device("cpu")

# the modules that imported CrypTen's drawing functions by name
_USERS = (
    "crypten.common.rng",
    "crypten.mpc.primitives.arithmetic",
    "crypten.mpc.primitives.binary",
    "crypten.mpc.provider.tfp_provider",
    "crypten.mpc.provider.ttp_provider",
)


class Stream:
    """A ChaCha20 keystream under `key`, read as uniform int64 ring elements. Two parties with
    the same key draw the same values in the same order, as with a shared torch.Generator."""

    device = CPU

    def __init__(self, key: bytes):
        if len(key) != KEY_BYTES:
            raise ValueError(f"a stream key is {KEY_BYTES} bytes")
        cipher = Cipher(algorithms.ChaCha20(key, b"\0" * 16), mode=None)
        self._keystream = cipher.encryptor()

    def ring(self, size: Any) -> torch.Tensor:
        shape = torch.Size([size]) if isinstance(size, int) else torch.Size(size)
        if math.prod(shape) == 0:
            return torch.empty(shape, dtype=torch.int64)
        raw = self._keystream.update(bytes(8 * math.prod(shape)))
        return torch.frombuffer(bytearray(raw), dtype=torch.int64).reshape(shape)


def new_key() -> bytes:
    return os.urandom(KEY_BYTES)


def _stream(generator: Stream | None, kwargs: dict[str, Any]) -> Stream:
    if generator is None:  # CrypTen's default: this party's own generator
        generator = crypten.generators["local"][CPU]
    if not isinstance(generator, Stream):
        raise RuntimeError("a CrypTen generator that is not a cryptographic stream")
    if kwargs.get("device") not in (None, "cpu", CPU):
        raise RuntimeError("sessions run on the CPU only")
    return generator


def generate_random_ring_element(size, ring_size=2**64, generator=None, **kwargs):
    """CrypTen's `crypten.common.rng.generate_random_ring_element`, from a Stream."""
    if ring_size != 2**64:
        raise RuntimeError("only the ring Z/2^64 is drawn")
    return _stream(generator, kwargs).ring(size)


def generate_kbit_random_tensor(size, bitlength=None, generator=None, **kwargs):
    """CrypTen's `crypten.common.rng.generate_kbit_random_tensor`: uniform in [0, 2^bitlength),
    the low bits of uniform ring elements."""
    values = _stream(generator, kwargs).ring(size)
    if bitlength is None or bitlength >= 64:
        return values
    return values & ((1 << bitlength) - 1)


def install() -> None:
    """Makes CrypTen draw from Streams (before crypten.init)."""
    import importlib

    for name in _USERS:
        module = importlib.import_module(name)
        for function in (generate_random_ring_element, generate_kbit_random_tensor):
            setattr(module, function.__name__, function)


def share_keys(rank: int) -> None:
    """Replaces the generators crypten.init set up on a computing party (after it) with Streams:
    a fresh local one, one shared with the next party and one with the previous (keys sent over
    the links, where CrypTen sends its seeds), and a global one from party 0."""
    comm = crypten.comm.get()
    parties = comm.get_world_size()
    nxt, prev = (rank + 1) % parties, (rank - 1) % parties
    mine = new_key()
    comm.send(torch.frombuffer(bytearray(mine), dtype=torch.uint8), nxt)
    theirs = bytes(comm.recv(torch.empty(KEY_BYTES, dtype=torch.uint8), prev).numpy())
    everyone = torch.frombuffer(bytearray(new_key() if rank == 0 else KEY_BYTES), dtype=torch.uint8)
    everyone = comm.broadcast(everyone, 0)  # party 0's key
    keys = {"local": new_key(), "next": mine, "prev": theirs, "global": bytes(everyone.numpy())}
    for kind, key in keys.items():
        crypten.generators[kind] = {CPU: Stream(key)}


def send_key(dst: int) -> Stream:
    """A fresh key sent to `dst` over its link; the Stream it keys."""
    key = new_key()
    crypten.comm.get().send(torch.frombuffer(bytearray(key), dtype=torch.uint8), dst)
    return Stream(key)


def receive_key(src: int) -> Stream:
    """The Stream keyed by what `src` sent over its link."""
    got = crypten.comm.get().recv(torch.empty(KEY_BYTES, dtype=torch.uint8), src)
    return Stream(bytes(got.numpy()))
