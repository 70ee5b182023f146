"""The example scenarios shipped in examples/, offered as starting points on the pages."""

from __future__ import annotations

from pathlib import Path

from sim.engine.errors import ScenarioError

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples"


def example_names(first: str | None = None) -> list[str]:
    """The example files by name, ``first`` (a page's default) ahead of the others."""
    names = sorted(path.name for path in EXAMPLES_DIR.glob("*.yaml"))
    return sorted(names, key=lambda name: name != first)


def example_text(name: str) -> str:
    path = EXAMPLES_DIR / name
    if path.parent != EXAMPLES_DIR or not path.is_file():
        raise ScenarioError(f"no bundled example named {name!r}; pick one of {example_names()}")
    return path.read_text(encoding="utf-8")
