"""The paged KV-cache block pool, with prefix caching (vLLM v1 semantics).

A replica's KV memory is ``num_blocks`` fixed-size blocks. A block is *held* while at least one
running request references it and *free* otherwise. Free blocks wait in one queue in eviction
order: allocation takes from the head, freeing appends to the tail, so a block freed long ago
is reused first and recently used prefixes survive longest (LRU).

A free block may still hold useful content. Three kinds of content are told apart, because
they differ in who can hit them and so in how much bookkeeping they deserve:

* **shared** blocks hold a full block of prompt text that other requests may share (a system
  prompt, a document); each is tracked individually by its chained content hash, with a
  reference count, exactly as vLLM does;
* **private** blocks hold a request's own full blocks (its unique prompt tail and generated
  tokens). Only that request can ever hit them again, after it is preempted and recomputed, so
  they are kept as one counted run per request;
* **anonymous** blocks hold nothing reusable (never used, a partial last block, or anything at
  all when prefix caching is off); they are just a count.

Physical block ids are not modelled: which id a block has never changes a step's time, only
which content survives does. Free queue entries are small mutable lists ``[kind, key, count]``
so that a run can shrink in place when its tail end is evicted.

    head (evicted first)                                            tail (freed last)
    [ANON 3][PRIVATE r7 x5][SHARED h12][SHARED h11][ANON 1][PRIVATE r9 x2][SHARED h40]
"""

from __future__ import annotations

from collections import deque

ANON = 0
SHARED = 1
PRIVATE = 2

_COMPACT_MIN_DEAD = 4096  # dead queue entries tolerated before the queue is rebuilt


class BlockPool:
    """Fixed-size KV blocks with reference counts and an LRU prefix cache."""

    def __init__(self, num_blocks: int, *, caching: bool = True) -> None:
        if num_blocks < 1:
            raise ValueError(f"a block pool needs at least one block, got {num_blocks}")
        self.num_blocks = num_blocks
        self.caching = caching
        self.num_free = num_blocks
        self._queue: deque[list[int]] = deque([[ANON, 0, num_blocks]])
        self._refs: dict[int, int] = {}  # shared hash -> reference count (0 = evictable)
        self._free_shared: dict[int, list[int]] = {}  # shared hash -> its queue entry
        self._private: dict[int, list[int]] = {}  # owner -> its run's queue entry
        self._dead = 0
        self.evicted_blocks = 0

    # ---- queries -------------------------------------------------------------------------

    @property
    def num_used(self) -> int:
        return self.num_blocks - self.num_free

    def is_cached(self, block_hash: int) -> bool:
        return block_hash in self._refs

    def ref_count(self, block_hash: int) -> int:
        return self._refs[block_hash]

    def cached_hashes(self) -> list[int]:
        return list(self._refs)

    def private_cached(self, owner: int) -> int:
        """How many of ``owner``'s own full blocks are still cached (a prefix of them)."""
        entry = self._private.get(owner)
        return entry[2] if entry is not None else 0

    def longest_shared_prefix(self, hashes: tuple[int, ...], limit: int) -> int:
        """Number of leading ``hashes`` (at most ``limit``) whose blocks are cached."""
        cached = list(map(self._refs.__contains__, hashes[:limit]))
        return cached.index(False) if False in cached else len(cached)

    def count_free(self, hashes: tuple[int, ...]) -> int:
        """How many of these cached blocks sit in the free queue (unreferenced)."""
        return len(self._free_shared.keys() & hashes)

    # ---- taking blocks -------------------------------------------------------------------

    def acquire_shared(self, hashes: tuple[int, ...]) -> None:
        """Reference cached blocks hit by a request (removing evictable ones from the queue)."""
        free_shared = self._free_shared
        for h in free_shared.keys() & hashes:
            free_shared.pop(h)[2] = 0
            self._dead += 1
            self.num_free -= 1
        refs = self._refs
        for h in hashes:
            refs[h] += 1

    def claim_private(self, owner: int, blocks: int) -> None:
        """Take back the first ``blocks`` of ``owner``'s cached run (after a preemption).

        The run's remaining blocks hold content nobody can reach any more; they stay where
        they are in the queue as anonymous blocks.
        """
        entry = self._private.pop(owner)
        if blocks > entry[2]:
            raise ValueError(f"request {owner} has {entry[2]} cached blocks, not {blocks}")
        entry[2] -= blocks
        entry[0] = ANON
        if entry[2] == 0:
            self._dead += 1
        self.num_free -= blocks

    def forget_private(self, owner: int) -> None:
        """Drop ``owner``'s cached run from the index (it can no longer be hit)."""
        entry = self._private.pop(owner, None)
        if entry is not None:
            entry[0] = ANON

    def allocate(self, n: int) -> None:
        """Take ``n`` free blocks from the head of the queue, evicting what they held."""
        if n > self.num_free:
            raise ValueError(f"cannot allocate {n} blocks, {self.num_free} free")
        self.num_free -= n
        queue = self._queue
        while n:
            entry = queue[0]
            kind, key, count = entry
            if count == 0:
                queue.popleft()
                self._dead -= 1
                continue
            if kind == SHARED:
                del self._refs[key]
                del self._free_shared[key]
                queue.popleft()
                self.evicted_blocks += 1
                n -= 1
                continue
            take = count if count < n else n
            entry[2] = count - take
            n -= take
            if kind == PRIVATE:
                self.evicted_blocks += take
            if take == count:
                queue.popleft()
                if kind == PRIVATE:
                    del self._private[key]

    def register_shared(self, block_hash: int) -> bool:
        """Label one held block as holding shared content ``block_hash``.

        Returns False when the hash is already cached (another request computed the same
        content at the same time); vLLM keeps such a duplicate as an extra block, and so do
        we, as the request's own content.
        """
        if block_hash in self._refs:
            return False
        self._refs[block_hash] = 1
        return True

    # ---- returning blocks ----------------------------------------------------------------

    def release(
        self,
        shared: tuple[int, ...],
        own_full: int,
        own_partial: int,
        owner: int,
    ) -> None:
        """Return a request's blocks, last block first (so its tail is evicted first).

        ``shared`` are the hashes it references (its leading blocks), ``own_full`` its own full
        blocks after them and ``own_partial`` (0 or 1) its partly filled last block.
        """
        if own_partial:
            self._append_anon(own_partial)
        if own_full:
            if self.caching:
                self.forget_private(owner)
                entry = [PRIVATE, owner, own_full]
                self._queue.append(entry)
                self._private[owner] = entry
            else:
                self._append_anon(own_full)
        refs = self._refs
        for h in shared:
            refs[h] -= 1
        free_shared = self._free_shared
        queue = self._queue
        freed = [h for h in reversed(shared) if not refs[h]]
        for h in freed:
            entry = [SHARED, h, 1]
            queue.append(entry)
            free_shared[h] = entry
        self.num_free += own_partial + own_full + len(freed)
        if self._dead > _COMPACT_MIN_DEAD and self._dead > len(queue) // 2:
            self._compact()

    def _append_anon(self, n: int) -> None:
        queue = self._queue
        if queue and queue[-1][0] == ANON and queue[-1][2] > 0:
            queue[-1][2] += n
        else:
            queue.append([ANON, 0, n])

    def _compact(self) -> None:
        """Drop dead entries (touched or emptied in place) from the queue."""
        self._queue = deque(e for e in self._queue if e[2] > 0)
        self._dead = 0

    # ---- invariants (used by tests) ------------------------------------------------------

    def queue_blocks(self) -> int:
        return sum(e[2] for e in self._queue)

    def queue_order(self) -> list[tuple[int, int, int]]:
        """The live queue, head first, as (kind, key, count) tuples."""
        return [(e[0], e[1], e[2]) for e in self._queue if e[2] > 0]
