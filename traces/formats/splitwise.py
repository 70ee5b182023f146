"""Splitwise/Vidur request CSV: arrived_at (seconds), num_prefill_tokens, num_decode_tokens."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa

from traces.formats.csv_chunks import header, numbers, string_batches
from traces.bad_rows import BadRowReport
from traces.schema import raw_table

FORMAT = "splitwise"
SOURCE_COLUMNS = {
    "arrival_s": "arrived_at", "input_tokens": "num_prefill_tokens",
    "output_tokens": "num_decode_tokens",
}
PREFIX_BLOCK_TOKENS = 0


def sniff(path: Path, head: str) -> bool:
    return set(SOURCE_COLUMNS.values()) <= set(header(path)) if path.suffix == ".csv" else False


def read(path: Path, chunk_bytes: int, report: BadRowReport, **options: object) -> Iterator[pa.Table]:
    origin: float | None = None
    for batch, lines in string_batches(path, chunk_bytes, report, list(SOURCE_COLUMNS.values())):
        arrived = numbers(batch.column("arrived_at"))
        if origin is None and np.isfinite(arrived).any():
            origin = float(arrived[np.isfinite(arrived)][0])
        yield raw_table({
            "arrival_s": arrived - (origin or 0.0),
            "input_tokens": numbers(batch.column("num_prefill_tokens")),
            "output_tokens": numbers(batch.column("num_decode_tokens")),
            "request_id": pa.array(lines - 2).cast(pa.string()),
            "line": lines,
        })
