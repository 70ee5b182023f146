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
from sim.engine.step_series import StepSeries

COLUMNS = [
    "start_s", "num_steps", "duration_s", "decode_seqs", "prefill_seqs", "prefill_tokens",
    "kv_used_start", "kv_used_end", *WASTE_COLUMNS,
]


class StepLog:
    def __init__(self) -> None:
        self._rows: list[tuple] = []
        # decode steps as linear pieces: (first duration, slope, count, decoding sequences)
        self._itl: list[tuple[float, float, int, int]] = []

    def add(self, start_s: float, timing: StepSeries | float, num_steps: int, batch: Batch,
            kv_used_start: int, memory_end: tuple[int, int, int, int, int]) -> None:
        """``memory_end``: blocks in use after the step, then the four parts of
        ``sim.engine.kv_state``."""
        total = timing if isinstance(timing, float) else timing.total
        self._rows.append(
            (start_s, num_steps, total, batch.decode_seqs, batch.prefill_seqs,
             batch.prefill_tokens, kv_used_start, *memory_end)
        )
        seqs = batch.decode_seqs - batch.leaving_seqs  # sequences that got a token
        if seqs:
            if isinstance(timing, float):
                self._itl.append((timing, 0.0, 1, seqs))
            else:
                for first, slope, count in timing.pieces:
                    self._itl.append((first, slope, count, seqs))

    def __len__(self) -> int:
        return len(self._rows)

    def frame(self) -> pd.DataFrame:
        table = np.array(self._rows, dtype=np.float64).reshape(-1, len(COLUMNS))
        frame = pd.DataFrame(table, columns=COLUMNS)
        integer = [c for c in COLUMNS if c not in ("start_s", "duration_s")]
        return frame.astype({c: np.int64 for c in integer})

    def itl_samples(self) -> tuple[np.ndarray, np.ndarray]:
        """(step durations, weights): one entry per decode step, weighted by its decoders."""
        if not self._itl:
            return np.empty(0), np.empty(0)
        table = np.array(self._itl, dtype=np.float64)
        first, slope = table[:, 0], table[:, 1]
        count, seqs = table[:, 2].astype(np.int64), table[:, 3]
        piece = np.repeat(np.arange(len(count)), count)
        index_in_piece = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
        durations = first[piece] + slope[piece] * index_in_piece
        return durations, seqs[piece]
