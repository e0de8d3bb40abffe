"""Private models: what each party holds, and that the engine computes what the clear does.

The integration tests run the two custodians and the dealer as three real processes on this
machine (CrypTen over the parties' authenticated, encrypted links), on shares of real weights
and real rows.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from bountytree.config import ROOT
from bountytree.market.ladder import recorded_score
from bountytree.models import weights
from bountytree.models.datasets import Dataset
from bountytree.models.spec import build_torch, parse_spec, private_problem
from bountytree.models.training import train_node
from bountytree.mpc import dealer
from bountytree.mpc.local import run_parties
from bountytree.private import handover, ring, sealing, shares
from demo.sample_data import digits
from tests.mpc import private_tasks

SGD = {"optimizer": "sgd", "lr": 0.1, "momentum": 0.5, "batch_size": 32, "epochs": 1}


def _spec() -> dict:
    raw = json.loads((ROOT / "examples" / "mlp.json").read_text())
    raw["training"].update(SGD)
    return raw


def _relative_error(guess: np.ndarray, truth: np.ndarray) -> float:
    return float(np.linalg.norm(guess - truth) / np.linalg.norm(truth))


# ── what one share says ──


def test_one_share_alone_is_far_from_the_weights_and_both_rebuild_them():
    state = {k: v.numpy() for k, v in build_torch(parse_spec(_spec())).state_dict().items()}
    a, b = shares.split_state(state)
    for one in (a, b):
        for name, truth in state.items():
            assert _relative_error(ring.decode(one.tensors[name]), truth) > 0.10
    rebuilt = shares.combine_state(a, b)
    assert max(float(np.abs(rebuilt[k] - state[k]).max()) for k in state) <= 2.0**-16


def test_a_share_file_round_trips_and_refuses_floats_and_other_files():
    a, _ = shares.split_state({"w": np.ones((2, 3), np.float32)})
    again = shares.Share.from_bytes(a.to_bytes())
    assert again.party == 0 and np.array_equal(again.tensors["w"], a.tensors["w"])
    with pytest.raises(shares.ShareError, match="not a share file"):
        shares.Share.from_bytes(weights.initial_weights(parse_spec(_spec())))
    with pytest.raises(shares.ShareError, match="not a share file"):
        shares.Share.from_bytes(b"\x00" * 40)


@pytest.mark.parametrize(
    "header",
    [b'{"w":"x"}', b'{"w":[1]}', b"[" * 100_000 + b"]" * 100_000, b'{"__metadata__":7}'],
)
def test_a_hostile_share_header_is_refused_in_one_line(header):
    raw = len(header).to_bytes(8, "little") + header
    with pytest.raises(shares.ShareError):
        shares.Share.from_bytes(raw)


def test_two_copies_of_one_share_are_refused():
    a, _ = shares.split_state({"w": np.ones(3, np.float32)})
    with pytest.raises(shares.ShareError, match="not the two shares"):
        shares.combine_state(a, a)


def test_encoding_refuses_what_it_cannot_hold():
    with pytest.raises(ring.RingError):
        ring.encode(np.array([np.nan]))
    with pytest.raises(ring.RingError):
        ring.encode(np.array([2.0**40]))


# ── sealing and hand-over ──


def test_a_sealed_file_opens_with_its_key_only_and_not_once_changed():
    key, other = sealing.new_private_key(), sealing.new_private_key()
    sealed = sealing.seal(b"share bytes", sealing.public_key(key))
    assert sealing.open_sealed(sealed, key) == b"share bytes"
    with pytest.raises(sealing.SealError, match="does not open with this key"):
        sealing.open_sealed(sealed, other)
    changed = bytearray(sealed)
    changed[-20] ^= 1
    with pytest.raises(sealing.SealError, match="does not open"):
        sealing.open_sealed(bytes(changed), key)
    assert b"share bytes" not in sealed
    # a point of small order is no key: its agreement is 0, which anyone knows
    with pytest.raises(sealing.UserError, match="not an X25519 public key"):
        sealing.seal(b"share bytes", bytes(32))


def test_a_file_sealed_before_the_agreement_moved_to_openssl_still_opens():
    """X25519 moved from pycryptodome's Python arithmetic to `cryptography`'s (OpenSSL, some 20x
    less CPU per handshake): files sealed and keys made before open and read the same. The file
    was sealed by the earlier code, with a fixed key and ephemeral key."""
    key = bytes(range(32))
    sealed = bytes.fromhex(
        "626f756e7479747265652d7365616c65642d76310a358072d6365880d1aeea329adf9121383851ed21a2"
        "8e3b75e965d0d2cd1662549ee57d8446286d11abaac9dba02c7d2e40ea86efd2463c9596e7bd040b665f"
        "55e5dc3f2ae01d24"
    )
    assert sealing.public_key(key).hex() == (
        "8f40c5adb68f25624ae5b214ea767a6ec94d829d3d7b5e1ad1ba6f3e2138285f"
    )
    assert sealing.open_sealed(sealed, key, context=b"ctx") == b"share bytes"
    assert sealing.seal(b"share bytes", sealing.public_key(key), b"ctx", bytes(range(32, 64))) == (
        sealed
    )


def test_validation_shares_made_from_a_salt_are_made_again_from_it_alone():
    """What the audit of a private task relies on: the same rows, keys and salt give the same
    two sealed files; each still opens with its custodian's key only and is one share of the
    rows; other rows, or another salt, give other files."""
    from bountytree.private import rows

    keys = [sealing.new_private_key() for _ in range(2)]
    public = (sealing.public_key(keys[0]), sealing.public_key(keys[1]))
    data = digits()
    X, y = data.X[:50], data.y[:50]
    context = rows.validation_context(1, 7)
    seed = rows.validation_seed(b"s" * 32, 1, 7)
    first = rows.seal_rows(X, y, 10, public, context, seed)
    assert rows.seal_rows(X, y, 10, public, context, seed) == first
    opened = [rows.open_rows(first[i], keys[i], i, "v", context, (64, 10)) for i in (0, 1)]
    combined = ring.decode(ring.combine(opened[0].tensors["X"], opened[1].tensors["X"]))
    assert np.abs(combined - X).max() <= 2**-16
    assert _relative_error(ring.decode(opened[0].tensors["X"]), X) > 0.10
    shuffled = rows.seal_rows(X, y[::-1].copy(), 10, public, context, seed)
    assert shuffled[1] != first[1]  # (share 0 is the mask the salt draws, whatever the rows)
    other_salt = rows.validation_seed(b"t" * 32, 1, 7)
    assert rows.seal_rows(X, y, 10, public, context, other_salt) != first
    # without a seed, fresh randomness: never the same files twice
    assert rows.seal_rows(X, y, 10, public, context) != rows.seal_rows(X, y, 10, public, context)


def test_rows_no_custodian_would_read_are_refused_when_sealed(monkeypatch):
    """A sponsor's validation shares over what a custodian reads left every node of its task
    waiting (the custodians blame no node for the sponsor's files), and a data owner's staked a
    node no custodian could train; sealing refuses them, before anything is sent. (The limit is
    lowered here: at 64 MiB it takes some 113,000 rows of 64 features.)"""
    from bountytree.private import rows

    public = tuple(sealing.public_key(sealing.new_private_key()) for _ in range(2))
    data = digits()
    context = rows.validation_context(1, 7)
    sealed = rows.seal_rows(data.X[:200], data.y[:200], 10, public, context)
    assert all(len(s) > 200 * 74 * 8 for s in sealed)  # 8 bytes a feature and a class
    monkeypatch.setattr(rows, "MAX_SEALED_ROWS_BYTES", 200 * 74 * 8)
    with pytest.raises(shares.ShareError, match="200 rows of 64 features and 10 classes seal to"):
        rows.seal_rows(data.X[:200], data.y[:200], 10, public, context)
    assert rows.seal_rows(data.X[:100], data.y[:100], 10, public, context)


def test_a_key_file_others_can_read_is_refused(tmp_path):
    path = tmp_path / "sponsor.key"
    public = sealing.write_private_key(path)
    assert sealing.public_key(sealing.read_private_key(path)) == public
    with pytest.raises(Exception, match="never overwritten"):
        sealing.write_private_key(path)
    assert sealing.public_key(sealing.read_private_key(path)) == public  # the first key stays
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sponsor.key"]  # no temporary left
    os.chmod(path, 0o644)
    with pytest.raises(Exception, match="owner only"):
        sealing.read_private_key(path)
    # a device or a pipe named as the key file (the app's form takes a path) is refused before
    # a byte is read: /dev/zero once exhausted memory
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    for named in (Path("/dev/zero"), pipe):
        with pytest.raises(Exception, match="not a private key file"):
            sealing.read_private_key(named)


def test_hand_over_checks_each_custodian_against_its_commitment():
    state = {k: v.numpy() for k, v in build_torch(parse_spec(_spec())).state_dict().items()}
    a, b = shares.split_state(state)
    salts = (shares.new_salt(), shares.new_salt())
    commitments = (shares.commitment(a, salts[0]), shares.commitment(b, salts[1]))
    sponsor = sealing.new_private_key()
    key = sealing.public_key(sponsor)
    sealed = (handover.seal_share(a, salts[0], key), handover.seal_share(b, salts[1], key))
    opened = handover.open_handover(sealed, sponsor, commitments)
    assert max(float(np.abs(opened[k] - state[k]).max()) for k in state) <= 2.0**-16
    # custodian 1 shifts its share after committing: caught, and named
    shifted = shares.Share(1, {k: v + (1 << 16) for k, v in b.tensors.items()})
    with pytest.raises(shares.ShareError, match="custodian 1's hand-over does not match"):
        handover.open_handover(
            (sealed[0], handover.seal_share(shifted, salts[1], key)), sponsor, commitments
        )
    with pytest.raises(shares.ShareError, match="custodian 0 handed over share 1"):
        handover.open_handover((sealed[1], sealed[0]), sponsor, commitments)


# ── the dealer and the links ──


@pytest.mark.parametrize(
    "message",
    [
        "terminate",
        {"function": "eval", "args": [], "kwargs": {}},
        {"function": "additive", "args": [[2, 2], [2, 2], "__import__"], "kwargs": {}},
        {"function": "additive", "args": [[1 << 25], [1], "mul"], "kwargs": {}},
        {"function": "additive", "args": [[4096, 4096, 2], [1], "mul"], "kwargs": {}},
        {"function": "square", "args": [[True]], "kwargs": {}},
        {"function": "binary", "args": [[2]], "kwargs": {}},
        {
            "function": "additive",
            "args": [[1, 1, 3, 3], [1, 1, 2, 2], "conv2d"],
            "kwargs": {"bias": 1},
        },
        # inputs within bounds whose answer or work is not: 32 GiB, 512 GiB, 496 GiB, 2^50 products
        {"function": "additive", "args": [[65536, 1], [1, 65536], "mul"], "kwargs": {}},
        {"function": "binary", "args": [[65536, 1], [1, 65536]], "kwargs": {}},
        {"function": "additive", "args": [[4096, 4096, 1], [1, 4096], "matmul"], "kwargs": {}},
        {
            "function": "additive",
            "args": [[1, 1, 64, 64], [1, 1, 1, 1], "conv_transpose2d"],
            "kwargs": {"stride": 4096},
        },
        {
            "function": "additive",
            "args": [[1, 1, 4096, 4096], [1, 1, 4096, 4096], "conv2d"],
            "kwargs": {"padding": 4095},
        },
        {"function": "additive", "args": [[2, 3], [4, 5], "matmul"], "kwargs": {}},
    ],
)
def test_the_dealer_refuses_what_it_was_not_built_to_answer(message):
    with pytest.raises(dealer.DealerError):
        dealer.parse_request(message)


def test_the_dealer_reads_a_convolution_request():
    function, args, kwargs = dealer.parse_request(
        {
            "function": "additive",
            "args": [[1, 1, 5, 5], [2, 1, 3, 3], "conv2d"],
            "kwargs": {"stride": 1, "padding": [1, 1]},
        }
    )
    assert (function, args[2], kwargs) == ("additive", "conv2d", {"stride": 1, "padding": (1, 1)})
    assert args[0] == torch.Size([1, 1, 5, 5])


def test_a_private_architecture_uses_only_layers_the_custodians_train():
    assert private_problem(parse_spec(_spec())) is None
    assert "sgd" in private_problem(
        parse_spec(json.loads((ROOT / "examples/mlp.json").read_text()))
    )
    cnn = json.loads((ROOT / "examples" / "cnn.json").read_text())
    cnn["training"].update(SGD)
    assert "MaxPool2d" in private_problem(parse_spec(cnn))


# ── the engine, with three real parties ──


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A child trained in MPC from a parent's shares on shared rows, and the same in the clear."""
    raw = _spec()
    spec = parse_spec(raw)
    data = digits()
    rows = Dataset(data.X[:120], data.y[:120])
    parent = weights.load_model(weights.initial_weights(spec), spec)
    state = {k: v.detach().numpy().copy() for k, v in parent.state_dict().items()}
    a, b = shares.split_state(state)
    xa, xb = ring.share_floats(rows.X)
    ya, yb = ring.share_floats(np.eye(10, dtype=np.float32)[rows.y])
    results = run_parties(
        private_tasks.train_twice,
        [(raw, a.tensors, xa, ya), (raw, b.tensors, xb, yb)],
        tmp_path_factory.mktemp("train"),
    )
    child_shares = [
        shares.Share(r, {k[2:]: v for k, v in results[r].items() if k.startswith("w:")})
        for r in (0, 1)
    ]
    again = [
        shares.Share(r, {k[6:]: v for k, v in results[r].items() if k.startswith("again:")})
        for r in (0, 1)
    ]
    plain = train_node(parent, spec, rows).model
    return raw, spec, state, child_shares, plain, again


def test_training_on_shares_matches_training_in_the_clear(trained):
    _, _, parent, child_shares, plain, _ = trained
    child = shares.combine_state(*child_shares)
    plain_state = plain.state_dict()
    assert max(float(np.abs(child[k] - plain_state[k].numpy()).max()) for k in child) <= 2e-3
    # it did train: the child is not the parent
    assert max(float(np.abs(child[k] - parent[k]).max()) for k in child) > 1e-2
    # and neither custodian's share of the child is near it
    for one in child_shares:
        for k in child:
            assert _relative_error(ring.decode(one.tensors[k]), child[k]) > 0.10


def _score(raw, child_shares, val: Dataset, best, margin, parent_bps, work: Path):
    vx = ring.share_floats(val.X)
    vy = ring.share_floats(np.eye(10, dtype=np.float32)[val.y])
    return run_parties(
        private_tasks.score,
        [(raw, child_shares[r].tensors, vx[r], vy[r], best[r], margin, parent_bps) for r in (0, 1)],
        work,
    )


def test_scoring_reveals_only_the_ladders_record_and_keeps_the_exact_best_shared(trained, tmp_path):
    raw, spec, _, child_shares, _, _ = trained
    data = digits()
    val = Dataset(data.X[1000:1400], data.y[1000:1400])
    child = shares.combine_state(*child_shares)
    model = build_torch(spec)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in child.items()})
    with torch.no_grad():
        correct = int((model(torch.from_numpy(val.X)).argmax(1).numpy() == val.y).sum())
    exact = correct * 10_000 // len(val)
    margin = 100
    zero = ring.split(np.zeros((), dtype=np.int64))
    first = _score(raw, child_shares, val, zero, margin, 0, tmp_path / "first")
    assert first[0]["recorded"] == first[1]["recorded"]
    assert first[0]["recorded"] == recorded_score(
        exact, best_bps=0, margin_bps=margin, parent_bps=0
    )
    best = (first[0]["best"], first[1]["best"])
    assert (
        float(ring.decode(ring.combine(*best)).reshape(-1)[0]) == exact
    )  # the exact best, kept as shares
    for one in best:
        assert abs(float(ring.decode(one).reshape(-1)[0]) - exact) > exact * 0.10
    # the same model again: no better than the exact best by the margin, so its parent's score
    again = _score(raw, child_shares, val, best, margin, 1234, tmp_path / "again")
    assert again[0]["recorded"] == 1234
    assert (
        float(ring.decode(ring.combine(again[0]["best"], again[1]["best"])).reshape(-1)[0]) == exact
    )


def test_the_ladder_inside_the_computation_truncates_nothing_so_an_honest_run_cannot_wrap(
    tmp_path,
):
    """Two-party truncation is the only step of CrypTen's arithmetic that can go wrong without a
    deviating party (it wraps with a probability that grows with the value). The Ladder's
    products multiply a comparison's 0/1, which CrypTen keeps at scale 1, so it needs none: the
    record of an honest run is exact. Measured: no truncation over cases around the thresholds,
    each record the clear Ladder's."""
    rng = np.random.default_rng(7)
    rows, margin, parent = 400, 100, 1234
    counts = [0, 400, 123, 124, 200, *rng.integers(0, rows + 1, 5).tolist()]
    bests = [0, 9900, 3075, 3000, 4899, *rng.integers(0, 10_001, 5).tolist()]
    count_shares = [ring.share_floats(np.array([c], dtype=np.float64)) for c in counts]
    best_shares = [ring.share_floats(np.array([b], dtype=np.float64)) for b in bests]
    results = run_parties(
        private_tasks.ladder_cases,
        [
            ([c[r] for c in count_shares], [b[r] for b in best_shares], rows, margin, parent)
            for r in (0, 1)
        ],
        tmp_path,
    )
    assert results[0]["truncations"] == results[1]["truncations"] == 0
    expected = [
        recorded_score(c * 10_000 // rows, best_bps=b, margin_bps=margin, parent_bps=parent)
        for c, b in zip(counts, bests, strict=True)
    ]
    assert results[0]["records"].tolist() == results[1]["records"].tolist() == expected


def test_a_parents_share_trains_every_child_from_the_parent(trained):
    """A custodian's share of a parent is not changed by training a child from it (CrypTen's
    optimizer updates shares in place): a second child of the same parent is the first."""
    _, _, _, child_shares, _, again = trained
    first, second = shares.combine_state(*child_shares), shares.combine_state(*again)
    assert max(float(np.abs(first[k] - second[k]).max()) for k in first) <= 1e-3
