"""Trace file formats. Each module has FORMAT (its name), SOURCE_COLUMNS (normalized column ->
the file's own column, for error messages), ``sniff(path, head)`` (is this file mine?) and
``read(path, chunk_bytes)`` (an iterator of raw normalized chunks, see ``traces.schema``)."""
