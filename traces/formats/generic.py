"""Any CSV, JSON-lines or Parquet trace, read through a column mapping given as options:

    arrival        the column of arrival times                 (required)
    arrival_unit   s | ms | us | ns | datetime                 (default s)
    input, output  the columns of prompt and reply lengths     (required)
    request_id, session_id, model, endpoint, priority          (optional columns)
    turn           a session's turn number (needs session_id): rows of a session come in turn
                   order, and a turn's prompt re-sends the session's earlier prompts and replies

The suffix tells the kind: .csv; .jsonl (or .json with one object per line); .parquet or .pq.
Arrivals become seconds after the first row; ``datetime`` arrivals are date-time text or Parquet
timestamps, taken as UTC when they carry no offset. A priority that is not a whole number counts
as none. ``line`` is the file line (CSV, JSON lines) or the 1-based row (Parquet). Never
detected: ask for the format by name.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from itertools import islice
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from traces.bad_rows import BadRowReport
from traces.errors import TraceError
from traces.formats.csv_chunks import header, numbers, string_batches, text
from traces.formats.json_lines import records
from traces.formats.time_origin import TimeOrigin
from traces.schema import raw_table

FORMAT = "generic"
SOURCE_COLUMNS: dict[str, str] = {}  # the user's own mapping: see source_columns()
PREFIX_BLOCK_TOKENS = 0
_OPTION_OF = {  # normalized column -> the option naming the file's column
    "arrival_s": "arrival", "input_tokens": "input", "output_tokens": "output",
    "request_id": "request_id", "session_id": "session_id", "model": "model",
    "endpoint": "endpoint", "priority": "priority", "turn": "turn",
}
OPTIONS = ("arrival_unit", *_OPTION_OF.values())
_SECONDS_PER = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
_TEXTS = ("request_id", "session_id", "model", "endpoint")
_KINDS = {".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet", ".pq": "parquet"}
_ROW_BYTES = 64  # for turning chunk_bytes into Parquet rows per batch


def sniff(path: Path, head: str) -> bool:
    return False  # any file could be generic: only ever read when asked for


def source_columns(**options: object) -> dict[str, str]:
    """Normalized column -> the file's column, for error messages."""
    return {normal: options[key] for normal, key in _OPTION_OF.items() if options.get(key)}


def read(path: Path, chunk_bytes: int, report: BadRowReport, **options: object) -> Iterator[pa.Table]:
    mapping = _mapping(options)
    unit = options.get("arrival_unit", "s")
    if unit not in (*_SECONDS_PER, "datetime"):
        raise TraceError(f"option arrival_unit must be one of s, ms, us, ns, datetime; got {unit!r}")
    kind = _KINDS.get(path.suffix.lower())
    if kind is None:
        raise TraceError(f"{path}: the generic format reads {', '.join(_KINDS)} files; "
                         "rename the file to say which it is")
    batches = {"csv": _csv, "jsonl": _jsonl, "parquet": _parquet}[kind]
    origin = TimeOrigin()
    for columns, lines in batches(path, chunk_bytes, report, mapping, unit):
        seconds = _seconds(path, mapping["arrival_s"], columns["arrival_s"], unit)
        row_numbers = pa.array(lines - (2 if kind == "csv" else 1)).cast(pa.string())
        normal = {
            "arrival_s": origin.since_first(seconds),
            "input_tokens": _floats(path, mapping["input_tokens"], columns["input_tokens"]),
            "output_tokens": _floats(path, mapping["output_tokens"], columns["output_tokens"]),
            "request_id": row_numbers,
            "line": lines,
        }
        for name in _TEXTS:
            if name in columns:
                normal[name] = _text(path, mapping[name], columns[name])
        if "request_id" in columns:  # rows without their own id keep their number
            normal["request_id"] = pc.coalesce(normal["request_id"], row_numbers)
        if "priority" in columns:
            normal["priority"] = _priority(path, mapping["priority"], columns["priority"])
        if "turn" in columns:  # checked with its session by validation (traces.validate)
            normal["turn"] = _floats(path, mapping["turn"], columns["turn"])
        yield raw_table(normal)


def _mapping(options: dict) -> dict[str, str]:
    mapping = source_columns(**options)
    required = ("arrival_s", "input_tokens", "output_tokens")
    missing = [_OPTION_OF[n] for n in required if n not in mapping]
    if missing:
        raise TraceError(f"the generic format needs the column names as options arrival, input "
                         f"and output (and arrival_unit); missing: {', '.join(missing)}")
    for normal, column in mapping.items():
        if not isinstance(column, str):
            raise TraceError(f"option {_OPTION_OF[normal]} must be a column name, got {column!r}")
    if "turn" in mapping and "session_id" not in mapping:
        raise TraceError("option turn numbers the turns of a session: also give option "
                         "session_id, the column naming each row's session")
    return mapping


def _check_columns(path: Path, names: list[str], mapping: dict[str, str]) -> None:
    for normal, column in mapping.items():
        if column not in names:
            raise TraceError(f"{path}: no column {column!r} (option {_OPTION_OF[normal]}); "
                             f"the file's columns are {names}")


def _csv(path, chunk_bytes, report, mapping, unit):
    names = header(path)
    if names != [""]:  # an empty file: string_batches says so
        _check_columns(path, names, mapping)
    for batch, lines in string_batches(path, chunk_bytes, report, sorted(set(mapping.values()))):
        yield {normal: batch.column(column) for normal, column in mapping.items()}, lines


def _jsonl(path, chunk_bytes, report, mapping, unit):
    first = _first_object(path)
    if first is not None:
        _check_columns(path, list(first), mapping)
    fields = {column: pa.string() for column in mapping.values()}
    for normal in ("input_tokens", "output_tokens", "priority", "turn"):
        if normal in mapping:
            fields[mapping[normal]] = pa.float64()
    if unit != "datetime":
        fields[mapping["arrival_s"]] = pa.float64()
    for columns, lines in records(path, chunk_bytes, report, fields):
        yield {normal: columns[column] for normal, column in mapping.items()}, lines


def _first_object(path: Path) -> dict | None:
    """The first row, to check the columns by (None if it is no JSON object: validation says so)."""
    with path.open("r", encoding="utf-8-sig", errors="replace") as f:
        for line in islice(f, 1000):
            if line.strip():
                try:
                    row = json.loads(line)
                except (ValueError, RecursionError):  # ValueError: also too many digits
                    return None
                return row if isinstance(row, dict) else None
    return None


def _parquet(path, chunk_bytes, report, mapping, unit):
    try:
        file = pq.ParquetFile(path)
        _check_columns(path, file.schema_arrow.names, mapping)
        done = 0
        for batch in file.iter_batches(batch_size=max(1, chunk_bytes // _ROW_BYTES),
                                       columns=sorted(set(mapping.values()))):
            lines = np.arange(done + 1, done + 1 + batch.num_rows, dtype=np.int64)
            done += batch.num_rows
            yield {normal: batch.column(column) for normal, column in mapping.items()}, lines
    except (pa.ArrowException, OSError) as exc:
        raise TraceError(f"{path}: cannot read it as Parquet ({exc})") from None


def _seconds(path: Path, name: str, column: pa.Array, unit: str) -> np.ndarray:
    type_ = column.type
    temporal = pa.types.is_timestamp(type_) or pa.types.is_date(type_)
    if unit != "datetime":
        if temporal:
            raise TraceError(f"{path}: column {name!r} holds date-times: give arrival_unit datetime")
        return _floats(path, name, column) * _SECONDS_PER[unit]
    if temporal:
        ns = column.cast(pa.timestamp("ns", tz=getattr(type_, "tz", None))).view(pa.int64())
        return ns.to_numpy(zero_copy_only=False) / 1e9
    if not _is_text(type_):
        raise TraceError(f"{path}: column {name!r} holds {type_}, not date-times; for numbers "
                         "give arrival_unit s, ms, us or ns")
    stamps = pd.to_datetime(pd.Series(column.cast(pa.string()).to_pandas(), dtype=object),
                            utc=True, format="mixed", errors="coerce")
    values = stamps.to_numpy(dtype="datetime64[ns]")
    return np.where(np.isnat(values), np.nan, values.astype(np.int64) / 1e9)


def _floats(path: Path, name: str, column: pa.Array) -> np.ndarray:
    type_ = column.type
    if (pa.types.is_integer(type_) or pa.types.is_floating(type_) or pa.types.is_null(type_)
            or pa.types.is_decimal(type_)):
        return column.cast(pa.float64()).to_numpy(zero_copy_only=False)
    if _is_text(type_):
        return numbers(column.cast(pa.string()))
    raise TraceError(f"{path}: column {name!r} holds {type_}, not numbers")


def _text(path: Path, name: str, column: pa.Array) -> pa.Array:
    try:
        return text(column.cast(pa.string()))
    except pa.ArrowNotImplementedError:
        raise TraceError(f"{path}: column {name!r} holds {column.type}, not text") from None


def _priority(path: Path, name: str, column: pa.Array) -> pa.Array:
    values = _floats(path, name, column)
    whole = np.isfinite(values) & (values == np.floor(values)) & (np.abs(values) < 2.0**63)
    return pa.array(np.where(whole, values, 0).astype(np.int64), mask=~whole)


def _is_text(type_: pa.DataType) -> bool:
    return (pa.types.is_string(type_) or pa.types.is_large_string(type_)
            or pa.types.is_dictionary(type_))
