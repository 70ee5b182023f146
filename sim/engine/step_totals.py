"""What a streamed run keeps of its step log: the sums and distributions its summary needs,
folded in a block of rows at a time, so memory does not grow with the run's length.

Every figure equals the one computed from the full step table (``sim.results.metrics``,
``sim.engine.kv_state``) up to float rounding, except the inter-token latency percentiles,
which come from a ``LogHistogram`` (within 0.05 %).
"""

from __future__ import annotations

import numpy as np

from sim.engine.log_histogram import LogHistogram

# column positions in a step log row (sim.engine.step_log.COLUMNS)
_NUM_STEPS, _DURATION, _DECODE, _PREFILL = 1, 2, 3, 4
_KV_START, _KV_END, _WASTE = 6, 7, slice(8, 12)


class StepTotals:
    """Sums over a replica's step rows (or, merged, over a fleet's)."""

    def __init__(self) -> None:
        self.rows = 0
        self.busy_s = 0.0  # replica-seconds spent stepping
        self.kv_block_seconds = 0.0  # blocks in use, integrated over time (trapezoid)
        self.waste_slot_seconds = np.zeros(4)  # sim.engine.kv_state's parts, integrated
        self.steps_by_batch_size = np.zeros(0)  # engine steps per sequences in the step
        self.itl = LogHistogram()  # decode step durations weighted by the sequences served
        self._last_waste = np.zeros(4)  # this replica's parts after its latest step

    def fold(self, block: np.ndarray) -> None:
        """Add a block of one replica's consecutive step rows."""
        if len(block) == 0:
            return
        self.rows += len(block)
        duration = block[:, _DURATION]
        self.busy_s += float(duration.sum())
        used = (block[:, _KV_START] + block[:, _KV_END]) / 2
        self.kv_block_seconds += float(np.dot(used, duration))
        end = block[:, _WASTE]
        start = np.vstack([self._last_waste[None, :], end[:-1]])
        self.waste_slot_seconds += ((start + end) / 2 * duration[:, None]).sum(axis=0)
        self._last_waste = end[-1].copy()
        sizes = (block[:, _DECODE] + block[:, _PREFILL]).astype(np.int64)
        counts = np.bincount(sizes, weights=block[:, _NUM_STEPS])
        self._add_batch_counts(counts)

    def fold_itl(self, durations_s: np.ndarray, weights: np.ndarray) -> None:
        self.itl.add(durations_s, weights)

    def merge(self, other: StepTotals) -> None:
        """Add another replica's totals (its own trapezoids are already closed)."""
        self.rows += other.rows
        self.busy_s += other.busy_s
        self.kv_block_seconds += other.kv_block_seconds
        self.waste_slot_seconds += other.waste_slot_seconds
        self._add_batch_counts(other.steps_by_batch_size)
        self.itl.merge(other.itl)

    def batch_size_distribution(self, quantiles: dict[str, float]) -> dict[str, float | None]:
        """Mean and lower percentiles of sequences per step, over every step (exact: sizes
        are whole numbers)."""
        counts = self.steps_by_batch_size
        total = counts.sum()
        if total <= 0:
            return {"mean": None, **{k: None for k in quantiles}}
        sizes = np.arange(len(counts), dtype=np.float64)
        cumulative = np.cumsum(counts)
        out: dict[str, float | None] = {"mean": float(np.dot(sizes, counts) / total)}
        for name, q in quantiles.items():
            index = int(np.searchsorted(cumulative, q / 100 * total, side="left"))
            out[name] = float(sizes[min(index, len(sizes) - 1)])
        return out

    def _add_batch_counts(self, counts: np.ndarray) -> None:
        if len(counts) > len(self.steps_by_batch_size):
            self.steps_by_batch_size = np.pad(
                self.steps_by_batch_size, (0, len(counts) - len(self.steps_by_batch_size)))
        self.steps_by_batch_size[:len(counts)] += counts
