"""Plaintext counting (bountytree/models/counting.py): what the validator records and the audit
checks, and which rows any machine decides alike. An ordinary trained model leaves none
undecided; weights crafted to sit on ties (a copied logit, hidden units that cancel, which a
threshold on the logits alone did not see: the second attacker review of the exact best) leave
many, and cannot be checked. Every row called decided is decided alike by float64 arithmetic and
one row at a time, however the weights were crafted."""

from __future__ import annotations

import numpy as np
import torch

from bountytree.config import ROOT
from bountytree.delivery import export as ex
from bountytree.models import weights
from bountytree.models.counting import checkable, count_correct
from bountytree.models.fixedpoint import TIE_EPS, on_grid, tie_offsets
from bountytree.models.inference import Predictor
from bountytree.models.spec import build_torch, load_spec
from bountytree.models.training import train_node
from demo.sample_data import digits
from tests.models.specs import spec_of

SPEC = load_spec((ROOT / "examples" / "mlp.json").read_bytes())


def _rows():
    ds = digits()
    order = np.random.default_rng(7).permutation(len(ds))
    return ds.subset(order[:1000]), ds.subset(order[1000:1400])


def _trained() -> dict[str, torch.Tensor]:
    train, _ = _rows()
    model = build_torch(SPEC)
    model.load_state_dict(weights.load(weights.initial_weights(SPEC), SPEC))
    train_node(model, SPEC, train)
    return weights.load(weights.to_bytes(model), SPEC)


def _predictions(state, X: np.ndarray, dtype: torch.dtype, one_at_a_time: bool) -> np.ndarray:
    model = weights.evaluated(state, SPEC).to(dtype)
    x = torch.from_numpy(X).to(dtype)
    with torch.no_grad():
        if one_at_a_time:
            return np.array([int(model(x[i : i + 1]).argmax(1)) for i in range(len(x))])
        return model(x).argmax(1).numpy()


def _decided_rows_agree(state, rows) -> None:
    """Rows the count calls decided are predicted alike in float32 batched, float32 one row at a
    time, and float64 (close to exact): recounting only those gives the same count each way."""
    ref = _predictions(state, rows.X, torch.float32, one_at_a_time=False)
    for dtype, single in ((torch.float32, True), (torch.float64, False)):
        other = _predictions(state, rows.X, dtype, one_at_a_time=single)
        differ = int((other != ref).sum())
        assert differ <= count_correct(state, SPEC, rows.X, rows.y).undecided, (dtype, single)


def test_an_ordinary_model_leaves_no_row_undecided():
    state = _trained()
    _, rows = _rows()
    counted = count_correct(state, SPEC, rows.X, rows.y)
    plain = _predictions(state, rows.X, torch.float32, one_at_a_time=False)
    assert counted.correct == int((plain == rows.y).sum()) > 300
    assert counted.undecided == 0 and checkable(counted, len(rows))


def test_a_copied_logit_leaves_its_rows_undecided():
    """Class 1's logit made class 0's exactly, its tie offset cancelled by the bias: every row
    that either would win is on a tie."""
    state = _trained()
    state["2.weight"][1] = state["2.weight"][0]
    state["2.bias"][1] = state["2.bias"][0] + TIE_EPS
    _, rows = _rows()
    counted = count_correct(state, SPEC, rows.X, rows.y)
    on_the_tie = int((_predictions(state, rows.X, torch.float32, one_at_a_time=False) == 0).sum())
    assert counted.undecided >= on_the_tie > 20 and not checkable(counted, len(rows))
    _decided_rows_agree(state, rows)


def test_hidden_units_that_cancel_leave_their_rows_undecided():
    """h0 = 8000 + w·x, h1 = 3000 + a·x, h2 = 5000 + (w − a)·x: class 0's logit h0 − h1 − h2 is
    zero exactly, and float32 noise of about 1e-3 in any machine's order. The logits themselves
    are small, so a threshold relative to them called every row decided."""
    state = {
        k: torch.zeros_like(v) for k, v in weights.load(weights.initial_weights(SPEC), SPEC).items()
    }
    g = torch.Generator().manual_seed(3)
    w, a = torch.rand(64, generator=g) * 0.2, torch.rand(64, generator=g) * 0.1
    state["0.weight"][0], state["0.bias"][0] = w, 8000.0
    state["0.weight"][1], state["0.bias"][1] = a, 3000.0
    state["0.weight"][2], state["0.bias"][2] = w - a, 5000.0
    state["2.weight"][0, :3] = torch.tensor([1.0, -1.0, -1.0])
    state["2.bias"][0] = TIE_EPS * (SPEC.num_classes - 2)  # level with class 1 after offsets
    state["2.bias"][2:] = -100.0
    state = {k: on_grid(v) for k, v in state.items()}
    _, rows = _rows()
    counted = count_correct(state, SPEC, rows.X, rows.y)
    assert not checkable(counted, len(rows)), counted
    _decided_rows_agree(state, rows)


def _winograd_gadget(big: float) -> tuple[object, dict[str, torch.Tensor]]:
    """The third attacker review's construction: a 3×3 convolution whose output at row 0,
    column 3 is exactly (2k − 15)·2^-16 for the pixel k/16 above it, read through a tap that
    lands on padding beside a channel worth `big` everywhere else; the logit of class 0 against
    class 1 is its sign (the tie offsets levelled). Exact arithmetic, and an unfolded product,
    decide every row; a Winograd convolution spreads the rounding of `big` over its tile."""
    spec = spec_of(
        "winograd gadget",
        [1, 8, 8],
        10,
        [
            {"type": "Conv2d", "in_channels": 1, "out_channels": 2, "kernel_size": 3, "padding": 1},
            {"type": "Conv2d", "in_channels": 2, "out_channels": 1, "kernel_size": 3, "padding": 1},
            {"type": "Flatten"},
            {"type": "Linear", "in_features": 64, "out_features": 10},
        ],
    )
    state = {k: torch.zeros(s) for k, s in spec.tensors.items()}
    state["0.bias"][0] = big
    state["0.weight"][1, 0, 1, 1] = 2.0**-11
    state["0.bias"][1] = -15 * 2.0**-16
    state["1.weight"][0, 0, 0, 0] = 1.0
    state["1.weight"][0, 1, 1, 1] = 1.0
    state["3.weight"][0, 3] = 1.0
    state["3.bias"][0] = -TIE_EPS
    state["3.bias"][2:] = -100.0
    return spec, state


def test_a_winograd_convolution_cannot_make_a_decided_row_flip(tmp_path):
    """Counting, serving and export compute each convolution as an unfolding and a matrix
    product (`weights.UnfoldedConv2d`), whatever algorithm PyTorch would pick on the machine:
    with oneDNN off (NNPACK's Winograd path), PyTorch's own convolution flips rows here, and
    neither the count nor the served or exported predictions move from exact arithmetic's."""
    rows = digits()
    X = rows.X.astype(np.float32)
    for big in (1000.0, 65536.0):
        spec, state = _winograd_gadget(big)
        counted = count_correct(state, spec, X, rows.y)
        assert counted.undecided == 0
        x = torch.from_numpy(X).reshape(-1, 1, 8, 8)
        with torch.no_grad():
            exact = weights.evaluated(state, spec).double()(x.double()).argmax(1).numpy()
        own = build_torch(spec)
        own.load_state_dict(state)
        offsets = tie_offsets(spec.num_classes)
        predictor = Predictor.from_weights(weights.to_bytes(own), spec)
        exported = ex.CheckRows(X, "digits")
        with torch.backends.mkldnn.flags(enabled=False):
            assert count_correct(state, spec, X, rows.y) == counted
            with torch.no_grad():
                flipped = int(((own.eval()(x) + offsets).argmax(1).numpy() != exact).sum())
            served = predictor.predict(X).classes
            for fmt in ("onnx", "torchscript"):  # each reproduces the served logits (checked)
                assert ex._convert(fmt, predictor, tmp_path, exported).classes_agree == len(X)
        assert counted.correct == int((exact == rows.y).sum())
        assert (served == exact).all()
        assert flipped > 0, "this machine's convolution did not flip: no hazard here"


def test_values_below_the_smallest_normal_leave_their_rows_undecided():
    """The fourth attacker review: nine layers scaling by 2^-16 take every value below float32's
    smallest normal, three scaling by 2^48 bring it back, and class 0 wins when it is above
    0.75. Subnormal rounding (and a machine that flushes them to zero) moved half the decisions,
    which a bound of relative errors alone called decided. Each rounding now carries an absolute
    floor of 2^-126."""
    layers = [{"type": "Linear", "in_features": 4, "out_features": 4} for _ in range(12)]
    spec = spec_of(
        "underflow gadget",
        [4],
        2,
        [*layers, {"type": "Linear", "in_features": 4, "out_features": 2}],
    )
    state = {k: torch.zeros(s) for k, s in spec.tensors.items()}
    for i in range(12):
        state[f"{i}.weight"] = torch.eye(4) * (2.0**-16 if i < 9 else 2.0**48)
    state["12.weight"][0, 0] = 1.0
    state["12.bias"][1] = 0.75 + TIE_EPS
    X = np.random.default_rng(5).uniform(0.5, 1.0, (2000, 4)).astype(np.float32)
    y = np.zeros(2000, dtype=np.int64)
    counted = count_correct(state, spec, X, y)
    try:
        torch.set_flush_denormal(True)
        flushed = count_correct(state, spec, X, y)
    finally:
        torch.set_flush_denormal(False)
    assert abs(flushed.correct - counted.correct) <= min(counted.undecided, flushed.undecided)
    assert not checkable(counted, len(y))
