"""Public traces shipped with servesim, addressable by short name (see PROVENANCE.md here)."""

from __future__ import annotations

from pathlib import Path

_HERE = Path(__file__).resolve().parent
BUNDLED = {
    "azure-conv-2023": "azure-conv-2023.csv",
    "azure-code-2023": "azure-code-2023.csv",
    "mooncake-conversation": "mooncake-conversation.jsonl",
    "mooncake-synthetic": "mooncake-synthetic.jsonl",
    "splitwise-conv": "splitwise-conv.csv",
    "splitwise-code": "splitwise-code.csv",
}


# Length tables of real requests (no timestamps), used by `dist: empirical` lengths.
LENGTH_TABLES = {"sharegpt": "sharegpt-lengths.csv", "arxiv": "arxiv-lengths.csv"}


def length_table_path(name: str) -> Path:
    return _HERE / LENGTH_TABLES[name]


def names() -> list[str]:
    return sorted(BUNDLED)


def resolve_name(name: str) -> Path | None:
    """The file of a bundled trace, or None when ``name`` is not one."""
    file = BUNDLED.get(name)
    return _HERE / file if file else None


def sources_and_licenses() -> dict[str, tuple[str, str]]:
    """name -> (source, license), read from the table in PROVENANCE.md beside this file."""
    text = (_HERE / "PROVENANCE.md").read_text(encoding="utf-8")
    sources = {}
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) >= 4 and cells[0].startswith("`") and cells[0].endswith("`"):
            sources[cells[0].strip("`")] = (cells[2], cells[3].split(" (")[0])
    return sources
