"""Streaming a JSON-lines file in pieces of whole lines: pyarrow parses each piece, and a piece it
cannot take is parsed line by line instead, so that the rows it balks at are pointed at (or, under
the ``skip`` policy, dropped and counted) while the rest of the file still goes the fast way.

Blank lines are not rows; line numbers count them all the same.
"""

from __future__ import annotations

import codecs
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.json as pjson

from traces.bad_rows import BadRow, BadRowReport

_BLANK_LINE = re.compile(rb"(?:^|\n)[ \t\r]*(?:\n|\Z)")  # only JSON whitespace on it
_INT64 = (-(1 << 63), (1 << 63) - 1)


class _NotFast(Exception):
    """pyarrow read the piece, but not the way the fields need (say, numbers given as text)."""


def records(path: Path, chunk_bytes: int, report: BadRowReport,
            fields: dict[str, pa.DataType]) -> Iterator[tuple[dict[str, pa.Array], np.ndarray]]:
    """(columns, line numbers) per piece; missing fields and values of the wrong type are nulls."""
    first = 1
    for body in _pieces(path, chunk_bytes):
        lines = _line_numbers(body, first)
        if len(lines):
            try:
                columns = _fast(body, fields, len(lines))
            except (pa.ArrowException, _NotFast):
                columns, lines = _careful(body, first, path, report, fields)
            if len(lines):
                yield columns, lines
        first += body.count(b"\n") + 1


def _pieces(path: Path, chunk_bytes: int) -> Iterator[bytes]:
    """About ``chunk_bytes`` of whole lines at a time, without the last line's newline."""
    with path.open("rb") as f:
        piece = f.read(chunk_bytes)
        if piece.startswith(codecs.BOM_UTF8):
            piece = piece[len(codecs.BOM_UTF8):]
        while piece:
            if not piece.endswith(b"\n"):
                piece += f.readline()
            yield piece.removesuffix(b"\n")
            piece = f.read(chunk_bytes)


def _line_numbers(body: bytes, first: int) -> np.ndarray:
    if not _BLANK_LINE.search(body):
        return np.arange(first, first + body.count(b"\n") + 1, dtype=np.int64)
    filled = [bool(line.strip(b" \t\r")) for line in body.split(b"\n")]
    return first + np.flatnonzero(filled).astype(np.int64)


def _fast(body: bytes, fields: dict[str, pa.DataType], rows: int) -> dict[str, pa.Array]:
    table = pjson.read_json(io.BytesIO(body),
                            read_options=pjson.ReadOptions(block_size=len(body) + 1))
    if table.num_rows != rows:  # a line pyarrow split in two, or joined with the next
        raise _NotFast
    columns = {}
    for name, type_ in fields.items():
        if name not in table.column_names:
            columns[name] = pa.nulls(rows, type_)
            continue
        column = table.column(name).combine_chunks()
        if not _numeric_fits(column.type, type_):
            raise _NotFast
        columns[name] = column = column.cast(type_)
        if pa.types.is_list(type_) and column.flatten().null_count:
            raise _NotFast  # a null inside a list: that list is a bad value
    return columns


def _numeric_fits(have: pa.DataType, want: pa.DataType) -> bool:
    """Numbers must be JSON numbers (text or true/false in a number field is a bad value)."""
    if pa.types.is_list(want):
        return pa.types.is_null(have) or (
            pa.types.is_list(have) and _numeric_fits(have.value_type, want.value_type))
    if pa.types.is_integer(want) or pa.types.is_floating(want):
        return pa.types.is_null(have) or pa.types.is_integer(have) or pa.types.is_floating(have)
    return True


def _careful(body: bytes, first: int, path: Path, report: BadRowReport,
             fields: dict[str, pa.DataType]) -> tuple[dict[str, pa.Array], np.ndarray]:
    rows, lines = [], []
    for number, line in enumerate(body.split(b"\n"), start=first):
        if not line.strip(b" \t\r"):
            continue
        row = _parse(line.decode("utf-8", errors="replace"), number, path, report)
        if row is not None:
            rows.append(row)
            lines.append(number)
    columns = {name: pa.array([_value(r.get(name), t) for r in rows], type=t)
               for name, t in fields.items()}
    return columns, np.asarray(lines, dtype=np.int64)


def _parse(text: str, number: int, path: Path, report: BadRowReport) -> dict | None:
    try:
        row = json.loads(text)
        problem = None if isinstance(row, dict) else "not a JSON object"
    except json.JSONDecodeError as exc:
        problem = f"not valid JSON ({exc.msg})"
    except ValueError:  # an integer of more digits than Python converts
        problem = "not valid JSON (a number too long)"
    except RecursionError:
        problem = "not valid JSON (nested too deep)"
    if problem:
        report.unreadable(BadRow(str(path), number, "(row)", text.strip()[:60], problem))
        return None
    return row


def _value(value: object, type_: pa.DataType) -> object:
    """A field's value if it fits the column's type, else None (validation reports it)."""
    if pa.types.is_list(type_):
        items = [_int64(v) for v in value] if isinstance(value, list) else [None]
        return None if None in items else items
    if pa.types.is_integer(type_):
        return _int64(value)
    if pa.types.is_floating(type_):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        try:
            return float(value)
        except OverflowError:  # an integer beyond any float
            return None
    return None if value is None else str(value)


def _int64(value: object) -> int | None:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    ok = isinstance(value, int) and not isinstance(value, bool) and _INT64[0] <= value <= _INT64[1]
    return value if ok else None
