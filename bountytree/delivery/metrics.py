"""What `bountytree serve` counts, in Prometheus' text format at `GET /metrics`.

prometheus-client keeps the counters and histograms; each server has its own registry (tests
and benchmarks build several in one process). Labels are low-cardinality on purpose: routes,
not paths (a stranger's URLs would otherwise grow the registry without bound), status codes, and
the limit that closed a connection.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

# `*_created` series double the output for no use here; this process serves one model.
disable_created_metrics()  # type: ignore[no-untyped-call]

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
ROWS_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


@dataclass(frozen=True)
class ModelInfo:
    """What the server publishes about its model (metadata, metrics labels)."""

    name: str
    version: str
    task_id: int
    node_id: int


class Metrics:
    """The server's series; `render()` is the body of `GET /metrics`."""

    def __init__(self, model: ModelInfo):
        self.registry = r = CollectorRegistry(auto_describe=False)
        Gauge(
            "bountytree_model_info",
            "The model served: task, node (version) and name.",
            ["model", "version", "task", "node"],
            registry=r,
        ).labels(model.name, model.version, str(model.task_id), str(model.node_id)).set(1)
        self._requests = Counter(
            "bountytree_requests",
            "HTTP requests by route and status code.",
            ["route", "code"],
            registry=r,
        )
        self._latency = Histogram(
            "bountytree_request_duration_seconds",
            "Time from request to response, by route.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_rows = Histogram(
            "bountytree_batch_rows", "Rows in each forward pass.", buckets=ROWS_BUCKETS, registry=r
        )
        self.batch_requests = Histogram(
            "bountytree_batch_requests",
            "Requests served by each forward pass.",
            buckets=ROWS_BUCKETS[:8],
            registry=r,
        )
        self._closed = Counter(
            "bountytree_connections_closed",
            "Connections the server closed or refused for one of its limits, by limit.",
            ["limit"],
            registry=r,
        )

    def request(self, route: str, status: int, seconds: float) -> None:
        self._requests.labels(route, str(status)).inc()
        self._latency.labels(route).observe(seconds)

    def closed(self, limit: str) -> None:
        self._closed.labels(limit).inc()

    def value(self, name: str, **labels: str) -> float:
        """One sample's value (0 when it has none yet): what tests and benchmarks read."""
        return self.registry.get_sample_value(name, labels) or 0.0

    def render(self) -> bytes:
        return generate_latest(self.registry)


def route_of(path: str) -> str:
    """A low-cardinality label for a request path (no model names or ids)."""
    if path.endswith("/infer"):
        return "infer"
    if path.startswith("/v2/models/"):
        return "model_ready" if path.endswith("/ready") else "model_metadata"
    return FIXED_ROUTES.get(path.rstrip("/") or "/", "other")


FIXED_ROUTES = {
    "/v2/health/live": "live",
    "/v2/health/ready": "ready",
    "/v2": "server_metadata",
    "/metrics": "metrics",
}
