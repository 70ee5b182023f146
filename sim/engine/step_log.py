"""What each replica did, step by step, kept in aggregate so a long run stays cheap.

One row per *run* of identical steps (a single step, or a run of decode steps planned at once),
with the KV memory in use when it ends, split as ``sim.engine.kv_state`` describes.
The inter-token latency distribution is exactly the distribution of step durations, weighted by
how many sequences were decoding in each step; decode runs keep their closed-form step series
so the per-step durations can be expanded once, at the end.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sim.engine.batch import Batch
from sim.engine.kv_state import WASTE_COLUMNS
from sim.engine import row_blocks
from sim.engine.row_blocks import RowBlocks
from sim.engine.step_series import StepSeries
from sim.engine.step_totals import StepTotals

FLOAT_COLUMNS = ("start_s", "duration_s")
COLUMNS = [
    "start_s", "num_steps", "duration_s", "decode_seqs", "prefill_seqs", "prefill_tokens",
    "kv_used_start", "kv_used_end", *WASTE_COLUMNS,
]


class StepLog:
    """A replica's step rows. With ``totals`` (a streamed run) the rows are not kept: every
    block of them is folded into the totals and dropped, so memory does not grow with the run."""

    def __init__(self, totals: StepTotals | None = None) -> None:
        self._rows = RowBlocks(len(COLUMNS))
        self._block_rows = row_blocks.BLOCK_ROWS
        # decode steps as linear pieces: (first duration, slope, count, decoding sequences)
        self._itl = RowBlocks(4)
        self.totals = totals

    def add(self, start_s: float, timing: StepSeries | float, num_steps: int, batch: Batch,
            kv_used_start: int, memory_end: tuple[int, int, int, int, int]) -> None:
        """``memory_end``: blocks in use after the step, then the four parts of
        ``sim.engine.kv_state``."""
        total = timing if isinstance(timing, float) else timing.total
        rows = self._rows.rows
        rows.append((start_s, num_steps, total, batch.decode_seqs, batch.prefill_seqs,
                     batch.prefill_tokens, kv_used_start, *memory_end))
        if len(rows) >= self._block_rows:
            self._compact_rows()
        seqs = batch.decode_seqs - batch.leaving_seqs  # sequences that got a token
        if seqs:
            itl = self._itl.rows
            if isinstance(timing, float):
                itl.append((timing, 0.0, 1, seqs))
            else:
                for first, slope, count in timing.pieces:
                    itl.append((first, slope, count, seqs))
            if len(itl) >= self._block_rows:
                self._compact_itl()

    def _compact_rows(self) -> None:
        if self.totals is None:
            self._rows.compact()
        else:
            self.totals.fold(self._rows.take_pending())

    def _compact_itl(self) -> None:
        if self.totals is None:
            self._itl.compact()
        else:
            self.totals.fold_itl(*expand_pieces(self._itl.take_pending()))

    def close_totals(self) -> StepTotals:
        """A streamed log's totals, with the rows not folded yet folded in."""
        assert self.totals is not None, "only a streamed step log keeps totals"
        self._compact_rows()
        self._compact_itl()
        return self.totals

    def __len__(self) -> int:
        return len(self._rows)

    def frame(self) -> pd.DataFrame:
        """The rows as a frame (taking them out of the log, see ``steps_frame``)."""
        return steps_frame([self]).drop(columns="replica")

    def itl_pieces(self) -> np.ndarray:
        """Decode steps as rows (first duration, slope, count, decoding sequences)."""
        return self._itl.array()

    def itl_samples(self) -> tuple[np.ndarray, np.ndarray]:
        """(step durations, weights): one entry per decode step, weighted by its decoders."""
        return expand_pieces(self.itl_pieces())


def steps_frame(logs: list[StepLog]) -> pd.DataFrame:
    """One frame of several replicas' logs, with a ``replica`` column (their index in
    ``logs``). A long run's step table is the largest thing it makes, so the rows are taken out
    of the logs (which are left empty) and copied once, column by column."""
    tables = [log._rows.take() for log in logs]
    table = tables[0] if len(tables) == 1 else np.concatenate(tables)
    columns = {"replica": np.repeat(np.arange(len(tables)), [len(t) for t in tables])}
    del tables
    for j, name in enumerate(COLUMNS):
        columns[name] = table[:, j].astype(np.float64 if name in FLOAT_COLUMNS else np.int64)
    del table
    return pd.DataFrame(columns, copy=False)


def expand_pieces(pieces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(durations, weights), one entry per step, of rows (first, slope, count, weight)."""
    if len(pieces) == 0:
        return np.empty(0), np.empty(0)
    first, slope = pieces[:, 0], pieces[:, 1]
    count, weight = pieces[:, 2].astype(np.int64), pieces[:, 3]
    piece = np.repeat(np.arange(len(count)), count)
    index_in_piece = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
    return first[piece] + slope[piece] * index_in_piece, weight[piece]
