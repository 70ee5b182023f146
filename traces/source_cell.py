"""The text a trace file holds in one cell, read back for an error message.

Readers turn a count that is not a number ("abc", an empty cell) into a missing value, so the
validator no longer has the text; a message must still quote it ("token count is missing or
not a number (got 'abc')", not "(got None)"). Only the rows a message names are read back,
from the file itself, by line and column.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

MAX_CHARS = 80  # of a cell quoted in a message


def cell_text(path: str, line: int, column: str) -> str | None:
    """The cell of ``column`` on the file's ``line`` (1-based, the header being line 1 of a
    CSV file) as written, cut to MAX_CHARS; None when it cannot be told (a binary format, no
    such line or column)."""
    file = Path(path)
    if file.suffix not in (".csv", ".jsonl", ".json") or line < 1:
        return None
    try:
        with file.open("r", encoding="utf-8-sig", errors="replace", newline="") as f:
            first = f.readline()
            text = first
            for _ in range(line - 1):
                text = f.readline()
                if not text:
                    return None
    except OSError:
        return None
    if file.suffix == ".csv":
        names = next(csv.reader([first]), [])
        cells = next(csv.reader([text]), [])
        names = [name.strip().strip('"').strip() for name in names]
        if column not in names or names.index(column) >= len(cells):
            return None
        return cells[names.index(column)][:MAX_CHARS]
    try:
        record = json.loads(text)
    except ValueError:
        return None
    if not isinstance(record, dict) or column not in record:
        return None
    value = record[column]
    return (value if isinstance(value, str) else json.dumps(value))[:MAX_CHARS]
