"""An exported model folder read back (`bountytree serve DIR`): the spec from `config.json`, the
weights from `model.safetensors` through the checked loader, and what the model card's
`bountytree` block says of them, checked against the weights themselves. No chain, no store:
a folder that was exported, copied or downloaded serves as it is, as other model servers serve
a model directory."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bountytree.errors import UserError
from bountytree.market.validation import data_digest
from bountytree.models import spec as specs
from bountytree.models import weights as weights_io
from bountytree.storage.cid import cid_from_digest

MAX_CARD_BYTES = 1 << 20  # a model card with its front matter; ours are a few kB


@dataclass(frozen=True)
class FolderModel:
    spec: specs.ModelSpec
    weights: bytes
    weights_cid: str
    task_id: int  # 0 when the folder has no card naming them
    node_id: int

    @property
    def name(self) -> str:
        """The name the server publishes: as `serve --task` names the same model."""
        return f"task-{self.task_id}" if self.task_id else "model"

    @property
    def version(self) -> str:
        return str(self.node_id) if self.node_id else self.weights_cid


def _read(path: Path, limit: int, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError as exc:
        raise UserError(f"{path}: {exc.strerror or exc} ({what})") from None
    if len(data) > limit:
        raise UserError(f"{path}: larger than {limit} bytes ({what})")
    return data


def _card(folder: Path) -> dict[str, Any]:
    """The card's `bountytree` block, or {} without a card (a folder made by hand)."""
    path = folder / "README.md"
    if not path.exists():
        return {}
    import yaml  # type: ignore[import-untyped]

    text = _read(path, MAX_CARD_BYTES, "the model card").decode(errors="replace")
    match = re.match(r"---\n(.*?)\n---\n", text, re.S)
    try:
        header = yaml.safe_load(match[1]) if match else None
    except yaml.YAMLError:
        raise UserError(f"{path}: its front matter is not YAML") from None
    block = header.get("bountytree") if isinstance(header, dict) else None
    return block if isinstance(block, dict) else {}


def _count(block: dict[str, Any], key: str) -> int:
    value = block.get(key, 0)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def load_folder(folder: str | Path) -> FolderModel:
    """The model in an exported folder; a UserError names the first thing that is wrong."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: not a folder (`bountytree model export --out` writes one)")
    spec = specs.load_spec(_read(folder / "config.json", specs.MAX_SPEC_BYTES, "the model spec"))
    raw = _read(folder / "model.safetensors", weights_io.max_bytes(spec), "the weights")
    weights_io.load(raw, spec, str(folder / "model.safetensors"))  # names, shapes, finite
    cid = cid_from_digest(data_digest(raw))
    block = _card(folder)
    named = block.get("weights_cid")
    if named is not None and named != cid:
        raise UserError(
            f"{folder}: model.safetensors is not the weights its model card names "
            f"({named}; these are {cid})"
        )
    return FolderModel(spec, raw, cid, _count(block, "task"), _count(block, "node"))
