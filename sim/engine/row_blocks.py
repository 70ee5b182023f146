"""Rows of numbers appended one at a time, kept compact for long runs."""

from __future__ import annotations

import numpy as np

BLOCK_ROWS = 4_096  # small: every replica holds up to this many rows as tuples


class RowBlocks:
    """Tuples of ``width`` numbers, appended one at a time and stored as float64 blocks.

    Appending a tuple is the cheapest thing the hot path can do, but a long run's millions of
    tuples cost ~10x their numbers' bytes and slow every garbage collection that scans them.
    So every ``BLOCK_ROWS`` rows become one float64 array: memory stays at 8 bytes a value.
    """

    __slots__ = ("width", "rows", "_blocks", "_count")

    def __init__(self, width: int) -> None:
        self.width = width
        self.rows: list[tuple] = []  # the newest rows, not compacted yet: append here
        self._blocks: list[np.ndarray] = []
        self._count = 0  # rows in the blocks

    def compact(self) -> None:
        """Turn the pending rows into a block: an appender calls this once ``rows`` holds
        ``BLOCK_ROWS`` of them."""
        block = np.array(self.rows, dtype=np.float64).reshape(-1, self.width)
        self._blocks.append(block)
        self._count += len(block)
        self.rows = []

    def take_pending(self) -> np.ndarray:
        """The rows not compacted yet, as a (rows, width) float64 array, leaving none pending:
        for a caller that folds rows into sums instead of keeping them."""
        block = np.array(self.rows, dtype=np.float64).reshape(-1, self.width)
        self.rows = []
        return block

    def __len__(self) -> int:
        return self._count + len(self.rows)

    def array(self) -> np.ndarray:
        """Every row so far, as one (rows, width) float64 array."""
        if self.rows:
            self.compact()
        if not self._blocks:
            return np.empty((0, self.width))
        if len(self._blocks) > 1:
            self._blocks = [np.concatenate(self._blocks)]
        return self._blocks[0]

    def take(self) -> np.ndarray:
        """``array()``, leaving this empty: the caller then holds the only copy."""
        table = self.array()
        self._blocks, self._count = [], 0
        return table
