"""Azure LLM inference traces (2023 and 2024): TIMESTAMP, ContextTokens, GeneratedTokens.

The 2023 files have naive timestamps ("2023-11-16 18:15:46.6805900"); the 2024 ones carry a UTC
offset. Arrival times are seconds after the first row's timestamp.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from traces.bad_rows import BadRowReport
from traces.formats.csv_chunks import has_columns, numbers, string_batches
from traces.schema import raw_table

FORMAT = "azure"
SOURCE_COLUMNS = {
    "arrival_s": "TIMESTAMP", "input_tokens": "ContextTokens", "output_tokens": "GeneratedTokens",
}
PREFIX_BLOCK_TOKENS = 0


def sniff(path: Path, head: str) -> bool:
    return has_columns(path, list(SOURCE_COLUMNS.values()))


def read(path: Path, chunk_bytes: int, report: BadRowReport, **options: object) -> Iterator[pa.Table]:
    origin_ns: int | None = None
    for batch, lines in string_batches(path, chunk_bytes, report, list(SOURCE_COLUMNS.values())):
        stamps = pd.to_datetime(
            batch.column("TIMESTAMP").to_pandas(), utc=True, format="ISO8601", errors="coerce"
        )
        ns = stamps.to_numpy(dtype="datetime64[ns]").astype(np.int64)
        valid = ~np.isnat(stamps.to_numpy(dtype="datetime64[ns]"))
        if origin_ns is None and valid.any():
            origin_ns = int(ns[valid][0])
        arrival = np.where(valid, (ns - (origin_ns or 0)) / 1e9, np.nan)
        yield raw_table({
            "arrival_s": arrival,
            "input_tokens": numbers(batch.column("ContextTokens")),
            "output_tokens": numbers(batch.column("GeneratedTokens")),
            "request_id": pa.array(lines - 2).cast(pa.string()),
            "line": lines,
        })
