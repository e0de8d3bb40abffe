"""What the oracle checks before a node may be scored, and the reason code when it may not.

A node's files come from strangers, so each check is about safety as much as shape: the spec
must validate (never executed), the weights must be safetensors (never unpickled), fit the
spec exactly, be finite and under the size limit. A node whose files have not reached the store
is given `fetch_timeout` seconds from its submission before it is rejected as missing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bountytree import weights as weights_io
from bountytree.flops import ops_bound
from bountytree.market import REASON_CODES, Market, NodeView
from bountytree.spec import MAX_SPEC_BYTES, ModelSpec, SpecError, load_spec
from bountytree.store import BlockMissing, StoreError, StoreUnavailable, get_bytes


@dataclass
class Ready:
    node: NodeView
    spec: ModelSpec
    weights: bytes
    verified_ops: int


@dataclass
class Reject:
    node: NodeView
    reason: str
    detail: str

    @property
    def code(self) -> int:
        return REASON_CODES[self.reason]


@dataclass
class Wait:
    node: NodeView
    detail: str


def _fetch(market: Market, cid: str, limit: int, node: NodeView, age: Callable[[], float], fetch_timeout: float,
           what: str) -> bytes | Reject | Wait:
    try:
        return get_bytes(market.store, cid, limit)
    except BlockMissing:
        age_s = age()
        if age_s < fetch_timeout:
            return Wait(node, f"{what} {cid} not in the store yet ({age_s:.0f}s of {fetch_timeout:.0f}s)")
        return Reject(node, "missing", f"{what} {cid} never reached the store")
    except StoreUnavailable:
        raise  # the store is down, not the node's fault: the round fails and is retried
    except StoreError as exc:
        text = str(exc)
        reason = "too-large" if "larger than" in text else "corrupt" if "corrupted" in text else "missing"
        return Reject(node, reason, f"{what}: {text}")


def check(market: Market, node: NodeView, arch_spec: ModelSpec | None, age: Callable[[], float],
          fetch_timeout: float) -> Ready | Reject | Wait:
    """Checks one pending node. `arch_spec` is the architecture's checked spec for trained nodes;
    `age` gives the node's age in chain seconds, asked only when a file is missing."""
    if node.kind == "architecture":
        raw = _fetch(market, node.cid, MAX_SPEC_BYTES, node, age, fetch_timeout, "spec")
        if not isinstance(raw, bytes):
            return raw
        try:
            spec = load_spec(raw, f"spec {node.cid}")
        except SpecError as exc:
            return Reject(node, "invalid-spec", str(exc))
        cid = spec.init_weights
        if not cid:
            return Reject(node, "invalid-spec", "spec names no init_weights")
        ops = 0
    else:
        if arch_spec is None:
            return Reject(node, "invalid-spec", "its architecture's spec is invalid")
        spec, cid = arch_spec, node.cid
        ops = min(node.ops, ops_bound(spec))
    raw = _fetch(market, cid, weights_io.max_bytes(spec), node, age, fetch_timeout, "weights")
    if not isinstance(raw, bytes):
        return raw
    try:
        weights_io.load(raw, spec, f"weights {cid}")
    except weights_io.WeightsError as exc:
        text = str(exc)
        if "not a safetensors" in text:
            reason = "not-safetensors"
        elif "NaN" in text or "negative variances" in text:
            reason = "not-finite"
        elif "bytes, at most" in text:
            reason = "too-large"
        else:
            reason = "shape-mismatch"
        return Reject(node, reason, text)
    return Ready(node, spec, raw, ops)
