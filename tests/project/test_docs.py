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


# ── every "`NAME` (value)" the docs state is the code's value ────────────────────────────────

_STATED = re.compile(r"`([A-Z][A-Z0-9_]{2,})` \(([^)]{1,60})\)")
_UNITS = {"day": 86_400, "days": 86_400, "ETH": 10**18, "ether": 10**18}


def _number(text: str) -> float | None:
    """A value as the docs or the code write it: 4, 100,000, 100_000, 1e-3, 2^20, 2**20,
    10**12, 1 << 20, 7 days, 0.001 ETH, 1e15, float(2**20); None when it is not a number."""
    text = text.strip().rstrip(";")
    text = re.sub(r"^float\((.*)\)$", r"\1", text)
    unit = 1
    if (parts := text.rsplit(" ", 1)) and len(parts) == 2 and parts[1] in _UNITS:
        text, unit = parts[0], _UNITS[parts[1]]
    text = text.replace(",", "").replace("_", "").replace("^", "**").replace(" ", "")
    if not re.fullmatch(r"[0-9.e+\-*<]+", text):
        return None
    if m := re.fullmatch(r"(\d+)<<(\d+)", text):
        return float(int(m[1]) << int(m[2])) * unit
    if m := re.fullmatch(r"([0-9.e\-]+)\*\*(\d+)", text):
        return float(m[1]) ** int(m[2]) * unit
    try:
        return float(text) * unit
    except ValueError:
        return None


def _defined() -> dict[str, float]:
    """Module-level constants of the product's Python and the contracts (tests excluded)."""
    found: dict[str, float] = {}
    sources = [
        *ROOT.glob("contracts/**/*.sol"),
        *(
            path
            for folder in ("bountytree", "oracle", "trainer", "custodian", "app", "demo")
            for path in (ROOT / folder).rglob("*.py")
        ),
    ]
    for path in sources:
        for m in re.finditer(
            r"^\s*(?:uint\d*\s+(?:public\s+|internal\s+|private\s+)?constant\s+)?"
            r"([A-Z][A-Z0-9_]{2,})\s*(?::\s*\w+\s*)?=\s*([^\n#/]+)",
            path.read_text(),
            re.M,
        ):
            if (value := _number(m[2])) is not None:
                found.setdefault(m[1], value)
    return found


def test_every_constant_the_docs_state_is_the_code_s():
    code = _defined()
    stated = []
    for doc in [*ROOT.glob("docs/*.md"), ROOT / "README.md"]:
        for m in _STATED.finditer(doc.read_text()):
            name, value = m[1], _number(m[2].split(",")[0] if " " in m[2] else m[2])
            if name in code and value is not None:
                stated.append((doc.name, name, value))
                assert value == code[name], (
                    f"{doc.name}: {name} ({m[2]}) but the code has {code[name]}"
                )
    names = {name for _, name, _ in stated}
    # the check reads what it should: these are stated in the docs and defined in the code
    assert {"AUDIT_WINDOW", "FINALIZE_GRACE", "MAX_ATTRIBUTION_REPLAYS", "SAFE_LIMIT"} <= names


# ── the README's folder table names every folder and module ──────────────────────────────────


def test_the_readme_folder_table_names_every_folder_and_module():
    """A newcomer reads the architecture from that table: every tracked top-level folder has a
    row, and every module of the core, the roles, the demo and the benchmarks is named in its
    folder's row (the app's pages and the command modules, a file each, by their folder)."""
    import subprocess

    readme = (ROOT / "README.md").read_text()
    rows = {
        line.split("|")[1].strip().strip("`").split("/")[0]: line
        for line in readme.splitlines()
        if line.startswith("| `")
    }
    files = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    folders = {f.split("/")[0] for f in files if "/" in f and not f.startswith(".")}
    assert sorted(folders - set(rows)) == []
    unnamed = [
        f
        for f in files
        if f.endswith(".py")
        and f.split("/")[0]
        in {"bountytree", "trainer", "oracle", "custodian", "app", "demo", "bench"}
        and not f.endswith(("__init__.py", "__main__.py"))
        and not f.startswith(("app/pages/", "bountytree/commands/"))
        and f"`{f.rsplit('/', 1)[1]}`" not in rows[f.split("/")[0]]
    ]
    assert unnamed == []
