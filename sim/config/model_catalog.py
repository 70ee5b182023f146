"""Find a model's shape by catalog id or by path to a Hugging Face ``config.json``.

The catalog is a folder of ``config.json`` files (``sim/catalog/models/<id>.json``), so adding
a model means dropping its config file in; no code changes. Lookup order for a name:

1. an existing path: a ``config.json`` file, or a directory holding one;
2. ``models_dir`` (if given), then the directory in ``$SERVESIM_MODELS_DIR`` (if set):
   ``<id>.json`` or ``<id>/config.json``;
3. the bundled catalog.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path

from sim.engine.errors import ScenarioError
from sim.engine.model_spec import ModelSpec

CATALOG_DIR = Path(__file__).parents[1] / "catalog" / "models"
MODELS_DIR_ENV = "SERVESIM_MODELS_DIR"


def list_models() -> list[str]:
    """Ids of the bundled catalog models, sorted."""
    return sorted(p.stem for p in CATALOG_DIR.glob("*.json"))


def load_model(name_or_path: str, models_dir: str | Path | None = None) -> ModelSpec:
    """The spec of a catalog id or of a config.json path (see the module docstring)."""
    path = _resolve(name_or_path, models_dir)
    if path is None:
        raise ScenarioError(
            f"model {name_or_path!r} is not in the catalog; known ids: "
            f"{', '.join(list_models())}. To add a model, give the path to its Hugging Face "
            f"config.json, or put it in a models directory as <id>.json or <id>/config.json "
            f"and point {MODELS_DIR_ENV} at that directory"
        )
    model_id = path.parent.name if path.name == "config.json" else path.stem
    # The modification time is part of the cache key, so an edited file is read again.
    return _load_file(str(path.resolve()), model_id, path.stat().st_mtime_ns)


def _resolve(name: str, models_dir: str | Path | None) -> Path | None:
    given = Path(name).expanduser()
    if given.is_dir() and (given / "config.json").is_file():
        return given / "config.json"
    if given.is_file():
        return given
    search = [Path(d).expanduser() for d in (models_dir, os.environ.get(MODELS_DIR_ENV)) if d]
    for folder in [*search, CATALOG_DIR]:
        for candidate in (folder / f"{name}.json", folder / name / "config.json"):
            if candidate.is_file():
                return candidate
    return None


@lru_cache(maxsize=128)
def _load_file(path: str, model_id: str, mtime_ns: int) -> ModelSpec:
    """Parse one config file; cached because scenarios load the same model many times."""
    try:
        config = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ScenarioError(
            f"model {model_id!r}: cannot read {path} as JSON ({exc}): "
            "give a Hugging Face config.json"
        ) from None
    if not isinstance(config, dict):
        raise ScenarioError(
            f"model {model_id!r}: {path} holds a JSON {type(config).__name__}, not an object: "
            "give a Hugging Face config.json"
        )
    return ModelSpec.from_hf_config(model_id, config)
