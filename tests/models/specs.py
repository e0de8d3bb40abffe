"""Model specs built in tests: the layers, input and classes that matter to a test, and the rest
(format, name, a plain SGD recipe) the same everywhere."""

from __future__ import annotations

from typing import Any

from bountytree.models.spec import ModelSpec, parse_spec


def spec_of(name: str, input_shape: list[int], num_classes: int, layers: list[Any]) -> ModelSpec:
    return parse_spec(
        {
            "format": "bountytree/model@1",
            "name": name,
            "input_shape": input_shape,
            "num_classes": num_classes,
            "layers": layers,
            "training": {"optimizer": "sgd", "lr": 0.1, "batch_size": 32, "epochs": 1, "seed": 1},
        }
    )
