"""Fixed-point values in the ring Z/2^64 and their two additive shares.

A real x is encoded as round(x · 2^16) in int64, CrypTen's own encoding (16 fractional bits,
what its arithmetic shares carry), so a share made here is a share CrypTen computes on. Split
draws the first share uniformly from the operating system's generator and sets the second to
the difference, wrapping mod 2^64: either share alone is a one-time pad of the value and says
nothing about it; their sum decodes it to within 2^-17. Given a 32-byte seed, the first share is
ChaCha20's keystream under it instead: shares anyone can make again once the seed is made
public (the sponsor's validation shares, checked by the audit: bountytree/private/rows.py).
"""

from __future__ import annotations

import os

import numpy as np
from Crypto.Cipher import ChaCha20

PRECISION_BITS = 16
SCALE = 1 << PRECISION_BITS
# What encoding accepts: |x| · 2^16 must stay far from 2^63 so that sums of products of shared
# values do not wrap (the same bound the oracle's fixed-point analysis keeps).
MAX_ABS = float(1 << 30)


class RingError(ValueError):
    """A value that cannot be encoded (not finite, or too large)."""


def encode(x: np.ndarray) -> np.ndarray:
    """round(x · 2^16) as int64; refuses values that are not finite or beyond MAX_ABS."""
    x = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise RingError("a value is not finite")
    if x.size and float(np.max(np.abs(x))) > MAX_ABS:
        raise RingError(f"a value exceeds {MAX_ABS:g} in absolute value")
    return np.round(x * SCALE).astype(np.int64)


def decode(encoded: np.ndarray) -> np.ndarray:
    """The float32 values an int64 encoding stands for."""
    return (np.asarray(encoded, dtype=np.int64).astype(np.float64) / SCALE).astype(np.float32)


def random_ring(shape: tuple[int, ...], seed: bytes | None = None) -> np.ndarray:
    """Uniform elements of Z/2^64 (as int64) from the operating system's generator, or from
    ChaCha20's keystream under a 32-byte `seed`."""
    count = int(np.prod(shape, dtype=np.int64))
    if seed is None:
        raw = os.urandom(8 * count)
    else:
        raw = ChaCha20.new(key=seed, nonce=bytes(8)).encrypt(bytes(8 * count))
    return np.frombuffer(raw, dtype=np.int64).reshape(shape).copy()


def split(encoded: np.ndarray, seed: bytes | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Two shares of an int64 encoding: a uniform (`random_ring`), and encoded − a (mod 2^64)."""
    encoded = np.asarray(encoded, dtype=np.int64)
    a = random_ring(encoded.shape, seed)
    with np.errstate(over="ignore"):
        return a, encoded - a


def combine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The encoding two shares stand for (a + b mod 2^64)."""
    with np.errstate(over="ignore"):
        return np.asarray(a, dtype=np.int64) + np.asarray(b, dtype=np.int64)


def share_floats(x: np.ndarray, seed: bytes | None = None) -> tuple[np.ndarray, np.ndarray]:
    """encode then split: the two shares of real values."""
    return split(encode(x), seed)
