"""The parties' tasks of tests/mpc/test_private.py (module-level: spawned processes import them)."""

from __future__ import annotations

from bountytree.models.spec import parse_spec
from bountytree.private.shares import Share


def score(rank, spec_json, weights, rows_x, rows_y, best, margin, parent):
    from bountytree.mpc import private

    spec = parse_spec(spec_json)
    count = private.shared_count(spec, Share(rank, weights), private.SharedRows(rows_x, rows_y))
    step = private.ladder(count, len(rows_x), best, margin, parent)
    return {"recorded": step.recorded_bps, "best": step.best}


def ladder_cases(rank, counts, bests, rows, margin, parent):
    """The Ladder on each (count, best) pair of shares, counting CrypTen's truncations (every
    two-party truncation goes through ArithmeticSharedTensor.div_): the records, and how many
    truncations the Ladder made."""
    import numpy as np
    from crypten.mpc.primitives.arithmetic import ArithmeticSharedTensor

    from bountytree.mpc import private

    truncations = [0]
    divide = ArithmeticSharedTensor.div_

    def counted(self, y):
        truncations[0] += 1
        return divide(self, y)

    records = []
    for count, best in zip(counts, bests, strict=True):
        shared_count = private.shared(count)
        ArithmeticSharedTensor.div_ = counted
        try:
            records.append(private.ladder(shared_count, rows, best, margin, parent).recorded_bps)
        finally:
            ArithmeticSharedTensor.div_ = divide
    return {"records": np.array(records, dtype=np.int64), "truncations": truncations[0]}


def train(rank, spec_json, weights, rows_x, rows_y):
    from bountytree.mpc import private

    spec = parse_spec(spec_json)
    child = private.train(spec, Share(rank, weights), private.SharedRows(rows_x, rows_y))
    return {f"w:{k}": v for k, v in child.tensors.items()}


def train_twice(rank, spec_json, weights, rows_x, rows_y):
    """Two children of one parent's share: they must be the same child."""
    from bountytree.mpc import private

    spec = parse_spec(spec_json)
    rows = private.SharedRows(rows_x, rows_y)
    parent = Share(rank, weights)
    first = private.train(spec, parent, rows)
    second = private.train(spec, parent, rows)
    return {
        **{f"w:{k}": v for k, v in first.tensors.items()},
        **{f"again:{k}": v for k, v in second.tensors.items()},
    }


def square(rank, share):
    """Each party's share of x, x·x revealed; returns what this party held, so the test can look
    for it on the wire."""
    from bountytree.mpc import private

    x = private.shared(share)
    y = x * x
    return {"input": share, "output": private.my_share(y), "revealed": y.get_plain_text().numpy()}


def linked_party(rank, address, identity, work, rendezvous_s, share, task=square, delay_s=0.0):
    """One party of a three-party session over links: custodians square `share`, the dealer
    deals. Writes rank{r}.safetensors, or rank{r}.error with the one line it failed with."""
    import time
    from pathlib import Path

    import numpy as np
    from safetensors.numpy import save

    from bountytree.files import atomic_write
    from bountytree.mpc import dealer, session

    out = Path(work)
    time.sleep(delay_s)  # a party that comes late
    try:
        session.join(address, rank, identity, dealer=True, timeout_s=30, rendezvous_s=rendezvous_s)
        if rank == session.DEALER_RANK:
            result = {"answered": np.array([dealer.serve()])}
        else:
            result = task(rank, share)
        session.leave()
        atomic_write(out / f"rank{rank}.safetensors", save(result))
    except Exception as exc:
        atomic_write(out / f"rank{rank}.error", f"{type(exc).__name__}: {exc}".encode())


def draws(rank, share):
    """x·x and a comparison (triples, wraps and bits from the dealer), counting every draw from
    torch's own generators meanwhile; and what CrypTen's generators are."""
    import numpy as np
    import torch

    from bountytree.mpc import private
    from bountytree.mpc.crypten_import import crypten

    calls = {"n": 0}
    originals = {name: getattr(torch, name) for name in ("randint", "rand", "randn")}

    def counted(name):
        def call(*args, **kwargs):
            calls["n"] += 1
            return originals[name](*args, **kwargs)

        return call

    for name in originals:
        setattr(torch, name, counted(name))
    try:
        x = private.shared(share)
        (x * x).get_plain_text()
        (x > 0).get_plain_text()
    finally:
        for name, original in originals.items():
            setattr(torch, name, original)
    from crypten.mpc.provider.ttp_provider import TTPClient

    kinds = {type(g[torch.device("cpu")]).__name__ for g in crypten.generators.values()}
    kinds.add(type(TTPClient.get().generator).__name__)
    return {"torch_draws": np.array([calls["n"]]), "kinds": np.array([sorted(kinds) == ["Stream"]])}


def asks_for_wraps(rank, share):
    """Party 0 asks the dealer for `wraps` of its own choosing while party 1 asks for a triple:
    what the attacker review found would hand party 0 party 1's masks."""
    import torch

    from bountytree.mpc import private

    if rank == 0:
        from crypten.mpc.provider.ttp_provider import TTPClient

        answer = TTPClient.get().ttp_request("wraps", None, torch.Size([len(share)]))
        return {"answer": answer.numpy()}
    x = private.shared(share)
    return {"product": private.my_share(x * x)}


def logits(rank, spec_json, state, rows_x):
    """The secure evaluation's logits of `state` (party 0's weights and rows), revealed: what
    the oracle's session computes before it counts."""
    import torch

    from bountytree.mpc.crypten_import import crypten
    from bountytree.mpc.models import build_crypten, crypten_state

    spec = parse_spec(spec_json)
    model = build_crypten(spec)
    weights = {k: torch.from_numpy(v) for k, v in state.items()}
    model.load_state_dict(crypten_state(spec, weights), strict=False)
    model.encrypt(src=0)
    model.eval()
    x = crypten.cryptensor(torch.from_numpy(rows_x), src=0)
    return {"logits": model(x).get_plain_text().numpy()}
