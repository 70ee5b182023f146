"""A distribution of positive durations kept in bounded memory, for runs too long to list.

A streamed run (tens of millions of requests) cannot keep every latency to take exact
percentiles, so it counts them in bins whose edges grow by a fixed ratio: a bin is
``RELATIVE_WIDTH`` wide relative to its lower edge, whatever the scale, and a percentile read
from the bins is within half that of the value listing every sample would give. Sums, counts,
the minimum and the maximum are kept exactly, so the mean is exact.
"""

from __future__ import annotations

import math

import numpy as np

RELATIVE_WIDTH = 1e-3  # a percentile is within 0.05 % of the listed value
LOWEST_S = 1e-7  # values at or below this (and zeros) share one bin, reported as the minimum
_LOG_STEP = math.log1p(RELATIVE_WIDTH)


class LogHistogram:
    """Weighted samples of values >= 0 (seconds) in geometric bins; NaN samples are skipped."""

    __slots__ = ("_counts", "_low_count", "total", "weighted_sum", "minimum", "maximum")

    def __init__(self) -> None:
        self._counts = np.zeros(0)
        self._low_count = 0.0  # weight at or below LOWEST_S
        self.total = 0.0  # weight of every sample
        self.weighted_sum = 0.0
        self.minimum = math.inf
        self.maximum = -math.inf

    def add(self, values: np.ndarray, weights: np.ndarray | None = None) -> None:
        values = np.asarray(values, dtype=np.float64)
        keep = ~np.isnan(values)
        if weights is not None:
            weights = np.asarray(weights, dtype=np.float64)
            keep &= weights > 0
            weights = weights[keep]
        values = values[keep]
        if values.size == 0:
            return
        if values.min() < 0:
            raise ValueError(f"a duration histogram takes no negative values (got {values.min()})")
        w = np.ones_like(values) if weights is None else weights
        self.total += float(w.sum())
        self.weighted_sum += float(np.dot(values, w))
        self.minimum = min(self.minimum, float(values.min()))
        self.maximum = max(self.maximum, float(values.max()))
        low = values <= LOWEST_S
        self._low_count += float(w[low].sum())
        index = _bin(values[~low])
        if index.size:
            counts = np.bincount(index, weights=w[~low])
            if len(counts) > len(self._counts):
                self._counts = np.pad(self._counts, (0, len(counts) - len(self._counts)))
            self._counts[:len(counts)] += counts

    def merge(self, other: LogHistogram) -> None:
        """Add ``other``'s samples to these."""
        if len(other._counts) > len(self._counts):
            self._counts = np.pad(self._counts, (0, len(other._counts) - len(self._counts)))
        self._counts[:len(other._counts)] += other._counts
        self._low_count += other._low_count
        self.total += other.total
        self.weighted_sum += other.weighted_sum
        self.minimum = min(self.minimum, other.minimum)
        self.maximum = max(self.maximum, other.maximum)

    def mean(self) -> float | None:
        return self.weighted_sum / self.total if self.total > 0 else None

    def quantile(self, q: float, linear: bool = False) -> float | None:
        """The value below which ``q`` (0..1) of the weight lies: the centre of the bin that
        holds it, kept within the smallest and largest sample. ``linear``: as numpy's default
        percentile of a list of unit-weight samples, between the two order statistics around
        rank ``q (n - 1)``."""
        if self.total <= 0:
            return None
        if not linear:
            return self._value_at(q * self.total)
        rank = q * (self.total - 1)
        below = math.floor(rank)
        low = self._value_at(below + 1)
        if rank == below:
            return low
        return low + (rank - below) * (self._value_at(below + 2) - low)

    def _value_at(self, weight: float) -> float:
        """The smallest value with at least ``weight`` of the samples at or below it."""
        if weight <= self._low_count:
            return self.minimum
        cumulative = self._low_count + np.cumsum(self._counts)
        index = min(int(np.searchsorted(cumulative, weight, side="left")), len(self._counts) - 1)
        centre = LOWEST_S * math.exp((index + 0.5) * _LOG_STEP)
        return min(max(centre, self.minimum), self.maximum)


def _bin(values: np.ndarray) -> np.ndarray:
    """The bin of each value above LOWEST_S: ``[LOWEST_S (1+w)^i, LOWEST_S (1+w)^(i+1))``."""
    return np.floor(np.log(values / LOWEST_S) / _LOG_STEP).astype(np.int64)
