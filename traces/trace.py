"""Opening a trace: find its format, stream validated normalized chunks, count what was dropped."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import pyarrow as pa

from traces.bad_rows import BadRowReport, Policy
from traces.bundled import resolve_name
from traces.errors import TraceError
from traces.formats import (azure, burstgpt, generic, llmservingsim, mooncake, normalized,
                            splitwise, vllm_bench)
from traces.validate import ChunkValidator

FORMATS: dict[str, ModuleType] = {
    m.FORMAT: m
    for m in (azure, burstgpt, generic, llmservingsim, mooncake, normalized, splitwise, vllm_bench)
}
DEFAULT_CHUNK_BYTES = 2 << 20  # ~50k-100k rows of a CSV trace per chunk; pyarrow reads ahead


@dataclass
class Trace:
    """A trace file, read lazily: ``chunks()`` streams it; ``read()`` loads it whole."""

    path: Path
    format: str
    on_bad_rows: Policy = "error"
    chunk_bytes: int = DEFAULT_CHUNK_BYTES
    options: dict = field(default_factory=dict)  # format-specific reader options
    report: BadRowReport = field(init=False)

    def __post_init__(self) -> None:
        self.report = BadRowReport(self.on_bad_rows)
        known = getattr(FORMATS[self.format], "OPTIONS", ())
        unknown = sorted(set(self.options) - set(known))
        if unknown:
            raise TraceError(f"unknown option(s) {unknown} for the {self.format} format; it takes "
                             f"{', '.join(known) if known else 'none'}")

    @property
    def prefix_block_tokens(self) -> int:
        """Tokens covered by one of the trace's prefix ids (0: the trace has none)."""
        module = FORMATS[self.format]
        if hasattr(module, "prefix_block_tokens"):  # a file that says so itself
            return module.prefix_block_tokens(self.path)
        return module.PREFIX_BLOCK_TOKENS

    @property
    def source_columns(self) -> dict[str, str]:
        """Normalized column -> the file's own column, for error messages."""
        module = FORMATS[self.format]
        if hasattr(module, "source_columns"):  # a mapping the user gave
            return module.source_columns(**self.options)
        return module.SOURCE_COLUMNS

    def chunks(self) -> Iterator[pa.Table]:
        """Validated normalized chunks in file order (see ``traces.schema``)."""
        self.report = BadRowReport(self.on_bad_rows)
        module = FORMATS[self.format]
        validate = ChunkValidator(str(self.path), self.report, self.source_columns)
        for raw in module.read(self.path, self.chunk_bytes, self.report, **self.options):
            table = validate(raw)
            if table.num_rows:
                yield table

    def read(self) -> pa.Table:
        tables = list(self.chunks())
        if not tables:
            raise TraceError(f"{self.path}: no usable rows ({self.report.summary()})")
        return pa.concat_tables(tables)


def open_trace(source: str | Path, format: str | None = None, *, on_bad_rows: Policy = "error",
               chunk_bytes: int = DEFAULT_CHUNK_BYTES, options: dict | None = None) -> Trace:
    """A trace by bundled name (``azure-conv-2023``) or path; the format is detected if not given."""
    path = resolve_name(str(source)) or Path(source)
    if not path.is_file():
        raise TraceError(
            f"no trace file at {source}; give a path or a bundled name "
            f"({', '.join(_bundled_names())})"
        )
    if format is None:
        format = detect_format(path)
    elif format not in FORMATS:
        raise TraceError(f"unknown trace format {format!r}; known: {', '.join(sorted(FORMATS))}")
    return Trace(path, format, on_bad_rows, chunk_bytes, dict(options or {}))


def detect_format(path: Path) -> str:
    """The one format whose sniffer accepts the file; an error naming the candidates otherwise."""
    with path.open("r", encoding="utf-8", errors="replace") as f:
        head = f.read(4096)
    matches = [name for name, module in FORMATS.items() if module.sniff(path, head)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise TraceError(
            f"{path}: cannot tell the trace format from its first lines; give it explicitly "
            f"(one of {', '.join(sorted(FORMATS))}) or map the columns of a generic file"
        )
    raise TraceError(f"{path}: the format is ambiguous ({', '.join(matches)}); give it explicitly")


def _bundled_names() -> list[str]:
    from traces.bundled import names

    return names()
