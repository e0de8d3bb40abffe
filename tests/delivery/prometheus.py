"""A running server's `/metrics`, read by Prometheus' own parser (the tests' one way to read it)."""

from __future__ import annotations

import requests
from prometheus_client.parser import text_string_to_metric_families


def samples(base: str) -> dict[tuple, float]:
    """Every sample of GET /metrics, by `key(name, **labels)`."""
    text = requests.get(f"{base}/metrics", timeout=30).text
    return {
        (sample.name, *sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def key(name: str, **labels: str) -> tuple:
    return (name, *sorted(labels.items()))
