"""The paged KV-cache block pool with prefix caching of every full block (vLLM v1 semantics).

vLLM gives every full block a hash chained through all the tokens before it, keeps freed
blocks with their hash in an LRU free queue, and lets any later request whose tokens start the
same way take them back. servesim names a block's content by **(owner, position)**: position is
the block's index in the request's token sequence and owner the content stream its last token
comes from (a shared system prompt, one of a trace's prefix ids, a request's own prompt tail and
reply, an earlier turn of a conversation). Content only ever grows at its end, so every request
that uses an owner's content uses it from its first position, and the pool keeps each owner's
cached blocks as one **chain** of consecutive positions::

    positions   first ........ held_end ............ end ............ cpu_end
                [ held by requests  ][ free, in the LRU ][ in host memory ]

* **held**: referenced by running requests. Each holder holds ``[first, e)`` for its own ``e``
  (the ``holders`` multiset), so a block's reference count is the number of holders past it and
  a release frees exactly the positions no remaining holder covers;
* **free**: cached but unreferenced, waiting in the free queue. Freeing appends a request's
  blocks tail first and allocation takes the head, so within a chain the highest positions are
  always evicted first and the cached part stays a prefix a lookup can walk;
* **host**: with a CPU offload tier, evicted blocks move to host memory (bounded, LRU, the same
  rule), and a later hit there is loaded back instead of recomputed.

The free queue holds *runs* ``[owner, lo, hi]`` (positions ``lo .. hi - 1`` of one chain, the
top evicted first) and anonymous runs ``[ANON, 0, count]`` (never-written blocks, partial last
blocks, duplicates, everything when caching is off), so work is per run, not per block. Block
ids are not modelled: which id a block has never changes a step's time; which content
survives does.

    head (evicted first)                                             tail (freed last)
    [ANON 3][own:r7 12..17][K:5 0..94][ANON 1][own:r9 40..42][own:r8 30..36]
"""

from __future__ import annotations

from collections import deque

ANON = None
_COMPACT_MIN_DEAD = 4096  # dead queue entries tolerated before a queue is rebuilt
_SWEEP_MIN = 4096  # owners evicted whole before the owner index is swept of them


class Chain:
    """One owner's cached blocks (see the module docstring)."""

    __slots__ = ("first", "end", "holders", "free_runs", "cpu_end", "cpu_runs")

    def __init__(self, first: int) -> None:
        self.first = first
        self.end = first  # blocks [first, end) are on the GPU
        self.holders: dict[int, int] = {}  # holder's end position -> how many hold up to it
        self.free_runs: list[list] = []  # its free-queue entries, lowest positions first
        self.cpu_end = first  # blocks [end, cpu_end) are in host memory
        self.cpu_runs: list[list] = []  # its host-queue entries, lowest positions first

    @property
    def held_end(self) -> int:
        return max(self.holders) if self.holders else self.first

    @property
    def empty(self) -> bool:
        return self.end == self.first and self.cpu_end == self.first and not self.holders


class BlockPool:
    """Fixed-size KV blocks with reference counts and an LRU prefix cache of full blocks."""

    def __init__(self, num_blocks: int, *, caching: bool = True, cpu_blocks: int = 0) -> None:
        if num_blocks < 1:
            raise ValueError(f"a block pool needs at least one block, got {num_blocks}")
        if cpu_blocks < 0:
            raise ValueError(f"cpu_blocks must be >= 0, got {cpu_blocks}")
        self.num_blocks = num_blocks
        self.caching = caching
        self.num_free = num_blocks
        self.cpu_blocks = cpu_blocks if caching else 0
        self.cpu_used = 0
        self._queue: deque[list] = deque([[ANON, 0, num_blocks]])
        self._cpu_queue: deque[list] = deque()
        self._chains: dict[int, Chain] = {}
        self._dead = 0
        self._cpu_dead = 0
        self._emptied = 0  # free runs evicted whole since the last sweep
        self.evicted_blocks = 0  # cached blocks whose content was dropped from the GPU
        self.offloaded_blocks = 0  # of those, moved to host memory

    # ---- queries -------------------------------------------------------------------------

    @property
    def num_used(self) -> int:
        return self.num_blocks - self.num_free

    def chain(self, owner: int) -> Chain | None:
        """``owner``'s cached blocks, None if it has none."""
        chain = self._settled(owner)
        return None if chain is None or chain.empty else chain

    def _settled(self, owner: int) -> Chain | None:
        """The owner's chain with its end brought up to date after evictions (which only
        shrink its runs, from the top: emptied runs are always its highest)."""
        chain = self._chains.get(owner)
        if chain is None:
            return None
        if type(chain) is list:  # a lone free run left by ``release_own``: make it a chain
            run, chain = chain, Chain(0)
            if run[2] > run[1]:
                chain.free_runs.append(run)
            self._chains[owner] = chain
        runs = chain.free_runs
        if runs and runs[-1][1] == runs[-1][2]:
            while runs and runs[-1][1] == runs[-1][2]:
                runs.pop()
        end = runs[-1][2] if runs else chain.held_end
        if end != chain.end:
            chain.end = end
            if not chain.cpu_runs:
                chain.cpu_end = end
        return chain

    def _sweep(self) -> None:
        """Forget owners whose blocks have all been evicted (bounded memory)."""
        chains = self._chains
        for owner, chain in list(chains.items()):
            if type(chain) is list:
                if chain[1] == chain[2]:
                    del chains[owner]
            elif self._settled(owner).empty:
                del chains[owner]
        self._emptied = 0

    def cached_prefix(self, segments: tuple[tuple[int, int], ...], limit: int) -> tuple[int, int]:
        """How many leading blocks of a request's chain are cached: (on the GPU, in host
        memory right after them), at most ``limit`` in all.

        ``segments`` are (owner, end position) pairs, in order, the first starting at 0.
        """
        lo = gpu = 0
        for owner, hi in segments:
            chain = self._settled(owner)
            if chain is None or chain.first != lo:
                return gpu, 0
            top = min(hi, limit)
            if chain.end < top:
                gpu = max(gpu, chain.end)
                cpu = min(chain.cpu_end, top) - chain.end if chain.cpu_end > chain.end else 0
                return gpu, cpu
            gpu = top
            if top < hi:
                return gpu, 0
            lo = hi
        return gpu, 0

    def reclaimable(self, segments: tuple[tuple[int, int], ...], upto: int) -> int:
        """How many of a request's first ``upto`` blocks sit in the free queue: taking them
        back costs free blocks just as new ones do."""
        lo = total = 0
        for owner, hi in segments:
            if lo >= upto:
                break
            chain = self._settled(owner)
            top = min(hi, upto, chain.end)
            total += max(0, top - max(lo, chain.held_end))
            lo = hi
        return total

    # ---- taking blocks -------------------------------------------------------------------

    def acquire(self, owner: int, end: int) -> None:
        """A request hits ``[first, end)`` of ``owner``'s chain: reference those blocks,
        taking the free ones out of the queue (lowest runs first)."""
        chain = self._settled(owner)
        taken_to = chain.held_end
        runs = chain.free_runs
        while taken_to < end:
            run = runs[0]
            take = min(end, run[2]) - run[1]
            run[1] += take
            taken_to += take
            self.num_free -= take
            if run[1] == run[2]:
                runs.pop(0)
                self._dead += 1
        chain.holders[end] = chain.holders.get(end, 0) + 1

    def extend(self, owner: int, first: int, old_end: int, new_end: int) -> bool:
        """A running request that holds ``[first, old_end)`` of ``owner``'s chain (nothing
        when ``old_end == first``) has computed blocks up to ``new_end``: cache them.

        Returns False when another request already cached the next position (both computed
        the same content at once): vLLM keeps the copy as the request's own uncached block.
        """
        chain = self._settled(owner)
        if chain is None:
            chain = self._chains[owner] = Chain(first)
        if chain.end != old_end:
            return False
        if chain.cpu_end > chain.end:  # recomputed what host memory still had: drop that
            self._drop_cpu(chain, new_end)
        chain.end = new_end
        if chain.cpu_end < new_end:
            chain.cpu_end = new_end
        holders = chain.holders
        if old_end != first:
            left = holders[old_end] - 1
            if left:
                holders[old_end] = left
            else:
                del holders[old_end]
        holders[new_end] = holders.get(new_end, 0) + 1
        return True

    def allocate(self, n: int) -> None:
        """Take ``n`` free blocks from the head of the queue, evicting what they held."""
        if n > self.num_free:
            raise ValueError(f"cannot allocate {n} blocks, {self.num_free} free")
        if not n:
            return
        self.num_free -= n
        queue = self._queue
        run = queue[0]
        if run[2] - run[1] > n and not self.cpu_blocks:
            # the usual case: the top of the oldest free run, which stays in the queue (a
            # cached run shrinks in place, as below)
            run[2] -= n
            if run[0] is not ANON:
                self.evicted_blocks += n
            return
        evicted = emptied = 0
        while n:
            run = queue[0]
            owner, lo, hi = run
            size = hi - lo
            if size == 0:
                queue.popleft()
                self._dead -= 1
                continue
            take = size if size < n else n
            n -= take
            run[2] = hi - take
            if take == size:
                queue.popleft()
            if owner is ANON:
                continue
            # positions [hi - take, hi), the top of the owner's highest free run, leave the GPU.
            # Without a host tier nothing else needs doing now: the run shrank in place and the
            # chain settles its end from its runs when next looked at (``_settled``).
            evicted += take
            if self.cpu_blocks:
                self._offload(owner, self._settled(owner), hi - take, hi)
            elif take == size:
                emptied += 1
        if evicted:
            self.evicted_blocks += evicted
            if emptied:
                self._emptied += emptied
                if self._emptied > _SWEEP_MIN and self._emptied > len(self._chains) // 2:
                    self._sweep()

    # ---- returning blocks ----------------------------------------------------------------

    def release_own(self, owner: int, end: int, loose: int) -> None:
        """``release`` for a request that holds no cached blocks: its full blocks, positions
        ``[0, end)``, are all its own content and are cached as they are freed. (Most requests
        come this way, so it is the short path.)"""
        queue = self._queue
        if loose:
            self._free_loose(loose)
        if end:
            # the chain is this one run until someone looks at it (``_settled``): most are
            # evicted unseen, so they never cost more than the run
            run = [owner, 0, end]
            queue.append(run)
            self._chains[owner] = run
        self.num_free += loose + end

    def _free_loose(self, n: int) -> None:
        """Append ``n`` anonymous blocks to the free queue (joining an anonymous tail run)."""
        queue = self._queue
        last = queue[-1] if queue else None
        if last is not None and last[0] is ANON and last[2] > last[1]:
            last[2] += n
        else:
            queue.append([ANON, 0, n])

    def release(self, holds: list[list[int]], loose: int) -> None:
        """Return a request's blocks, last block first (so its tail is evicted first).

        ``holds`` are its ``[owner, first, end]`` chain ranges in position order and
        ``loose`` its blocks that hold nothing cacheable (its partial last block, duplicates,
        everything when caching is off).
        """
        queue = self._queue
        if loose:
            self._free_loose(loose)
        freed = loose
        for owner, first, end in reversed(holds):
            chain = self._settled(owner)
            holders = chain.holders
            left = holders[end] - 1
            if left:
                holders[end] = left
            else:
                del holders[end]
            low = chain.held_end
            if end > low:  # positions nobody else holds: free them, newest and lowest
                run = [owner, low, end]
                queue.append(run)
                chain.free_runs.insert(0, run)
                freed += end - low
        self.num_free += freed
        if self._dead > _COMPACT_MIN_DEAD and self._dead > len(queue) // 2:
            self._queue = deque(e for e in queue if e[2] > e[1])
            self._dead = 0

    # ---- host memory (CPU offload tier) --------------------------------------------------

    def _offload(self, owner: int, chain: Chain, lo: int, hi: int) -> None:
        """Evicted positions ``[lo, hi)`` enter host memory as its newest run, pushing out its
        oldest blocks when full. The chain's host part stays contiguous above its GPU part."""
        keep = min(hi - lo, self.cpu_blocks)
        if keep < hi - lo:  # host memory holds only the lowest of them
            hi = lo + keep
            self._drop_cpu(chain, chain.cpu_end)  # what lay above is out of reach now
        overflow = self.cpu_used + keep - self.cpu_blocks
        if overflow > 0:
            self._evict_cpu(overflow)
            self._chains[owner] = chain  # in case that emptied and dropped it
        run = [owner, lo, hi]
        self._cpu_queue.append(run)
        if chain.cpu_runs and chain.cpu_runs[0][1] != hi:
            self._drop_cpu(chain, chain.cpu_end)  # a gap would make them unreachable
        chain.cpu_runs.insert(0, run)
        chain.cpu_end = chain.cpu_runs[-1][2]
        self.cpu_used += keep
        self.offloaded_blocks += keep

    def _evict_cpu(self, n: int) -> None:
        """Drop the ``n`` oldest blocks of host memory (each run's top first)."""
        queue = self._cpu_queue
        while n:
            run = queue[0]
            owner, lo, hi = run
            if lo == hi:
                queue.popleft()
                self._cpu_dead -= 1
                continue
            take = min(n, hi - lo)
            n -= take
            self.cpu_used -= take
            run[2] = hi - take
            chain = self._chains[owner]
            if run[1] == run[2]:  # a chain's oldest host run is its highest
                queue.popleft()
                chain.cpu_runs.pop()
            chain.cpu_end = chain.cpu_runs[-1][2] if chain.cpu_runs else chain.end
            if chain.empty:
                del self._chains[owner]

    def _drop_cpu(self, chain: Chain, upto: int) -> None:
        """Host copies of positions below ``upto`` go (recomputed on the GPU, or cut off)."""
        runs = chain.cpu_runs
        while runs and runs[0][1] < upto:
            run = runs[0]
            take = min(upto, run[2]) - run[1]
            run[1] += take
            self.cpu_used -= take
            if run[1] < run[2]:
                break
            runs.pop(0)
            self._cpu_dead += 1
        chain.cpu_end = runs[-1][2] if runs else chain.end

    # ---- invariants (used by tests) ------------------------------------------------------

    def queue_blocks(self) -> int:
        return sum(e[2] - e[1] for e in self._queue)

    def queue_order(self) -> list[tuple[int | None, int, int]]:
        """The live free queue, head first, as (owner or None, lo, hi) tuples."""
        return [(e[0], e[1], e[2]) for e in self._queue if e[2] > e[1]]

    def cpu_order(self) -> list[tuple[int, int, int]]:
        return [(e[0], e[1], e[2]) for e in self._cpu_queue if e[2] > e[1]]

    def owners(self) -> list[int]:
        return list(self._chains)
