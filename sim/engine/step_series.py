"""A run of consecutive decode steps whose durations grow linearly, in closed form.

During a decode run every step adds one token to each of ``n`` sequences, so the context read
grows by ``n`` per step and each roofline term is linear in the step index. The step time is
the upper envelope of a few lines (``fixed + max(compute line, memory line)``; with
asynchronous scheduling also the constant host line): one linear piece per line at most, split
where the lines cross. Totals, cut points and samples then need no per-step loop.

    duration(i) = first + slope * i            for i in [0, count) of each piece
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np


class Piece(NamedTuple):
    first: float  # duration of the piece's first step, seconds
    slope: float  # growth per step, seconds
    count: int

    def total(self, steps: int | None = None) -> float:
        m = self.count if steps is None else steps
        return m * self.first + self.slope * m * (m - 1) / 2

    def steps_before(self, elapsed: float) -> int:
        """Steps of this piece that start strictly before ``elapsed`` (from its start)."""
        if elapsed <= 0:
            return 0
        a, b = self.first, self.slope
        if b <= 0:
            m = math.ceil(elapsed / a)
        else:  # smallest m with total(m) >= elapsed: b/2 m^2 + (a - b/2) m - elapsed = 0
            h = a - b / 2
            m = math.ceil((-h + math.sqrt(h * h + 2 * b * elapsed)) / b)
        # guard the float solution against an off-by-one either way
        while m > 0 and self.total(m - 1) >= elapsed:
            m -= 1
        while self.total(m) < elapsed:
            m += 1
        return min(m, self.count)


class StepSeries:
    """Consecutive steps as a few linear pieces."""

    __slots__ = ("pieces", "num_steps", "total")

    def __init__(self, pieces: tuple[Piece, ...]) -> None:
        self.pieces = pieces
        steps = total = 0
        for first, slope, count in pieces:
            steps += count
            total += count * first + slope * count * (count - 1) / 2
        self.num_steps = steps
        self.total = total

    @classmethod
    def line(cls, first: float, slope: float, count: int) -> StepSeries:
        """``count`` steps on one line (the common decode run), without the general loop."""
        series = cls.__new__(cls)
        series.pieces = (Piece(first, slope, count),)
        series.num_steps = count
        series.total = count * first + slope * count * (count - 1) / 2
        return series

    @classmethod
    def upper_envelope(cls, offset: float, lines: Sequence[tuple[float, float]],
                       count: int) -> StepSeries:
        """Steps ``offset + max_k (a_k + b_k*i)`` for ``i`` in ``[0, count)``, ``lines`` = ``(a_k, b_k)``.

        The maximum of lines is convex: going right, the line on top can only give way to a
        steeper one, so there is at most one piece per line. From each switch point the next is
        the first integer step at which some steeper line reaches the one on top. (Plain loops:
        the engine builds one of these per decode run.)
        """
        at = 0
        a, b = lines[0]
        for a2, b2 in lines:  # on top at step 0; of equal lines, the steeper one
            if a2 > a or (a2 == a and b2 > b):
                a, b = a2, b2
        pieces = []
        while True:
            switch = count
            for a2, b2 in lines:
                if b2 > b:
                    crossing = (a - a2) / (b2 - b)  # where it reaches the top (may be inf)
                    if crossing < switch:
                        switch = max(at + 1, math.ceil(crossing))
            pieces.append(Piece(offset + a + b * at, b, min(switch, count) - at))
            if switch >= count:
                return cls(tuple(pieces))
            top_b, top_value = b, -math.inf
            for a2, b2 in lines:  # on top at the switch: the highest steeper line there
                if b2 > top_b:
                    value = a2 + b2 * switch
                    if value > top_value or (value == top_value and b2 > b):
                        a, b, top_value = a2, b2, value
            at = switch

    @classmethod
    def after_step(cls, first_s: float, rest: StepSeries) -> StepSeries:
        """One step of ``first_s`` seconds, then ``rest``."""
        series = cls.__new__(cls)
        series.pieces = (Piece(first_s, 0.0, 1), *rest.pieces)
        series.num_steps = rest.num_steps + 1
        series.total = first_s + rest.total
        return series

    @classmethod
    def of_lines(cls, fixed: float, a1: float, b1: float, a2: float, b2: float,
                 count: int) -> StepSeries:
        """Steps ``fixed + max(a1 + b1*i, a2 + b2*i)`` for ``i`` in ``[0, count)``.

        ``upper_envelope`` of two lines, written out: a synchronous engine builds one per
        decode run, and this is about twice as fast as the general loop.
        """
        if a1 < a2 or (a1 == a2 and b1 < b2):
            a1, b1, a2, b2 = a2, b2, a1, b1  # line 1 is on top at i = 0
        if b1 >= b2 or count == 1:
            return cls.line(fixed + a1, b1, count)
        crossing = (a1 - a2) / (b2 - b1)  # where line 2 gets on top (may overflow to inf)
        if crossing >= count:
            return cls.line(fixed + a1, b1, count)
        cross = math.ceil(crossing)
        if cross >= count:
            return cls.line(fixed + a1, b1, count)
        if cross <= 0:
            return cls.line(fixed + a2, b2, count)
        return cls(
            (
                Piece(fixed + a1, b1, cross),
                Piece(fixed + a2 + b2 * cross, b2, count - cross),
            )
        )

    def prefix(self, steps: int) -> tuple[StepSeries, float]:
        """The first ``steps`` steps and their total time."""
        pieces, left = [], steps
        for piece in self.pieces:
            if left <= 0:
                break
            take = min(left, piece.count)
            pieces.append(Piece(piece.first, piece.slope, take))
            left -= take
        cut = StepSeries(tuple(pieces))
        return cut, cut.total

    def steps_started_before(self, elapsed: float) -> int:
        """How many steps have started strictly before ``elapsed`` seconds into the run."""
        started = 0
        for piece in self.pieces:
            span = piece.total()
            if elapsed <= span:
                return started + piece.steps_before(elapsed)
            started += piece.count
            elapsed -= span
        return started

    def durations(self) -> np.ndarray:
        return np.concatenate(
            [p.first + p.slope * np.arange(p.count, dtype=np.float64) for p in self.pieces]
        )
