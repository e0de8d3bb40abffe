"""Private models: a node's weights held as two additive secret shares and nothing else.

`ring` encodes weights in fixed point and splits them into two shares mod 2^64 (either share
alone is uniformly random); `shares` writes one share as a file (safetensors of int64 tensors)
and commits to it; `sealing` seals a file to one X25519 public key (how a custodian hands its
share to the sponsor, and how anyone sends a custodian its share of their rows). Pure NumPy and
pycryptodome: the sponsor's machine opens a winner without CrypTen. Imports only the foundation.
"""
