"""What each replica did, step by step, kept in aggregate so a long run stays cheap.

One row per *run* of identical steps (a single step, or a run of decode steps planned at once).
The inter-token latency distribution is exactly the distribution of step durations, weighted by
how many sequences were decoding in each step; decode runs keep their closed-form step series
so the per-step durations can be expanded once, at the end.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sim.batch import Batch
from sim.step_series import StepSeries

COLUMNS = [
    "start_s", "num_steps", "duration_s", "decode_seqs", "prefill_seqs", "prefill_tokens",
    "kv_used_start", "kv_used_end",
]


class StepLog:
    def __init__(self) -> None:
        self._rows: list[tuple] = []
        self._itl: list[tuple[StepSeries | float, int]] = []

    def add(self, start_s: float, timing: StepSeries | float, num_steps: int, batch: Batch,
            kv_used_start: int, kv_used_end: int) -> None:
        total = timing if isinstance(timing, float) else timing.total
        self._rows.append(
            (start_s, num_steps, total, batch.decode_seqs, batch.prefill_seqs,
             batch.prefill_tokens, kv_used_start, kv_used_end)
        )
        if batch.decode_seqs:
            self._itl.append((timing, batch.decode_seqs))

    def __len__(self) -> int:
        return len(self._rows)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame.from_records(self._rows, columns=COLUMNS)

    def itl_samples(self) -> tuple[np.ndarray, np.ndarray]:
        """(step durations, weights): one entry per decode step, weighted by its decoders."""
        if not self._itl:
            return np.empty(0), np.empty(0)
        parts = [
            np.array([t]) if isinstance(t, float) else t.durations() for t, _ in self._itl
        ]
        durations = np.concatenate(parts)
        weights = np.repeat(
            np.array([w for _, w in self._itl], dtype=np.float64), [len(p) for p in parts]
        )
        return durations, weights
