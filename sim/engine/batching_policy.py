"""When a request-level batcher (static or Triton-style dynamic) starts a batch, and how big.

Both hold queued requests until a batch is worth starting:

* **static**: a batch of ``max_batch`` starts as soon as that many wait; otherwise the oldest
  waits at most ``timeout_s`` and then whatever is queued goes;
* **dynamic** (Triton's dynamic batcher): as static, but a batch of one of the
  ``preferred_sizes`` may also go at once, the largest that the queue can fill.

A timeout of 0 starts a batch with whatever is queued as soon as the replica is free.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BatchingPolicy:
    max_batch: int
    timeout_s: float
    preferred_sizes: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {self.max_batch}")
        if self.timeout_s < 0:
            raise ValueError(f"timeout_s must be >= 0, got {self.timeout_s}")
        if any(not 1 <= size <= self.max_batch for size in self.preferred_sizes):
            raise ValueError(
                f"preferred sizes {self.preferred_sizes} must lie in 1..{self.max_batch}"
            )

    def ready_at(self, queued: int, oldest_queued_s: float) -> float:
        """The earliest time a batch may start, given ``queued`` waiting requests (> 0)."""
        if self._early_size(queued):
            return float("-inf")
        return oldest_queued_s + self.timeout_s

    def batch_size(self, queued: int, now: float, oldest_queued_s: float) -> int:
        """How many of the ``queued`` requests the batch starting at ``now`` takes."""
        early = self._early_size(queued)
        if early and now < oldest_queued_s + self.timeout_s:
            return early
        return min(queued, self.max_batch)

    def _early_size(self, queued: int) -> int:
        """The batch size that may go before the timeout (0: none can)."""
        if queued >= self.max_batch:
            return self.max_batch
        fitting = [size for size in self.preferred_sizes if size <= queued]
        return max(fitting) if fitting else 0
