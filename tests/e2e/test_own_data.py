"""A newcomer's own tabular data (scikit-learn's breast-cancer set: 30 features on very
different scales) through the whole path that used to fail: the task records each feature's
range and the schema; a BatchNorm model trained on it is checked by the trainer before it
stakes, submitted, and accepted and scored by the real oracle (it was rejected as `logit-range`
when one range served every feature); a model that would be rejected is refused before anything
is sent."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.datasets import load_breast_cancer

from bountytree.errors import UserError
from bountytree.models.bounds import SAFE_LIMIT, value_bound
from bountytree.models.datasets import InputBox
from bountytree.models.spec import build_torch, parse_spec
from tests.conftest import cli_ok, market_for
from trainer.client import Trainer

pytestmark = pytest.mark.mpc

SPEC = {
    "name": "breast cancer BN MLP",
    "input_shape": [30],
    "num_classes": 2,
    "layers": [
        {"type": "BatchNorm1d", "num_features": 30},
        {"type": "Linear", "in_features": 30, "out_features": 16},
        {"type": "ReLU"},
        {"type": "Linear", "in_features": 16, "out_features": 2},
    ],
    "training": {"optimizer": "adam", "lr": 0.01, "epochs": 20, "batch_size": 32, "seed": 0},
}


@pytest.fixture(scope="module")
def cancer(tmp_path_factory):
    """The set as a user has it: CSVs with a header, split between the sponsor and an owner."""
    data = load_breast_cancer(as_frame=True)
    frame = data.frame.rename(columns={"target": "label"}).sample(frac=1.0, random_state=0)
    folder = tmp_path_factory.mktemp("cancer")
    paths = {"validation": folder / "validation.csv", "owner": folder / "owner.csv"}
    frame.iloc[:120].to_csv(paths["validation"], index=False)
    frame.iloc[120:420].to_csv(paths["owner"], index=False)
    return paths, list(data.feature_names)


def test_own_tabular_data_gets_a_batchnorm_model_scored(settings, deployed, cancer, tmp_path):
    paths, names = cancer
    sponsor, architect, owner = (market_for(settings, i) for i in (1, 2, 5))
    task_id = sponsor.create_task(
        paths["validation"],
        name="breast cancer",
        bounty=10**18,
        target_bps=9900,
        deadline_s=3600,
    ).task_id
    info = sponsor.task(task_id).info
    assert info.feature_names == tuple(names)  # the schema, in the file's column order
    box = info.input_box
    assert box is not None and len(box.low) == 30
    rows = np.loadtxt(paths["validation"], delimiter=",", skiprows=1)[:, :30].astype(np.float32)
    # The box holds every row, its bounds rounded outward: no private row's value is published.
    assert all(np.array(box.low) <= rows.min(axis=0)) and all(
        np.array(box.high) >= rows.max(axis=0)
    )
    assert not set(box.low + box.high) & set(map(float, rows.reshape(-1))) - {0.0}
    assert info.input_range == (min(box.low), max(box.high))  # the one range is rounded too

    arch = architect.propose(task_id, parse_spec(SPEC)).node_id
    submitted = Trainer(owner).run(task_id, paths["owner"], arch)
    assert submitted.holdout_accuracy > 0.8
    cli_ok(settings, "--once", "--task", str(task_id), module="oracle")
    node = sponsor.node(submitted.node_id)
    assert node.status == "scored", (node.status, node.reason)

    # The cause, measured: on one range for every feature the same weights exceed the bound.
    weights_of = owner.store
    from bountytree.models import weights
    from bountytree.storage.store import get_bytes

    spec = sponsor.architecture_spec(node)
    state = weights.load(get_bytes(weights_of, node.cid, weights.max_bytes(spec)), spec)
    one = InputBox((min(box.low),) * 30, (max(box.high),) * 30)
    assert value_bound(spec, state, box) < SAFE_LIMIT < value_bound(spec, state, one)


def test_a_model_the_oracle_would_reject_is_refused_before_staking(settings, deployed, cancer):
    paths, _ = cancer
    sponsor, owner = market_for(settings, 1), market_for(settings, 6)
    task_id = sponsor.create_task(
        paths["validation"], name="cancer refusal", bounty=10**18, target_bps=9900, deadline_s=3600
    ).task_id
    task = sponsor.task(task_id)
    spec = parse_spec({**SPEC, "layers": SPEC["layers"][1:]})  # no BatchNorm: raw scales
    model = build_torch(spec)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1000.0)  # weights far larger than training on these rows would give
    nonce = owner.chain.w3.eth.get_transaction_count(owner.chain.address)
    with pytest.raises(UserError, match=r"not submitted \(nothing staked\).*BatchNorm") as err:
        Trainer.check_before_staking(task, spec, model)
    assert "\n" not in str(err.value)
    assert owner.chain.w3.eth.get_transaction_count(owner.chain.address) == nonce


def test_a_column_too_large_and_an_architecture_the_bound_refuses_cost_nothing(
    settings, deployed, cancer, tmp_path
):
    """A column beyond what the secure evaluation holds is refused when the task is posted; an
    architecture whose initial weights already exceed the bound on the task's rows is refused
    before it is staked. One line each, nothing sent."""
    import pandas as pd

    paths, _ = cancer
    frame = pd.read_csv(paths["validation"])
    sponsor, architect = market_for(settings, 1), market_for(settings, 2)
    before = [m.chain.w3.eth.get_transaction_count(m.chain.address) for m in (sponsor, architect)]
    huge = frame.assign(**{"mean area": frame["mean area"] * 1e4})  # up to ~2.5e7
    huge.to_csv(tmp_path / "huge.csv", index=False)
    with pytest.raises(UserError, match=r"^feature 'mean area' reaches .*rescale that column"):
        sponsor.create_task(
            tmp_path / "huge.csv", name="too large", bounty=10**18, target_bps=9900, deadline_s=60
        )
    wide = frame.assign(**{c: frame[c] * 0 + 9.0e5 for c in frame.columns if c != "label"})
    wide.loc[0, [c for c in frame.columns if c != "label"]] = -9.0e5
    wide.to_csv(tmp_path / "wide.csv", index=False)
    task_id = sponsor.create_task(
        tmp_path / "wide.csv", name="wide ranges", bounty=10**18, target_bps=9900, deadline_s=600
    ).task_id
    before[0] = sponsor.chain.w3.eth.get_transaction_count(sponsor.chain.address)
    with pytest.raises(UserError, match=r"^not proposed \(nothing staked\): its initial weights"):
        architect.propose(task_id, parse_spec({**SPEC, "layers": SPEC["layers"][1:]}))
    after = [m.chain.w3.eth.get_transaction_count(m.chain.address) for m in (sponsor, architect)]
    assert after == before


def test_the_description_keeps_ranges_and_schema(settings, deployed, cancer):
    paths, names = cancer
    sponsor = market_for(settings, 1)
    posted = sponsor.create_task(
        paths["validation"], name="cancer schema", bounty=10**18, target_bps=9900, deadline_s=60
    )
    raw = json.loads(posted.info.to_bytes())
    assert raw["feature_names"] == names and len(raw["feature_ranges"]) == 30
