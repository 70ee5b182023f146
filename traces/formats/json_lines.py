"""Streaming a JSON-lines file: pyarrow's reader, with a line-by-line fallback that can point at
(or, under the ``skip`` policy, drop and count) the rows pyarrow cannot take."""

from __future__ import annotations

import json
from collections.abc import Iterator
from itertools import islice
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.json as pjson

from traces.bad_rows import BadRow, BadRowReport

_FALLBACK_ROWS = 50_000


def records(path: Path, chunk_bytes: int, report: BadRowReport,
            fields: dict[str, pa.DataType]) -> Iterator[tuple[dict[str, pa.Array], np.ndarray]]:
    """(columns, line numbers) per chunk; missing fields and wrong types become nulls."""
    done = [0]  # lines already handed out
    try:
        yield from _fast(path, chunk_bytes, fields, done)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        # pyarrow stops at the first row it cannot take; go on line by line from there
        yield from _careful(path, report, fields, start=done[0] + 1)


def _fast(path: Path, chunk_bytes: int, fields: dict[str, pa.DataType], done: list[int]):
    reader = pjson.open_json(path, read_options=pjson.ReadOptions(block_size=chunk_bytes))
    for batch in reader:
        lines = np.arange(done[0] + 1, done[0] + 1 + batch.num_rows, dtype=np.int64)
        columns = {
            name: batch.column(name).cast(type_) if name in batch.schema.names
            else pa.nulls(batch.num_rows, type_)
            for name, type_ in fields.items()
        }
        done[0] += batch.num_rows
        yield columns, lines


def _careful(path: Path, report: BadRowReport, fields: dict[str, pa.DataType], start: int):
    with path.open("r", encoding="utf-8", errors="replace") as f:
        numbered = islice(enumerate(f, start=1), start - 1, None)
        while block := list(islice(numbered, _FALLBACK_ROWS)):
            rows, lines = [], []
            for number, text in block:
                row = _parse(text, number, path, report)
                if row is not None:
                    rows.append(row)
                    lines.append(number)
            if rows:
                columns = {name: pa.array([_value(r.get(name), t) for r in rows], type=t)
                           for name, t in fields.items()}
                yield columns, np.asarray(lines, dtype=np.int64)


def _parse(text: str, number: int, path: Path, report: BadRowReport) -> dict | None:
    if not text.strip():
        return None
    try:
        row = json.loads(text)
    except json.JSONDecodeError as exc:
        report.bad(BadRow(str(path), number, "(row)", text.strip()[:60], f"not valid JSON ({exc.msg})"))
        return None
    if not isinstance(row, dict):
        report.bad(BadRow(str(path), number, "(row)", text.strip()[:60], "not a JSON object"))
        return None
    return row


def _value(value: object, type_: pa.DataType) -> object:
    """A field's value if it fits the column's type, else None (validation reports it)."""
    if pa.types.is_list(type_):
        ok = isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool)
                                             for v in value)
        return value if ok else None
    if pa.types.is_integer(type_) or pa.types.is_floating(type_):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        return float(value) if pa.types.is_floating(type_) else (
            int(value) if float(value).is_integer() else None)
    return None if value is None else str(value)
