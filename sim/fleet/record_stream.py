"""Where a streamed run's records go: a Parquet file written a chunk at a time, and a digest
of what its summary needs. Memory holds one chunk, however many requests the run has."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from sim.fleet.record_digest import RecordDigest

_INT, _FLOAT, _TEXT = pa.int64(), pa.float64(), pa.string()
SCHEMA = pa.schema([
    ("rid", _INT), ("replica", _INT), ("status", _TEXT), ("arrival_s", _FLOAT),
    ("first_scheduled_s", _FLOAT), ("first_token_s", _FLOAT), ("finish_s", _FLOAT),
    ("prompt_tokens", _INT), ("output_tokens", _INT), ("cached_tokens", _INT),
    ("preemptions", _INT), ("trace_id", _TEXT), ("endpoint", _TEXT), ("session", _INT),
    ("turn", _INT), ("ttft_s", _FLOAT), ("e2e_s", _FLOAT), ("queue_s", _FLOAT),
    ("tpot_s", _FLOAT),
])


class RecordStream:
    """Writes chunks of derived records (``sim.fleet.record``) to ``path`` and folds them into
    ``digest``. Rows are in the order requests ended, each chunk sorted by request id."""

    def __init__(self, path: Path, digest: RecordDigest) -> None:
        self.path = path
        self.digest = digest
        self.rows = 0
        self._writer = pq.ParquetWriter(path, SCHEMA)

    def write(self, records: pd.DataFrame) -> None:
        self._writer.write_table(pa.Table.from_pandas(records, schema=SCHEMA,
                                                      preserve_index=False))
        self.digest.fold(records)
        self.rows += len(records)

    def close(self) -> None:
        """Finish the file (again: nothing more to do)."""
        if self._writer.is_open:
            self._writer.close()
