"""Per-model export recipes (``export/<model_id>.json``): input size, opset, batch range, plugin ops.

The folder ships inside the package as ``fer_edge/recipes/`` (setup.py maps it); in a source
checkout it is read from ``export/`` at the repository root.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from pathlib import Path

from fer_edge.errors import ExportError, ModelNotFoundError
from fer_edge.package import BatchRange

SCHEMA = "fer_edge.export_recipe/1"
_PACKAGE_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Recipe:
    """How one zoo model is exported; command-line options override these values."""

    model_id: str
    variant: str = "edge"
    in_size: tuple[int, int] = (112, 112)
    opset: int = 17
    batch: BatchRange = field(default_factory=BatchRange)
    plugins: tuple[str, ...] = ()
    parity_atol: float = 1e-4


def recipe_dir() -> Path:
    """The installed copy (``fer_edge/recipes``) or the source checkout's ``export/``."""
    for candidate in (_PACKAGE_ROOT / "recipes", _PACKAGE_ROOT.parent / "export"):
        if candidate.is_dir():
            return candidate
    raise ExportError(f"no export recipes found under {_PACKAGE_ROOT}: reinstall fer_edge")


def list_recipes() -> list[str]:
    return sorted(p.stem for p in recipe_dir().glob("*.json"))


def load_recipe(model_id: str) -> Recipe:
    """Read ``<model_id>.json``; an unknown id raises with the nearest known ids."""
    path = recipe_dir() / f"{model_id}.json"
    if not path.is_file():
        near = difflib.get_close_matches(model_id, list_recipes(), n=3)
        hint = f"; did you mean {', '.join(near)}?" if near else f"; known: {', '.join(list_recipes())}"
        raise ModelNotFoundError(f"no export recipe for model {model_id!r}{hint}")
    data = json.loads(path.read_text())
    if data.get("schema") != SCHEMA:
        raise ExportError(f"{path} has schema {data.get('schema')!r}, expected {SCHEMA!r}")
    return Recipe(
        model_id=str(data["model_id"]),
        variant=str(data.get("variant", "edge")),
        in_size=(int(data["in_size"][0]), int(data["in_size"][1])),
        opset=int(data.get("opset", 17)),
        batch=BatchRange(**data.get("batch", {})),
        plugins=tuple(data.get("plugins", ())),
        parity_atol=float(data.get("parity_atol", 1e-4)),
    )
