"""CrypTen's fixed-point encoding, as far as the rest of the core needs to know it.

A value v is the 64-bit integer v · 2^16. A product of two encoded values carries 2^32 before
it is truncated back, so anything a multiplication produces must stay well below 2^31 in
magnitude, or it wraps around the ring. SAFE_LIMIT is what the bound (`bounds.py`) allows any
value of a model, input included, and what a task's feature ranges may span.
"""

from __future__ import annotations

FRACTION_BITS = 16
# 2^20: 2^11 below the 2^31 at which a product wraps the ring; a value this large is truncated
# wrongly once in 2^12. The examples' worst-case bounds are a few hundred (inputs in [0, 1]).
SAFE_LIMIT = float(2**20)
