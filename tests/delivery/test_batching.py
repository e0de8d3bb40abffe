"""The server's batcher and metrics in-process, on the example MLP's initial weights: requests
that arrive together share one forward pass and still get their own rows back; a lone request
never waits; `max_batch 1` turns batching off; the Prometheus text is well formed."""

from __future__ import annotations

import asyncio

import numpy as np

from bountytree.config import ROOT
from bountytree.delivery.metrics import Metrics, ModelInfo, route_of
from bountytree.delivery.serving import Batcher, ServeConfig
from bountytree.models.inference import Predictor
from bountytree.models.spec import load_spec
from bountytree.models.weights import initial_weights

SPEC = load_spec((ROOT / "examples" / "mlp.json").read_bytes())
PREDICTOR = Predictor.from_weights(initial_weights(SPEC), SPEC)
MODEL = ModelInfo("task-1", "3", 1, 3)


def _rows(seed: int, n: int) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 64), dtype=np.float32)


def _run(config: ServeConfig, scenario):
    metrics = Metrics(MODEL)

    async def main():
        batcher = Batcher(PREDICTOR, config, metrics)
        batcher.start()
        try:
            return await scenario(batcher)
        finally:
            await batcher.stop()

    return asyncio.run(main()), metrics


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
