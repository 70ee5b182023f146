"""What each replica did, step by step, kept in aggregate so a long run stays cheap.

One entry per *run* of identical steps (a single step, or a run of decode steps planned at once),
columnar in plain lists; the step durations of decode runs are kept as arrays because the
inter-token latency distribution is exactly the distribution of step durations, weighted by how
many sequences were decoding in each step.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


class StepLog:
    def __init__(self) -> None:
        self.start_s: list[float] = []
        self.num_steps: list[int] = []
        self.duration_s: list[float] = []
        self.decode_seqs: list[int] = []
        self.prefill_seqs: list[int] = []
        self.prefill_tokens: list[int] = []
        self.kv_used_start: list[int] = []
        self.kv_used_end: list[int] = []
        self._itl_durations: list[np.ndarray | float] = []
        self._itl_weights: list[int] = []

    def add(
        self,
        start_s: float,
        durations: np.ndarray | float,
        num_steps: int,
        decode_seqs: int,
        prefill_seqs: int,
        prefill_tokens: int,
        kv_used_start: int,
        kv_used_end: int,
    ) -> None:
        total = durations if isinstance(durations, float) else float(durations.sum())
        self.start_s.append(start_s)
        self.num_steps.append(num_steps)
        self.duration_s.append(total)
        self.decode_seqs.append(decode_seqs)
        self.prefill_seqs.append(prefill_seqs)
        self.prefill_tokens.append(prefill_tokens)
        self.kv_used_start.append(kv_used_start)
        self.kv_used_end.append(kv_used_end)
        if decode_seqs:
            self._itl_durations.append(durations)
            self._itl_weights.append(decode_seqs)

    def __len__(self) -> int:
        return len(self.start_s)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "start_s": self.start_s,
                "num_steps": self.num_steps,
                "duration_s": self.duration_s,
                "decode_seqs": self.decode_seqs,
                "prefill_seqs": self.prefill_seqs,
                "prefill_tokens": self.prefill_tokens,
                "kv_used_start": self.kv_used_start,
                "kv_used_end": self.kv_used_end,
            }
        )

    def itl_samples(self) -> tuple[np.ndarray, np.ndarray]:
        """(step durations, weights): one entry per decode step, weighted by its decoders."""
        if not self._itl_durations:
            return np.empty(0), np.empty(0)
        parts = [np.atleast_1d(np.asarray(d, dtype=np.float64)) for d in self._itl_durations]
        durations = np.concatenate(parts)
        weights = np.repeat(np.asarray(self._itl_weights, dtype=np.float64), [len(p) for p in parts])
        return durations, weights
