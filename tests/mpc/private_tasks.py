"""The parties' tasks of tests/mpc/test_private.py (module-level: spawned processes import them)."""

from __future__ import annotations

from bountytree.models.spec import parse_spec
from bountytree.private.shares import Share

# The step timeout of the sessions whose dealer deviates or whose custodians lag. Half of it is
# the custodians' margin for being in step (blame.py); their lags agree within 0.02 s on a
# two-core machine loaded with four busy loops once party 0's first request no longer imports
# torch's meta kernels (dealer.warm_shapes), 4.4 s apart before (and 4 s was the timeout).
STEP_S = 8.0
STALL_S = 3 * STEP_S  # how long a deviating dealer stalls: past both custodians' giving up
BUDGET_S = 3 * STEP_S  # the budget of the sessions made to run over it


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


def linked_party(
    rank, address, identity, work, rendezvous_s, share, task=square, delay_s=0.0, timeout_s=30.0
):
    """One party of a three-party session over links: custodians square `share`, the dealer
    deals (or does `task` too, if the task says it plays the dealer). Writes
    rank{r}.safetensors, or rank{r}.error with the one line it failed with."""
    import time
    from pathlib import Path

    import numpy as np
    from safetensors.numpy import save

    from bountytree.files import atomic_write
    from bountytree.mpc import dealer, session

    out = Path(work)
    time.sleep(delay_s)  # a party that comes late
    if rank == session.DEALER_RANK:
        time.sleep(getattr(task, "dealer_late_s", 0.0))
    plays = getattr(task, "plays_the_dealer", False)
    try:
        try:
            session.join(
                address,
                rank,
                identity,
                dealer=True,
                timeout_s=timeout_s,
                rendezvous_s=rendezvous_s,
                budget_s=getattr(task, "budget_s", None) if rank < session.DEALER_RANK else None,
            )
        except session.LinkError as exc:  # a dealer failing the start: how each custodian sees it
            if not plays or rank == session.DEALER_RANK:
                raise
            failed = session.ending(exc, rank).dealer_at_fault
            atomic_write(
                out / f"rank{rank}.safetensors", save({"dealer_failed": np.array([failed])})
            )
            return
        if rank == session.DEALER_RANK and not plays:
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


def dealer_goes_silent(rank, share):
    """The dealer deals the streams' keys, takes the first request and then says nothing for
    STALL_S; each custodian records how its session ended (`_squared`)."""
    import contextlib
    import time

    import numpy as np

    from bountytree.mpc import dealer, session

    if rank == session.DEALER_RANK:
        dealer.parse_request = lambda message: time.sleep(STALL_S)  # and then its answer is wrong
        with contextlib.suppress(Exception):  # its session ends as it may
            dealer.serve()
        return {"silent": np.array([1])}
    return _squared(rank, share)


def custodian_1_asks_late(rank, share):
    """An honest dealer, and a custodian 1 that sends its first request STEP_S / 2 past the step timeout (a slow or
    stalled machine): the dealer waits on it, and custodian 0 waits on the dealer."""
    import contextlib
    import time

    import numpy as np

    from bountytree.mpc import dealer, session

    if rank == session.DEALER_RANK:
        with contextlib.suppress(Exception):  # its session ends as it may
            dealer.serve()
        return {"served": np.array([1])}
    if rank == 1:
        time.sleep(1.5 * STEP_S)
    return _squared(rank, share)


def custodian_1_asks_a_little_late(rank, share):
    """An honest dealer, and a custodian 1 that sends its first request 0.4 STEP_S late: in step
    for the custodians' rule (within half their timeout)."""
    import time

    if rank == 1:
        time.sleep(0.4 * STEP_S)
    return _squared(rank, share)


def dealer_says_custodian_1_asked_nothing(rank, share):
    """At the first request the dealer ends its link to custodian 0 with a last word of its own
    (blaming custodian 1), and stays."""
    import time

    from bountytree.mpc import session
    from bountytree.mpc.crypten_import import crypten

    if rank != session.DEALER_RANK:
        return _squared(rank, share)

    def blame_the_other(message):
        crypten.comm.get().links[0].end("custodian 1 asked nothing")
        time.sleep(STALL_S)

    return _deal(blame_the_other)


def dealer_resets_its_links(rank, share):
    """At the first request the dealer resets both links (no silence: every send to it fails)."""
    import socket
    import struct
    import time

    from bountytree.mpc import session
    from bountytree.mpc.crypten_import import crypten

    if rank != session.DEALER_RANK:
        return _squared(rank, share)

    def reset(message):
        for link in crypten.comm.get().links.values():
            link.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            link.sock.close()
        time.sleep(STALL_S)

    return _deal(reset)


def dealer_cuts_custodian_1_and_goes_silent(rank, share):
    """At the first request the dealer resets its link to custodian 1 alone (whose next send
    fails at once) and says nothing more to custodian 0 (which waits the whole timeout): the
    two fail a timeout apart (second attacker review)."""
    import socket
    import struct
    import time

    from bountytree.mpc import session
    from bountytree.mpc.crypten_import import crypten

    if rank != session.DEALER_RANK:
        return _squared(rank, share, times=2)

    def cut_one(message):
        sock = crypten.comm.get().links[1].sock
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
        time.sleep(STALL_S)

    return _deal(cut_one)


def custodians_pause_between_requests(rank, share):
    """An honest dealer; both custodians compute for 1.5 STEP_S (past its timeout, STEP_S) between two
    multiplications, and it gives up waiting for the next request."""
    from bountytree.mpc import session

    if rank == session.DEALER_RANK:
        return _deal(None)
    return _squared(rank, share, times=2, pause_s=1.5 * STEP_S)


def dealer_holds_custodian_1_s_barrier(rank, share):
    """The dealer sends both keys and custodian 0 its barrier message, never custodian 1's, and
    stays."""
    import time

    from bountytree.mpc import dealer, randomness, session
    from bountytree.mpc.crypten_import import crypten

    if rank != session.DEALER_RANK:
        return _squared(rank, share)

    def keys(server):
        comm = crypten.comm.get()
        server.generators = [randomness.send_key(r) for r in comm.main_group]
        server.generators_cuda = [None for _ in comm.main_group]
        comm.links[0].send(b"")
        time.sleep(STALL_S)

    dealer._server_generators = keys
    return _deal(None)


def dealer_keys_custodian_1_alone(rank, share):
    """The dealer sends custodian 1 its stream's key, never custodian 0's, and stays."""
    import time

    from bountytree.mpc import dealer, randomness, session

    if rank != session.DEALER_RANK:
        return _squared(rank, share)

    def keys(server):
        randomness.send_key(1)
        time.sleep(STALL_S)

    dealer._server_generators = keys
    return _deal(None)


def dealer_answers_just_inside_the_timeout(rank, share):
    """The dealer answers every request 0.6 STEP_S late, inside the custodians' step timeout,
    and the custodians square ten times: the session runs over its budget (BUDGET_S)."""
    return _slow_dealer(rank, share, answer_s=0.6 * STEP_S, pause_s=0.0)


def dealer_answers_twice_as_slowly(rank, share):
    """Both custodians compute for 0.25 STEP_S before each of ten multiplications, and the
    dealer answers each 0.5 STEP_S after both asked: the session runs over its budget (its
    own, 5 STEP_S, so that the first request's lack of a pause weighs little either way)."""
    return _slow_dealer(rank, share, answer_s=0.5 * STEP_S, pause_s=0.25 * STEP_S)


def _slow_dealer(rank, share, *, answer_s, pause_s):
    """Custodians that square ten times, `pause_s` apart, and a dealer that answers each
    request `answer_s` after both asked."""
    import time

    from bountytree.mpc import dealer, session

    if rank != session.DEALER_RANK:
        return _squared(rank, share, times=10, pause_s=pause_s)
    parse = dealer.parse_request

    def slowly(message):
        time.sleep(answer_s)
        return parse(message)

    return _deal(slowly)


def dealer_stalls_at_the_keys(rank, share):
    """The dealer holds the streams' keys and then its barrier message 0.8 STEP_S each, inside
    the custodians' step timeout, and answers at once afterwards; both custodians compute for
    0.25 STEP_S between ten multiplications: the session runs over its budget (its own,
    2.5 STEP_S)."""
    import time

    from bountytree.mpc import dealer, randomness, session
    from bountytree.mpc.crypten_import import crypten

    if rank != session.DEALER_RANK:
        return _squared(rank, share, times=10, pause_s=0.25 * STEP_S)

    def keys(server):
        comm = crypten.comm.get()
        time.sleep(0.8 * STEP_S)
        server.generators = [randomness.send_key(r) for r in comm.main_group]
        server.generators_cuda = [None for _ in comm.main_group]
        time.sleep(0.8 * STEP_S)
        comm.barrier(comm.ttp_group)

    dealer._server_generators = keys
    return _deal(None)


def dealer_comes_late(rank, share):
    """A dealer that comes to the rendezvous 5 STEP_S after both custodians (inside their
    window) and then deals at once; both custodians compute for 0.125 STEP_S between ten
    multiplications: the session runs over its budget (its own, 6 STEP_S)."""
    from bountytree.mpc import session

    if rank == session.DEALER_RANK:
        return _deal(None)
    return _squared(rank, share, times=10, pause_s=0.125 * STEP_S)


def custodians_run_over_the_budget(rank, share):
    """An honest dealer; both custodians compute for 0.4 STEP_S between ten multiplications,
    and the session runs over its budget (BUDGET_S)."""
    from bountytree.mpc import session

    if rank == session.DEALER_RANK:
        return _deal(None)
    return _squared(rank, share, times=10, pause_s=0.4 * STEP_S)


def _deal(stall):
    """The dealer's loop, its parsing of each request replaced by `stall` (if given)."""
    import contextlib

    import numpy as np

    from bountytree.mpc import dealer

    if stall is not None:
        dealer.parse_request = stall
    with contextlib.suppress(Exception):  # its session ends as it may
        dealer.serve()
    return {"dealt": np.array([1])}


for _task in (
    dealer_answers_just_inside_the_timeout,
    dealer_answers_twice_as_slowly,
    dealer_stalls_at_the_keys,
    dealer_comes_late,
    custodians_run_over_the_budget,
    dealer_cuts_custodian_1_and_goes_silent,
    custodians_pause_between_requests,
    dealer_goes_silent,
    custodian_1_asks_late,
    dealer_says_custodian_1_asked_nothing,
    dealer_resets_its_links,
    dealer_keys_custodian_1_alone,
    dealer_holds_custodian_1_s_barrier,
):
    _task.plays_the_dealer = True  # type: ignore[attr-defined]
for _task in (dealer_answers_just_inside_the_timeout, custodians_run_over_the_budget):
    _task.budget_s = BUDGET_S  # type: ignore[attr-defined]
dealer_answers_twice_as_slowly.budget_s = 5 * STEP_S  # type: ignore[attr-defined]
dealer_stalls_at_the_keys.budget_s = 2.5 * STEP_S  # type: ignore[attr-defined]
dealer_comes_late.budget_s = 6 * STEP_S  # type: ignore[attr-defined]
dealer_comes_late.dealer_late_s = 5 * STEP_S  # type: ignore[attr-defined]


def _squared(rank, share, times=1, pause_s=0.0):
    """x·x (`times` times, `pause_s` apart), and how the session ended for this custodian:
    whether it says the dealer failed it or the session ran over its budget otherwise
    (session.ending), whether the other custodian told it so, and after how long."""
    import time

    import numpy as np

    from bountytree.mpc import private, session

    x = private.shared(share)
    started = time.monotonic()
    try:
        for i in range(times):
            time.sleep(pause_s if i else 0.0)
            (x * x).get_plain_text()
    except session.LinkError as exc:
        ending = session.ending(exc, rank)
        return {
            "dealer_failed": np.array([ending.dealer_at_fault]),
            "over_budget": np.array([ending.over_budget]),
            "told": np.array([isinstance(exc, session.PeerEnded)]),
            "seconds": np.array([time.monotonic() - started]),
        }
    return {"dealer_failed": np.array([False]), "told": np.array([False])}


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
