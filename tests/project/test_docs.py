"""The spec reference (docs/spec.md) says what the code does: every layer type with its arguments
and defaults, the recipe's fields, the limits. A change to one without the other fails here."""

from __future__ import annotations

import re

from bountytree.config import ROOT
from bountytree.models import fields, spec
from bountytree.models.layers import LAYERS

DOC = (ROOT / "docs" / "spec.md").read_text()


def _table(heading: str) -> dict[str, list[str]]:
    """The rows of the table under `## heading`, by their first cell (backticks stripped)."""
    section = DOC.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")][2:]  # no header
    rows = {}
    for line in lines:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        rows[cells[0].strip("`")] = cells[1:]
    return rows


def _shown(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def test_every_layer_type_and_its_arguments_are_documented():
    documented = _table("Layer types")
    assert list(documented) == list(LAYERS)
    for name, kind in LAYERS.items():
        text = documented[name][0]
        for arg, how in kind.args.items():
            assert f"`{arg}`" in text, (name, arg)
            if not how.required:
                shown = "the kernel size" if how.default is None else _shown(how.default)
                assert f"`{arg}` ({shown})" in text, (name, arg, how.default)
        if not kind.args:
            assert text == "none", name


def test_the_recipe_is_documented():
    documented = _table("Training recipe")
    assert list(documented) == list(spec.TRAINING)
    for name, how in spec.TRAINING.items():
        default = documented[name][0]
        assert default == ("required" if how.required else f"`{how.default}`".strip("`")) or (
            default.strip("`") == str(how.default)
        ), (name, default, how.default)


def test_the_limits_are_the_code_s():
    values = [row[0] for row in _table("Limits").values()]
    assert values == [
        f"{spec.MAX_SPEC_BYTES} bytes",
        str(spec.MAX_LAYERS),
        str(spec.MAX_PARAMS),
        str(fields.MAX_DIM),
        str(spec.MAX_CLASSES),
        str(spec.MAX_ACTIVATIONS),
    ]
    assert re.search(rf"1 to {spec.MAX_LAYERS} layers", DOC)
