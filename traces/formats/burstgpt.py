"""BurstGPT (HPMLL/BurstGPT): a GPT-3.5/GPT-4 service log on Azure, as CSV.

    Timestamp, Model, Request tokens, Response tokens, Total tokens, Log Type

``Timestamp`` is in seconds (from midnight of the log's first day); arrival times are seconds
after the first row. The newer layout adds ``Session ID`` (also spelled ``SessionID``) and
``Elapsed time``; the session becomes ``session_id``, ``Model`` becomes ``model`` and
``Log Type`` ("Conversation log" or "API log") becomes ``endpoint``. ``Elapsed time`` and
``Total tokens`` are not needed. Failed requests are logged with 0 response tokens: validation
reports them as bad rows (or drops and counts them under ``skip``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from traces.bad_rows import BadRowReport
from traces.formats.csv_chunks import has_columns, header, numbers, string_batches, text
from traces.formats.time_origin import TimeOrigin
from traces.schema import raw_table

FORMAT = "burstgpt"
SOURCE_COLUMNS = {
    "arrival_s": "Timestamp", "input_tokens": "Request tokens", "output_tokens": "Response tokens",
    "model": "Model", "endpoint": "Log Type", "session_id": "Session ID",
}
PREFIX_BLOCK_TOKENS = 0
_REQUIRED = ["Timestamp", "Request tokens", "Response tokens"]
_SESSION_SPELLINGS = ("Session ID", "SessionID")


def sniff(path: Path, head: str) -> bool:
    return has_columns(path, _REQUIRED)


def read(path: Path, chunk_bytes: int, report: BadRowReport, **options: object) -> Iterator[pa.Table]:
    names = header(path)
    texts = {"model": "Model", "endpoint": "Log Type"}
    session = next((name for name in _SESSION_SPELLINGS if name in names), None)
    if session:
        texts["session_id"] = session
    texts = {normal: column for normal, column in texts.items() if column in names}
    origin = TimeOrigin()
    for batch, lines in string_batches(path, chunk_bytes, report, _REQUIRED):
        stamps = numbers(batch.column("Timestamp"))
        yield raw_table({
            "arrival_s": origin.since_first(stamps),
            "input_tokens": numbers(batch.column("Request tokens")),
            "output_tokens": numbers(batch.column("Response tokens")),
            "request_id": pa.array(lines - 2).cast(pa.string()),
            "line": lines,
            **{normal: text(batch.column(column)) for normal, column in texts.items()},
        })
