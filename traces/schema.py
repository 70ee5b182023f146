"""The normalized form every trace reader produces: one pyarrow table per chunk.

    arrival_s      float64  seconds since the trace's first request (sorted, >= 0)
    input_tokens   int64    prompt length, >= 1
    output_tokens  int64    reply length, >= 1
    request_id     string   the trace's own id of the request (its row number when it has none),
                            so that results join back to the log
    line           int64    where the row is in the source file (1-based), for error messages
  optional, when the format has them:
    session_id     string
    turn           int64    the row's turn in its session (from 1; with session_id): the prompt
                            re-sends the session's earlier turns, prompts and replies
    model          string
    endpoint       string
    priority       int64
    prefix_ids     list<int64>  content ids of the prompt's leading blocks of
                                `prefix_block_tokens` tokens each; equal ids = identical prefix
                                content up to and including that block (chained, as Mooncake's
                                hash_ids are)
"""

from __future__ import annotations

import pyarrow as pa

REQUIRED = {
    "arrival_s": pa.float64(),
    "input_tokens": pa.int64(),
    "output_tokens": pa.int64(),
    "request_id": pa.string(),
    "line": pa.int64(),
}
OPTIONAL = {
    "session_id": pa.string(),
    "turn": pa.int64(),
    "model": pa.string(),
    "endpoint": pa.string(),
    "priority": pa.int64(),
    "prefix_ids": pa.list_(pa.int64()),
}
COLUMNS = {**REQUIRED, **OPTIONAL}


# What readers hand to validation: lengths still as floats, NaN where the file had no number.
RAW_TYPES = {**COLUMNS, "input_tokens": pa.float64(), "output_tokens": pa.float64(),
             "turn": pa.float64()}


def raw_table(columns: dict[str, object]) -> pa.Table:
    """A reader's chunk in normalized column order, lengths as float64 (validated later)."""
    unknown = set(columns) - set(COLUMNS)
    if unknown:
        raise ValueError(f"not normalized trace columns: {sorted(unknown)}")
    missing = set(REQUIRED) - set(columns)
    if missing:
        raise ValueError(f"normalized trace lacks {sorted(missing)}")
    names = [name for name in COLUMNS if name in columns]
    arrays = [_array(columns[name], RAW_TYPES[name]) for name in names]
    return pa.Table.from_arrays(arrays, names=names)


def _array(values: object, type_: pa.DataType) -> pa.Array:
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        return values.cast(type_)
    return pa.array(values, type=type_, from_pandas=True)
