"""Counting a model's correct rows on secret-shared rows: what both the oracle's session and the
custodians' scoring compute, up to the moment a count is revealed (each reveals its own way).

Rows are shared in chunks of `chunk_rows` rows (bountytree/models/counting.py, which counts in
plaintext the same way), so a wide model holds fewer rows at once instead of exhausting memory.
Argmax ties go to the lowest class, as in PyTorch: the public offsets of `fixedpoint.tie_offsets`
are added to the logits, as the delivered model adds them.
"""

from __future__ import annotations

from bountytree.models.counting import chunk_rows
from bountytree.models.fixedpoint import tie_offsets
from bountytree.models.spec import ModelSpec

from .crypten_import import crypten

__all__ = ["chunk_rows", "shared_hits"]


def shared_hits(model, spec: ModelSpec, chunks):
    """The shared number of rows the model classifies correctly, over (rows, one-hot labels)
    chunks of shared tensors; nothing is revealed."""
    tie_bias = tie_offsets(spec.num_classes)
    total = None
    with crypten.no_grad():
        for x, onehot in chunks:
            logits = model(x.reshape(x.size(0), *spec.input_shape)) + tie_bias
            hits = (logits.argmax(dim=1, one_hot=True) * onehot).sum()
            total = hits if total is None else total + hits
    return total
