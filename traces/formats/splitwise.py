"""Splitwise/Vidur request CSV: arrived_at (seconds), num_prefill_tokens, num_decode_tokens."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from traces.bad_rows import BadRowReport
from traces.formats.csv_chunks import has_columns, numbers, string_batches
from traces.formats.time_origin import TimeOrigin
from traces.schema import raw_table

FORMAT = "splitwise"
SOURCE_COLUMNS = {
    "arrival_s": "arrived_at", "input_tokens": "num_prefill_tokens",
    "output_tokens": "num_decode_tokens",
}
PREFIX_BLOCK_TOKENS = 0


def sniff(path: Path, head: str) -> bool:
    return has_columns(path, list(SOURCE_COLUMNS.values()))


def read(path: Path, chunk_bytes: int, report: BadRowReport, **options: object) -> Iterator[pa.Table]:
    origin = TimeOrigin()
    for batch, lines in string_batches(path, chunk_bytes, report, list(SOURCE_COLUMNS.values())):
        arrived = numbers(batch.column("arrived_at"))
        yield raw_table({
            "arrival_s": origin.since_first(arrived),
            "input_tokens": numbers(batch.column("num_prefill_tokens")),
            "output_tokens": numbers(batch.column("num_decode_tokens")),
            "request_id": pa.array(lines - 2).cast(pa.string()),
            "line": lines,
        })
