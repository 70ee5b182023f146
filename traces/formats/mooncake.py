"""Mooncake traces (JSON lines): timestamp (ms), input_length, output_length, hash_ids.

``hash_ids`` holds one id per 512-token block of the prompt; equal ids mean identical content
up to and including that block, so they drive the simulator's prefix cache.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from traces.bad_rows import BadRowReport
from traces.formats.json_lines import records
from traces.formats.time_origin import TimeOrigin
from traces.schema import raw_table

FORMAT = "mooncake"
SOURCE_COLUMNS = {
    "arrival_s": "timestamp", "input_tokens": "input_length", "output_tokens": "output_length",
    "prefix_ids": "hash_ids",
}
PREFIX_BLOCK_TOKENS = 512
_FIELDS = {
    "timestamp": pa.float64(), "input_length": pa.float64(), "output_length": pa.float64(),
    "hash_ids": pa.list_(pa.int64()),
}


def sniff(path: Path, head: str) -> bool:
    return path.suffix in (".jsonl", ".json") and '"hash_ids"' in head and '"input_length"' in head


def read(path: Path, chunk_bytes: int, report: BadRowReport, **options: object) -> Iterator[pa.Table]:
    origin = TimeOrigin()
    for columns, lines in records(path, chunk_bytes, report, _FIELDS):
        stamps = columns["timestamp"].to_numpy(zero_copy_only=False)
        yield raw_table({
            "arrival_s": origin.since_first(stamps) / 1000.0,
            "input_tokens": columns["input_length"],
            "output_tokens": columns["output_length"],
            "request_id": pa.array(lines - 1).cast(pa.string()),
            "line": lines,
            "prefix_ids": columns["hash_ids"],
        })
