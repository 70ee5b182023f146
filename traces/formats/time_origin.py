"""Arrival times as seconds after a file's first timestamp, remembered across chunks."""

from __future__ import annotations

import numpy as np


class TimeOrigin:
    """Re-bases each chunk's timestamps on the first valid one of the whole file."""

    def __init__(self) -> None:
        self.first: float | None = None

    def since_first(self, stamps: np.ndarray) -> np.ndarray:
        """``stamps`` minus the file's first finite timestamp (NaN stays NaN)."""
        finite = np.isfinite(stamps)
        if self.first is None and finite.any():
            self.first = float(stamps[finite][0])
        return stamps - (self.first or 0.0)
