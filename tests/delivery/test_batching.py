"""The server's batcher and metrics in-process, on the example MLP's initial weights: requests
that arrive together share one forward pass and still get their own rows back; a lone request
never waits; `max_batch 1` turns batching off; the Prometheus text is well formed."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import orjson
import pytest
import torch

from bountytree.config import ROOT
from bountytree.delivery.metrics import Metrics, ModelInfo, route_of
from bountytree.delivery.serving import (
    INLINE_FLOPS,
    MAX_ANSWER_VALUES,
    MAX_REQUEST_FLOPS,
    MAX_REQUEST_INPUTS,
    MAX_REQUEST_VALUES,
    BadRequest,
    Batcher,
    ServeConfig,
    parse_infer,
    request_rows,
)
from bountytree.models.counting import CHUNK_VALUES
from bountytree.models.inference import Predictor
from bountytree.models.spec import load_spec
from bountytree.models.weights import initial_weights
from tests.models.specs import spec_of

SPEC = load_spec((ROOT / "examples" / "mlp.json").read_bytes())
PREDICTOR = Predictor.from_weights(initial_weights(SPEC), SPEC)
MODEL = ModelInfo("task-1", "3", 1, 3)


def _rows(seed: int, n: int) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 64), dtype=np.float32)


def _run(config: ServeConfig, scenario):
    return _run_with(PREDICTOR, config, scenario)


async def _together(batcher: Batcher, sizes: list[int]):
    batcher.inflight = len(sizes)
    return await asyncio.gather(*(batcher.predict(_rows(i, n)) for i, n in enumerate(sizes)))


def test_requests_arriving_together_share_one_pass_and_get_their_own_rows():
    sizes = [1, 3, 2, 5, 1]
    outs, metrics = _run(ServeConfig(max_batch=64), lambda b: _together(b, sizes))
    assert metrics.value("bountytree_batch_requests_count") == 1 and metrics.value(
        "bountytree_batch_rows_sum"
    ) == sum(sizes)
    for i, (n, out) in enumerate(zip(sizes, outs, strict=True)):
        alone = PREDICTOR.predict(_rows(i, n))
        assert np.allclose(out.logits, alone.logits, atol=1e-6)
        assert np.array_equal(out.classes, alone.classes)


def test_max_batch_bounds_a_pass_and_one_turns_batching_off():
    sizes = [4, 4, 4, 4]
    _, metrics = _run(ServeConfig(max_batch=8), lambda b: _together(b, sizes))
    assert (
        metrics.value("bountytree_batch_requests_count") == 2
        and metrics.value("bountytree_batch_rows_sum") == 16
    )
    _, metrics = _run(ServeConfig(max_batch=1), lambda b: _together(b, sizes))
    assert metrics.value("bountytree_batch_requests_count") == 4


def test_a_pass_waits_only_for_requests_already_arriving():
    async def late_second(batcher: Batcher):
        batcher.inflight = 2  # the second request is being read: the pass waits for it

        async def second():
            await asyncio.sleep(0.0003)
            return await batcher.predict(_rows(1, 1))

        return await asyncio.gather(batcher.predict(_rows(0, 1)), second())

    _, metrics = _run(ServeConfig(max_batch=64, max_delay=0.05), late_second)
    assert metrics.value("bountytree_batch_requests_count") == 1

    async def lone(batcher: Batcher):
        batcher.inflight = 1
        loop = asyncio.get_running_loop()
        started = loop.time()
        await batcher.predict(_rows(0, 1))
        return loop.time() - started

    waited, metrics = _run(ServeConfig(max_batch=64, max_delay=0.5), lone)
    assert (
        waited < 0.25 and metrics.value("bountytree_batch_requests_count") == 1
    )  # never the 0.5 s window


def test_prometheus_text():
    metrics = Metrics(MODEL)
    metrics.request("infer", 200, 0.002)
    metrics.request("infer", 400, 0.001)
    text = metrics.render().decode()
    assert metrics.value("bountytree_requests_total", route="infer", code="200") == 1
    assert metrics.value("bountytree_requests_total", route="infer", code="400") == 1
    assert 'bountytree_requests_total{code="400",route="infer"} 1.0' in text
    assert "# TYPE bountytree_request_duration_seconds histogram" in text
    assert text.endswith("\n")
    assert [
        route_of(p)
        for p in (
            "/v2/models/x/infer",
            "/v2/health/live",
            "/v2/models/x",
            "/v2",
            "/x",
            "/v2/health/anything-a-stranger-sends",
        )
    ] == ["infer", "live", "model_metadata", "server_metadata", "other", "other"]


# A model the spec admits whose convolution unfolds to 3.75 million values a row (the attacker
# review of the unfolded convolution): one pass over 1,024 rows of it took 14 GiB.
WIDE = spec_of(
    "wide unfolding",
    [1, 8, 8],
    10,
    [
        {"type": "Conv2d", "in_channels": 1, "out_channels": 1, "kernel_size": 16, "padding": 64},
        {"type": "MaxPool2d", "kernel_size": 2},
        {"type": "Flatten"},
        {"type": "Linear", "in_features": 3600, "out_features": 10},
    ],
)


def _body(rows: np.ndarray) -> bytes:
    return orjson.dumps(
        {"inputs": [{"name": "input", "shape": list(rows.shape), "datatype": "FP32",
                     "data": rows.reshape(-1).tolist()}]}
    )  # fmt: skip


def test_a_wide_model_computes_a_few_rows_at_once_and_takes_few_per_request(monkeypatch):
    predictor = Predictor.from_weights(initial_weights(WIDE), WIDE)
    unfolded: list[int] = []
    unfold = torch.nn.functional.unfold

    def counted(*args, **kwargs):
        out = unfold(*args, **kwargs)
        unfolded.append(out.numel())
        return out

    monkeypatch.setattr(torch.nn.functional, "unfold", counted)
    rows = _rows(3, 6).reshape(6, 1, 8, 8)
    together = predictor.forward(rows)
    assert max(unfolded) <= max(CHUNK_VALUES, WIDE.widest)  # one row of it at a time here
    alone = np.concatenate([predictor.forward(rows[i : i + 1]).logits for i in range(6)])
    assert np.array_equal(together.logits, alone)
    config = ServeConfig()
    most = request_rows(predictor, config)
    assert most == MAX_REQUEST_VALUES // WIDE.widest == 4 < config.max_rows
    assert len(parse_infer(_body(rows[:most]), predictor, config).rows) == most
    with pytest.raises(BadRequest, match="this model's limit per request"):
        parse_infer(_body(rows[: most + 1]), predictor, config)


def test_a_model_of_many_classes_answers_few_rows_per_request():
    many = spec_of(
        "many classes",
        [1],
        1000,
        [{"type": "Linear", "in_features": 1, "out_features": 1000}],
    )
    predictor = Predictor.from_weights(initial_weights(many), many)
    most = request_rows(predictor, ServeConfig())
    assert most == MAX_ANSWER_VALUES // 1000
    assert request_rows(PREDICTOR, ServeConfig()) == ServeConfig().max_rows  # the examples'
    assert ServeConfig().max_rows > MAX_REQUEST_INPUTS // 784  # a 784-feature model's: fewer
    with pytest.raises(BadRequest, match="this model's limit per request"):
        parse_infer(_body(np.zeros((most + 1, 1), np.float32)), predictor, ServeConfig())


def test_a_heavy_pass_leaves_the_event_loop_free():
    """A pass of more than INLINE_FLOPS operations runs in a worker thread: the loop keeps
    ticking while it runs (before, it held the loop for the whole pass)."""
    predictor = Predictor.from_weights(initial_weights(WIDE), WIDE)
    rows = _rows(4, 4).reshape(4, 1, 8, 8)
    assert len(rows) * predictor.flops_per_row > INLINE_FLOPS

    async def main() -> tuple[float, float]:
        batcher = Batcher(predictor, ServeConfig(), Metrics(MODEL))
        batcher.start()
        gaps: list[float] = []
        done = False

        async def tick() -> None:
            last = time.perf_counter()
            while not done:
                await asyncio.sleep(0.002)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now

        ticker = asyncio.get_running_loop().create_task(tick())
        started = time.perf_counter()
        try:
            await batcher.predict(rows)
        finally:
            done = True
            await ticker
            await batcher.stop()
        return time.perf_counter() - started, max(gaps)

    took, gap = asyncio.run(main())
    assert gap < took / 2, (gap, took)


def test_a_model_costly_per_row_takes_few_rows_and_leaves_the_loop_even_for_one():
    """1×1 convolutions are narrow (their widest layer is small) and costly: the attacker
    review of the serving fixes held the loop 3 s with 8 rows. What a request may hold and where
    its pass runs follow the model's operations per row."""
    layers = [
        {"type": "Conv2d", "in_channels": 128, "out_channels": 128, "kernel_size": 1}
        for _ in range(40)
    ]
    costly = spec_of(
        "1x1 stack",
        [128, 3, 3],
        10,
        [*layers, {"type": "Flatten"}, {"type": "Linear", "in_features": 1152, "out_features": 10}],
    )
    predictor = Predictor.from_weights(initial_weights(costly), costly)
    assert predictor.flops_per_row > INLINE_FLOPS > 0
    most = request_rows(predictor, ServeConfig())
    assert most == MAX_REQUEST_FLOPS // predictor.flops_per_row < ServeConfig().max_rows
    threaded: list[int] = []
    to_thread = asyncio.to_thread

    async def recorded(fn, rows):
        threaded.append(len(rows))
        return await to_thread(fn, rows)

    async def one(batcher):
        asyncio.to_thread = recorded
        try:
            return await batcher.predict(np.zeros((1, 128, 3, 3), np.float32))
        finally:
            asyncio.to_thread = to_thread

    batcher_out, _ = _run_with(predictor, ServeConfig(), one)
    assert threaded == [1] and len(batcher_out) == 1


def test_a_request_cancelled_during_a_threaded_pass_stops_nobody_else():
    """A job cancelled while its pass ran in the worker thread made setting its result raise,
    and the batcher ended: every later request waited for ever (the attacker review of the
    serving fixes)."""
    predictor = Predictor.from_weights(initial_weights(WIDE), WIDE)
    rows = _rows(5, 1).reshape(1, 1, 8, 8)

    async def scenario(batcher):
        first = asyncio.get_running_loop().create_task(batcher.predict(rows))
        await asyncio.sleep(0.005)  # its pass has started, in the thread
        first.cancel()
        return await asyncio.wait_for(batcher.predict(rows), timeout=30)

    out, _ = _run_with(predictor, ServeConfig(max_batch=1), scenario)
    assert len(out) == 1


def _run_with(predictor: Predictor, config: ServeConfig, scenario):
    metrics = Metrics(MODEL)

    async def main():
        batcher = Batcher(predictor, config, metrics)
        batcher.start()
        try:
            return await scenario(batcher)
        finally:
            await batcher.stop()

    return asyncio.run(main()), metrics
