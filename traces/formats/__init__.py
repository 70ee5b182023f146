"""Trace file formats. Each module has FORMAT (its name), SOURCE_COLUMNS (normalized column ->
the file's own column, for error messages), PREFIX_BLOCK_TOKENS (tokens per prefix id, 0 if
none), ``sniff(path, head)`` (is this file mine?) and ``read(path, chunk_bytes, report,
**options)`` (an iterator of raw normalized chunks, see ``traces.schema``).

Optional: OPTIONS (the reader options it takes; none without it), ``prefix_block_tokens(path)``
(when each file says it) and ``source_columns(**options)`` (when the options name the columns).
"""
