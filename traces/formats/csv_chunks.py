"""Streaming a CSV file as string columns, a block at a time, with the file's line numbers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pcsv

from traces.errors import TraceError


def header(path: Path) -> list[str]:
    with path.open("r", encoding="utf-8", errors="replace") as f:
        return [c.strip() for c in f.readline().strip().split(",")]


def string_batches(path: Path, chunk_bytes: int, required: list[str]) -> Iterator[tuple[pa.RecordBatch, np.ndarray]]:
    """Record batches with every column as text, and the 1-based file line of each row."""
    names = header(path)
    missing = [c for c in required if c not in names]
    if missing:
        raise TraceError(
            f"{path}: line 1 (header): missing column(s) {missing}; the header has {names}. "
            "Give the right --format, or map the columns of a generic CSV"
        )
    try:
        reader = pcsv.open_csv(
            path,
            read_options=pcsv.ReadOptions(block_size=chunk_bytes),
            convert_options=pcsv.ConvertOptions(column_types={n: pa.string() for n in names}),
        )
        next_line = 2  # line 1 is the header
        for batch in reader:
            lines = np.arange(next_line, next_line + batch.num_rows, dtype=np.int64)
            next_line += batch.num_rows
            yield batch, lines
    except pa.ArrowInvalid as exc:
        raise TraceError(f"{path}: not a well-formed CSV file ({exc}); check its quoting and "
                         "that every row has the header's number of fields") from None


def numbers(column: pa.Array) -> np.ndarray:
    """Text to float64, NaN where the text is not a number (validation reports those rows)."""
    return pd.to_numeric(pd.Series(column.to_pandas(), copy=False), errors="coerce").to_numpy(
        dtype=np.float64
    )
