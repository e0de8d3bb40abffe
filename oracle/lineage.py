"""The lineage check: a trained node must come from the parent it declares.

Weights are public once a node is revealed, so anyone can take the best node's weights, add a
little noise and submit them as a child of an earlier node (the architecture, say), booking the
original's whole improvement as their own gain. Training from a parent moves the weights away
from that parent along a path of its own; a copy instead stays next to the node it was copied
from. So a trained node is rejected as a copy (`Reason.COPY`) when

- it equals its declared parent (it adds nothing), or
- some earlier node of the same architecture (lower id, its own ancestors included) is closer
  to it than COPY_RATIO × its distance to the declared parent.

Only earlier nodes count: a copy can only be revealed after what it copies (commit-reveal hides
a CID until its reveal), and an original must never be rejected because a later copy is close.

COPY_RATIO = 0.5, from `make bench-lineage` on the digits examples (docs/design.md gives the
table): honest children of one parent trained on independent shards of one distribution were
never closer to each other than 0.6 × their distance to their parent (their updates are
correlated, so this is the honest floor), a grandchild was 1.01 × further from any other node
than from its parent, while a copy has to add noise of about 0.6 × the original's own update to
pass, which cost it 2 to 5 points of accuracy on the MLP and 16 to 20 on the CNN: such a copy
scores below what it copied and cannot take the path by itself. What the check cannot catch is
said in the docs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

COPY_RATIO = 0.5


@dataclass(frozen=True)
class Verdict:
    is_copy: bool
    detail: str


def check_lineage(
    node_id: int, weights: torch.Tensor, parent_id: int, earlier: dict[int, torch.Tensor]
) -> Verdict:
    """`weights` flattened (float64); `earlier` maps the ids of earlier nodes of the same
    architecture, the declared parent among them, to their flattened weights."""
    to_parent = float(torch.linalg.vector_norm(weights - earlier[parent_id]))
    if to_parent == 0.0:
        return Verdict(True, f"node {node_id} is identical to its parent {parent_id}")
    for other_id, other in earlier.items():
        if other_id == parent_id or other_id >= node_id:
            continue
        distance = float(torch.linalg.vector_norm(weights - other))
        if distance < COPY_RATIO * to_parent:
            return Verdict(
                True,
                f"node {node_id} is {distance / to_parent:.3f}× as far from node {other_id} as "
                f"from its declared parent {parent_id} (a copy below {COPY_RATIO})",
            )
    return Verdict(False, "")
