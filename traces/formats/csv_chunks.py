"""Streaming a CSV file as string columns, a block at a time, with the file's line numbers.

Line numbers stay exact: blank lines are read as rows of empty cells and dropped here (they are
not rows), and a row with the wrong number of fields goes to the report under its own line and
is left out of the count. (A quoted value spanning lines would shift the numbers after it;
trace files have none.)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from traces.bad_rows import BadRow, BadRowReport
from traces.errors import TraceError

_MAX_HEADER_CHARS = 1 << 16  # a longer first line is no trace header (binary files have none)


def header(path: Path) -> list[str]:
    """The names in the first line, stripped of blanks and quotes ([''] for an empty file)."""
    with path.open("r", encoding="utf-8-sig", errors="replace") as f:
        first = f.readline(_MAX_HEADER_CHARS)
    return [name.strip().strip('"').strip() for name in first.strip("\r\n").split(",")]


def has_columns(path: Path, columns: list[str]) -> bool:
    """Is ``path`` a CSV file whose header names all of ``columns``? (format sniffing)"""
    return path.suffix == ".csv" and set(columns) <= set(header(path))


def string_batches(path: Path, chunk_bytes: int, report: BadRowReport,
                   required: list[str]) -> Iterator[tuple[pa.RecordBatch, np.ndarray]]:
    """Record batches with every column as text, and the 1-based file line of each row."""
    names = header(path)
    _check_header(path, names, required)
    lines = _LineCounter(path, report)
    try:
        reader = pcsv.open_csv(
            path,
            # one thread: pyarrow then knows the line of each invalid row
            read_options=pcsv.ReadOptions(block_size=chunk_bytes, use_threads=False,
                                          skip_rows=1, column_names=names),
            parse_options=pcsv.ParseOptions(ignore_empty_lines=False,
                                            invalid_row_handler=lines.invalid),
            convert_options=pcsv.ConvertOptions(column_types={n: pa.string() for n in names}),
        )
        for batch in reader:
            file_lines = lines.take(batch.num_rows)
            blank = _blank(batch)
            if blank.any():
                batch, file_lines = batch.filter(pa.array(~blank)), file_lines[~blank]
            yield batch, file_lines
    except pa.ArrowException as exc:
        lines.raise_pending()
        raise TraceError(f"{path}: not a well-formed CSV file ({exc}); check that it is UTF-8 "
                         "text with commas between fields") from None


def numbers(column: pa.Array) -> np.ndarray:
    """Text to float64, NaN where the text is not a number (validation reports those rows)."""
    try:
        return pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)
    except pa.ArrowInvalid:  # some cell is no number: the slow way, cell by cell
        pass
    return pd.to_numeric(pd.Series(column.to_pandas(), copy=False), errors="coerce").to_numpy(
        dtype=np.float64
    )


def text(column: pa.Array) -> pa.Array:
    """Text with empty cells as nulls."""
    return pc.if_else(pc.equal(column, ""), pa.scalar(None, pa.string()), column)


def _check_header(path: Path, names: list[str], required: list[str]) -> None:
    if names == [""]:
        raise TraceError(f"{path}: the file is empty; a CSV trace starts with a header line "
                         f"naming its columns ({', '.join(required)})")
    missing = [c for c in required if c not in names]
    if missing:
        raise TraceError(
            f"{path}: line 1 (header): missing column(s) {missing}; the header has {names}. "
            "Give the right --format, or map the columns of a generic CSV"
        )
    twice = sorted({c for c in required if names.count(c) > 1})
    if twice:
        raise TraceError(f"{path}: line 1 (header): column(s) {twice} appear more than once; "
                         "rename or drop the copies")


def _blank(batch: pa.RecordBatch) -> np.ndarray:
    blank = np.ones(batch.num_rows, dtype=bool)
    for column in batch.columns:
        blank &= pc.fill_null(pc.equal(column, ""), False).to_numpy(zero_copy_only=False)
    return blank


class _LineCounter:
    """File lines of the rows pyarrow hands out: consecutive, but for the invalid rows it skipped."""

    def __init__(self, path: Path, report: BadRowReport) -> None:
        self.path = path
        self.report = report
        self.next_line = 2  # line 1 is the header
        self.skipped: list[int] = []  # lines of invalid rows not yet passed, ascending
        self.pending: BadRow | None = None

    def invalid(self, row) -> str:
        """pyarrow's handler for a row with the wrong number of fields."""
        bad = BadRow(str(self.path), row.number or 0, "(row)", row.text[:60],
                     f"has {row.actual_columns} field(s) where the header has {row.expected_columns}")
        if self.report.policy == "error":
            self.pending = bad  # an exception raised here would not get through pyarrow
            return "error"
        self.report.unreadable(bad)
        self.skipped.append(row.number)
        return "skip"

    def take(self, count: int) -> np.ndarray:
        start, end, passed = self.next_line, self.next_line + count, 0
        while passed < len(self.skipped) and self.skipped[passed] < end:
            passed, end = passed + 1, end + 1
        lines = np.arange(start, end, dtype=np.int64)
        if passed:
            lines = np.setdiff1d(lines, self.skipped[:passed])
        del self.skipped[:passed]
        self.next_line = end
        return lines

    def raise_pending(self) -> None:
        if self.pending is not None:
            self.report.unreadable(self.pending)
