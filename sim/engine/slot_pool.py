"""KV memory as one contiguous range of token slots, as servers before paged attention kept it.

Each running request reserves one unbroken run of slots for its whole possible length when it
is admitted and frees it when it finishes. Runs are placed first-fit, so free memory can break
into holes between runs that are each too small for the next request even when their sum is
not: external fragmentation, which paged memory does not have.
"""

from __future__ import annotations

import bisect


class SlotPool:
    """First-fit allocator of contiguous slot runs, one per owner."""

    caching = False  # contiguous slots are not shared between requests

    def __init__(self, num_blocks: int, block_size: int) -> None:
        if num_blocks < 1:
            raise ValueError(f"a slot pool needs at least one block, got {num_blocks}")
        self.num_slots = num_blocks * block_size
        self.block_size = block_size
        self.used_slots = 0
        self._starts: list[int] = []  # sorted starts of the reserved runs
        self._runs: dict[int, tuple[int, int]] = {}  # start -> (size, owner)
        self._owner_start: dict[int, int] = {}

    @property
    def num_free(self) -> int:
        return self.num_slots - self.used_slots

    @property
    def num_used(self) -> int:
        """Memory in use, in (partly filled) blocks, to compare with paged memory."""
        return -(-self.used_slots // self.block_size)

    def holes(self) -> list[int]:
        """Sizes of the free gaps, in address order (empty gaps left out)."""
        sizes, cursor = [], 0
        for start in self._starts:
            if start > cursor:
                sizes.append(start - cursor)
            cursor = start + self._runs[start][0]
        if cursor < self.num_slots:
            sizes.append(self.num_slots - cursor)
        return sizes

    def unusable_for(self, size: int) -> int:
        """Free slots lying in holes smaller than ``size``: a request that size cannot use them."""
        return sum(hole for hole in self.holes() if hole < size)

    def reserve(self, owner: int, size: int) -> bool:
        """Reserve ``size`` slots for ``owner`` in the first hole that fits; False if none does."""
        if size < 1:
            raise ValueError(f"a reservation needs at least one slot, got {size}")
        if owner in self._owner_start:
            raise ValueError(f"owner {owner} already holds a run")
        if size > self.num_free:
            return False
        cursor = 0
        for index, start in enumerate(self._starts):
            if start - cursor >= size:
                return self._place(owner, cursor, size, index)
            cursor = start + self._runs[start][0]
        if self.num_slots - cursor >= size:
            return self._place(owner, cursor, size, len(self._starts))
        return False

    def free(self, owner: int) -> int:
        """Give back ``owner``'s run; returns its size."""
        start = self._owner_start.pop(owner)
        size, _ = self._runs.pop(start)
        del self._starts[bisect.bisect_left(self._starts, start)]
        self.used_slots -= size
        return size

    def _place(self, owner: int, start: int, size: int, index: int) -> bool:
        self._starts.insert(index, start)
        self._runs[start] = (size, owner)
        self._owner_start[owner] = start
        self.used_slots += size
        return True
