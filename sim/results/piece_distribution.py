"""Mean and percentiles of step durations kept as linear pieces, without listing every step.

A run's inter-token latencies are its decode steps' durations, each weighted by the sequences
that got a token in it. The step log keeps them as pieces ``(first, slope, count, weight)``:
``count`` steps lasting ``first + slope * i``. A million-request run has ~20 million decode
steps but ~3 million pieces, so the figures are computed from the pieces: the mean in closed
form, each percentile by bisecting on the duration while counting, piece by piece, how much
weight lies at or below it, until few enough steps are left in the bracket to list and sort.

The figures equal those of listing every step (``expand_pieces``) and taking the weighted lower
percentile (``metrics.weighted_distribution_ms``): a step's duration is computed the same way,
``first + slope * i`` in float64, whenever one is counted or listed.
"""

from __future__ import annotations

import numpy as np

from sim.engine.step_log import expand_pieces

FIRST, SLOPE, COUNT, WEIGHT = range(4)
LIST_AT_MOST = 200_000  # steps in the bracket below which they are listed and sorted


def piece_distribution_ms(pieces: np.ndarray,
                          quantiles: dict[str, float]) -> dict[str, float | None]:
    """Weighted mean and lower percentiles (as ``weighted_distribution_ms``), in ms."""
    pieces = _normalized(pieces)
    count, weight = pieces[:, COUNT], pieces[:, WEIGHT]
    total = float(np.dot(weight, count))
    if len(pieces) == 0 or total == 0:
        return {"mean": None, **{k: None for k in quantiles}}
    first, slope = pieces[:, FIRST], pieces[:, SLOPE]
    sums = count * first + slope * count * (count - 1) / 2
    out: dict[str, float | None] = {"mean": float(np.dot(weight, sums) / total * 1e3)}
    for name, q in quantiles.items():
        out[name] = _lower_quantile(pieces, q / 100 * total) * 1e3
    return out


def _normalized(pieces: np.ndarray) -> np.ndarray:
    """Pieces with some weight, constant ones as a single step carrying all their weight, and
    falling ones (never made by the engine) listed step by step."""
    pieces = np.asarray(pieces, dtype=np.float64).reshape(-1, 4)
    pieces = pieces[(pieces[:, COUNT] > 0) & (pieces[:, WEIGHT] > 0)]
    flat = pieces[:, SLOPE] == 0
    if flat.any():
        pieces = pieces.copy()
        pieces[flat, WEIGHT] *= pieces[flat, COUNT]
        pieces[flat, COUNT] = 1
    falling = pieces[:, SLOPE] < 0
    if falling.any():
        durations, weights = expand_pieces(pieces[falling])
        listed = np.column_stack([durations, np.zeros_like(durations),
                                  np.ones_like(durations), weights])
        pieces = np.concatenate([pieces[~falling], listed])
    return pieces


def _steps_at_or_below(pieces: np.ndarray, x: float) -> np.ndarray:
    """Per piece, how many of its steps last at most ``x`` (exactly, as expand computes them)."""
    first, slope, count = pieces[:, FIRST], pieces[:, SLOPE], pieces[:, COUNT]
    rising = slope > 0
    guess = np.where(rising, np.floor((x - first) / np.where(rising, slope, 1.0)) + 1,
                     np.where(first <= x, count, 0))
    n = np.clip(guess, 0, count)
    # the division may be off by a step either way; settle it on the durations themselves
    for _ in range(2):
        up = rising & (n < count) & (first + slope * n <= x)
        n = n + up
        down = rising & (n > 0) & (first + slope * (n - 1) > x)
        n = n - down
    return n


def _lower_quantile(pieces: np.ndarray, target: float) -> float:
    """The smallest duration whose weight at or below it reaches ``target``."""
    first, slope, count = pieces[:, FIRST], pieces[:, SLOPE], pieces[:, COUNT]
    last = first + slope * (count - 1)
    lo, hi = float(first.min()) - 1.0, float(last.max())  # weight(lo) < target <= weight(hi)
    below = 0.0  # weight of pieces dropped because they lie wholly at or below lo
    active = pieces
    while True:
        a_first, a_slope, a_count = active[:, FIRST], active[:, SLOPE], active[:, COUNT]
        a_last = a_first + a_slope * (a_count - 1)
        inside = np.minimum(hi, a_last) - np.maximum(lo, a_first)
        listed = np.where(a_slope > 0, inside / np.where(a_slope > 0, a_slope, 1.0) + 2, 1)
        mid = (lo + hi) / 2
        if listed.sum() <= LIST_AT_MOST or not lo < mid < hi:
            break
        weight = below + float(np.dot(active[:, WEIGHT], _steps_at_or_below(active, mid)))
        if weight >= target:
            hi = mid
        else:
            lo = mid
        # pieces wholly at or below lo count in full; those wholly above hi never matter
        a_last = active[:, FIRST] + active[:, SLOPE] * (active[:, COUNT] - 1)
        done = a_last <= lo
        below += float(np.dot(active[done, WEIGHT], active[done, COUNT]))
        active = active[~done & (active[:, FIRST] <= hi)]
    # list the steps in (lo, hi] and find where the weight reaches the target
    start = _steps_at_or_below(active, lo)
    stop = _steps_at_or_below(active, hi)
    at_lo = below + float(np.dot(active[:, WEIGHT], start))
    counts = (stop - start).astype(np.int64)
    piece = np.repeat(np.arange(len(active)), counts)
    index = np.repeat(start, counts) + (np.arange(int(counts.sum())) -
                                         np.repeat(np.cumsum(counts) - counts, counts))
    durations = active[piece, FIRST] + active[piece, SLOPE] * index
    order = np.argsort(durations, kind="stable")
    cumulative = at_lo + np.cumsum(active[piece, WEIGHT][order])
    position = int(np.searchsorted(cumulative, target, side="left"))
    return float(durations[order][min(position, len(order) - 1)])
