"""Normalized traces: the Parquet files ``servesim traces convert`` writes.

Their columns are exactly those of ``traces.schema`` (the optional ones when the source had
them), and the file's key-value metadata says how many tokens a prefix id covers
(``servesim.prefix_block_tokens``) and which format the rows came from
(``servesim.source_format``). ``line`` keeps the row's line in that original file.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from traces.bad_rows import BadRowReport
from traces.errors import TraceError
from traces.schema import COLUMNS, REQUIRED, raw_table

FORMAT = "normalized"
SOURCE_COLUMNS: dict[str, str] = {}  # the file's columns are the normalized ones
PREFIX_BLOCK_TOKENS = 0  # per file: see prefix_block_tokens()
BLOCK_TOKENS_KEY = b"servesim.prefix_block_tokens"
SOURCE_FORMAT_KEY = b"servesim.source_format"
_ROW_BYTES = 64  # for turning chunk_bytes into rows per batch


def sniff(path: Path, head: str) -> bool:
    try:
        with path.open("rb") as f:
            if f.read(4) != b"PAR1":
                return False
        return set(REQUIRED) <= set(pq.read_schema(path).names)
    except (pa.ArrowException, OSError):
        return False


def prefix_block_tokens(path: Path) -> int:
    """Tokens per prefix id, from the file's metadata (0: the trace has no prefix ids)."""
    schema = _schema(path)
    value = (schema.metadata or {}).get(BLOCK_TOKENS_KEY)
    if value is None:
        if "prefix_ids" in schema.names:
            raise TraceError(f"{path}: has prefix_ids but no {BLOCK_TOKENS_KEY.decode()} metadata; "
                             "write it with write_normalized (servesim traces convert)")
        return 0
    try:
        tokens = int(value)
    except ValueError:
        tokens = -1
    if tokens < 0:
        raise TraceError(f"{path}: {BLOCK_TOKENS_KEY.decode()} is {value!r}, not a whole number >= 0")
    return tokens


def read(path: Path, chunk_bytes: int, report: BadRowReport, **options: object) -> Iterator[pa.Table]:
    schema = _schema(path)
    missing = [c for c in REQUIRED if c not in schema.names]
    if missing:
        raise TraceError(f"{path}: not a normalized trace: no column(s) {missing}; "
                         f"its columns are {schema.names}")
    names = [c for c in COLUMNS if c in schema.names]
    try:
        for batch in pq.ParquetFile(path).iter_batches(
                batch_size=max(1, chunk_bytes // _ROW_BYTES), columns=names):
            columns = {name: batch.column(name) for name in names}
            columns["line"] = pc.fill_null(columns["line"], 0)  # error messages need a number
            yield raw_table(columns)
    except (pa.ArrowException, OSError) as exc:
        raise TraceError(f"{path}: cannot read it as a normalized trace ({exc})") from None


def write_normalized(chunks: Iterable[pa.Table], path: Path, prefix_block_tokens: int,
                     source_format: str) -> int:
    """Write validated normalized chunks (``Trace.chunks()``) as one Parquet file; rows written."""
    metadata = {BLOCK_TOKENS_KEY: str(int(prefix_block_tokens)).encode(),
                SOURCE_FORMAT_KEY: source_format.encode()}
    writer, rows = None, 0
    try:
        for chunk in chunks:
            if writer is None:
                schema = pa.schema([(name, COLUMNS[name]) for name in chunk.column_names],
                                   metadata=metadata)
                writer = pq.ParquetWriter(path, schema)
            writer.write_table(chunk.cast(writer.schema))
            rows += chunk.num_rows
        if writer is None:  # no rows: still a readable, empty trace
            schema = pa.schema(list(REQUIRED.items()), metadata=metadata)
            pq.write_table(schema.empty_table(), path)
    finally:
        if writer is not None:
            writer.close()
    return rows


def _schema(path: Path) -> pa.Schema:
    try:
        return pq.read_schema(path)
    except (pa.ArrowException, OSError) as exc:
        raise TraceError(f"{path}: not a Parquet file ({exc})") from None
