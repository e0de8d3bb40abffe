"""The model scored is the model delivered: the secure evaluation encodes weights on the 2^-16
grid, so every loader puts them there, a BatchNorm is delivered as the folded map it is scored
as, and weights that amplify what is left (the inputs' encoding, each product's truncation)
beyond DRIFT_LIMIT are refused. Real two-party CrypTen sessions against the delivered model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load as load_file_bytes

from bountytree.models import weights
from bountytree.models.bounds import check_evaluable, reach
from bountytree.models.datasets import InputBox
from bountytree.models.fixedpoint import DRIFT_LIMIT, TIE_EPS, ULP, on_grid, tie_offsets
from bountytree.models.spec import build_torch, parse_spec
from bountytree.mpc.local import run_parties
from bountytree.reasons import Reason, Rejected
from tests.mpc import private_tasks

# The attacker review's gadget: hidden unit 0 is relu(0 · x + b) with b = 2^-17, which the
# encoding truncates to 0; the next layer multiplies it by 2^27 into logit 0. In float the
# logit gains 1,024; in the secure evaluation nothing. Every value stays far below SAFE_LIMIT.
GADGET = {
    "name": "gadget",
    "input_shape": [4],
    "num_classes": 3,
    "layers": [
        {"type": "Linear", "in_features": 4, "out_features": 4},
        {"type": "ReLU"},
        {"type": "Linear", "in_features": 4, "out_features": 3},
    ],
    "training": {"optimizer": "sgd", "lr": 0.1, "epochs": 1, "batch_size": 8, "seed": 0},
}
# Features of very different scales through a BatchNorm (the newcomer's tabular case).
TABULAR = {
    **GADGET,
    "name": "tabular",
    "layers": [{"type": "BatchNorm1d", "num_features": 4}, *GADGET["layers"]],
}
BOX = InputBox((0.0, 0.0, 0.0, 0.0), (1.0, 10.0, 300.0, 4000.0))


def _gadget_file() -> bytes:
    torch.manual_seed(0)
    model = build_torch(parse_spec(GADGET))
    with torch.no_grad():
        model[0].weight[0].zero_()
        model[0].bias[0] = 2.0**-17
        model[2].weight[:, 0] = torch.tensor([2.0**27, 0.0, 0.0])
    return weights.to_bytes(model)


def _tabular_file() -> bytes:
    spec = parse_spec(TABULAR)
    torch.manual_seed(1)
    model = build_torch(spec)
    with torch.no_grad():
        model[0].running_mean.copy_(torch.tensor([0.5, 5.0, 150.0, 2000.0]))
        model[0].running_var.copy_(torch.tensor([0.08, 8.3, 7500.0, 1.3e6]))
        model[0].weight.copy_(torch.tensor([1.3, 0.7, 1.1, 0.9]))
    return weights.to_bytes(model)


def _rows(n: int = 64) -> np.ndarray:
    g = torch.Generator().manual_seed(7)
    high = torch.tensor(BOX.high)
    return (torch.rand(n, 4, generator=g) * high).numpy().astype(np.float32)


def _secure_logits(spec_json: dict, state: dict, rows: np.ndarray, work) -> np.ndarray:
    arrays = {k: v.detach().numpy().copy() for k, v in state.items()}
    out = run_parties(
        private_tasks.logits,
        [(spec_json, arrays, rows), (spec_json, arrays, rows)],
        work,
        dealer=False,
    )
    return out[0]["logits"]


def test_loading_puts_every_weight_on_the_grid():
    raw = _gadget_file()
    state = weights.load(raw, parse_spec(GADGET))
    for tensor in state.values():
        assert torch.equal(tensor, on_grid(tensor))
        assert torch.equal(tensor * 2**16, (tensor * 2**16).round())
    assert float(state["0.bias"][0]) == 0.0  # 2^-17 truncated, as CrypTen encodes it
    assert on_grid(torch.tensor([-1.5 * ULP]))[0] == -ULP  # toward zero, as `.long()`


def test_the_gadget_scores_as_it_is_delivered_and_is_refused(tmp_path):
    """What the gadget gained: its scored logit differed from its delivered one by 1,024. Now
    the delivered model is the scored one (measured in a real session), and the model is refused
    before any session, by the trainer and the oracle alike, as `logit-range`."""
    spec = parse_spec(GADGET)
    raw = _gadget_file()
    rows = _rows()
    floats = build_torch(spec)
    floats.load_state_dict(load_file_bytes(raw))  # the file's floats, as before
    delivered = weights.load_evaluated(raw, spec)
    with torch.no_grad():
        as_floats = floats.eval()(torch.from_numpy(rows)).numpy()
        as_delivered = delivered(torch.from_numpy(rows)).numpy()
    secure = _secure_logits(GADGET, weights.load(raw, spec), rows, tmp_path)
    assert np.abs(as_floats - secure).max() > 1000  # the gain, had the floats been delivered
    gap = float(np.abs(as_delivered - secure).max())
    print(f"the gadget: floats vs secure {np.abs(as_floats - secure).max():.1f}, delivered {gap}")
    assert gap < 1  # the 1,024 is gone: what is scored is what is delivered
    drift = reach(spec, weights.load(raw, spec), BOX).drift
    assert gap <= drift
    assert drift > 2**11 * DRIFT_LIMIT  # 2^27 · ULP per truncation: far beyond the limit
    with pytest.raises(Rejected) as refused:
        check_evaluable(spec, weights.load(raw, spec), BOX, "the gadget's weights")
    assert refused.value.reason == Reason.LOGIT_RANGE
    assert "fixed-point rounding" in str(refused.value)


def test_a_batchnorm_model_is_delivered_as_the_map_it_is_scored_as(tmp_path):
    """Features up to 4,000 through a BatchNorm: the delivered model (the folded map on the
    grid) and the secure evaluation agree within the drift the bound states, which stays well
    inside the limit."""
    spec = parse_spec(TABULAR)
    raw = _tabular_file()
    state = weights.load(raw, spec)
    rows = _rows()
    r = reach(spec, state, BOX)
    assert r.drift < DRIFT_LIMIT / 4
    check_evaluable(spec, state, BOX, "the tabular weights")  # not refused
    delivered = weights.load_evaluated(raw, spec)
    with torch.no_grad():
        as_delivered = delivered(torch.from_numpy(rows)).numpy()
    secure = _secure_logits(TABULAR, state, rows, tmp_path)
    gap = float(np.abs(as_delivered - secure).max())
    print(f"tabular: delivered vs secure {gap:.2e}, drift bound {r.drift:.2e}")
    assert gap <= r.drift


def test_ties_break_the_same_way_scored_and_delivered(tmp_path):
    """The attacker review's tie gadget: class 2's logit is class 0's plus TIE_EPS. The session
    adds the tie offsets before its argmax (class 0 wins by TIE_EPS); delivered without them,
    class 2 won on every row. Now the delivered model adds the same offsets."""
    spec = parse_spec(GADGET)
    torch.manual_seed(2)
    model = build_torch(spec)
    with torch.no_grad():
        model[2].weight[2] = model[2].weight[0]
        model[2].bias[2] = model[2].bias[0] + TIE_EPS
    raw = weights.to_bytes(model)
    state = weights.load(raw, spec)
    rows = _rows()
    secure = _secure_logits(GADGET, state, rows, tmp_path) + tie_offsets(3).numpy()
    plain = build_torch(spec)
    plain.load_state_dict(state)
    with torch.no_grad():
        without = plain.eval()(torch.from_numpy(rows)).numpy().argmax(1)
        delivered = weights.load_evaluated(raw, spec)(torch.from_numpy(rows)).numpy().argmax(1)
    scored = secure.argmax(1)
    classes_0_or_2 = np.isin(scored, (0, 2))
    assert classes_0_or_2.sum() > 10
    assert (without[classes_0_or_2] != scored[classes_0_or_2]).mean() > 0.9  # the old gap
    assert (delivered != scored).mean() <= 0.05  # truncation noise at most, not a chosen class


PADDED = {
    "name": "padded pool",
    "input_shape": [1, 4, 4],
    "num_classes": 2,
    "layers": [
        {"type": "Conv2d", "in_channels": 1, "out_channels": 1, "kernel_size": 1},
        {"type": "MaxPool2d", "kernel_size": 2, "padding": 1},
        {"type": "Flatten"},
        {"type": "Linear", "in_features": 9, "out_features": 2},
    ],
    "training": GADGET["training"],
}


def test_a_max_pool_padded_over_low_values_is_refused(tmp_path):
    """CrypTen pads each party's share of a max-pool's input with -2^24, so a padded cell is
    worth about -512 where PyTorch's is -inf: under a convolution biased to -2,000 the corner
    windows' max is the padding's in the session and not in the delivered model (the review
    scored -488 for a delivered +1,000). Refused before any session; with a ReLU before the
    pool (values at 0 or above) the same model is accepted."""
    spec = parse_spec(PADDED)
    torch.manual_seed(3)
    model = build_torch(spec)
    with torch.no_grad():
        model[0].weight.fill_(1.0)
        model[0].bias.fill_(-2000.0)
        model[3].weight.zero_()
        model[3].weight[0, 0] = -1.0  # the top-left window: padding and one real cell
        model[3].bias.fill_(0.0)
    raw = weights.to_bytes(model)
    state = weights.load(raw, spec)
    box = InputBox((0.0,) * 16, (1.0,) * 16)
    rows = np.random.default_rng(4).random((8, 1, 4, 4)).astype(np.float32)
    secure = _secure_logits(PADDED, state, rows, tmp_path)
    with torch.no_grad():
        delivered = weights.load_evaluated(raw, spec)(torch.from_numpy(rows)).numpy()
    assert np.abs(secure[:, 0] - delivered[:, 0]).min() > 1000  # what it would have gained
    r = reach(spec, state, box)
    assert r.padded_pool == 1
    with pytest.raises(Rejected, match="pads a max-pool"):
        check_evaluable(spec, state, box, "the padded weights")
    relu_first = {
        **PADDED,
        "layers": [PADDED["layers"][0], {"type": "ReLU"}, *PADDED["layers"][1:]],
    }
    model = build_torch(parse_spec(relu_first))
    assert reach(parse_spec(relu_first), model.state_dict(), box).padded_pool is None
