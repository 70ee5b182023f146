"""The block pool: exact eviction order, the host-memory tier, and block-by-block equivalence
with a plain vLLM-style pool (a hash map, reference counts, an LRU queue of block ids)."""

from __future__ import annotations

from collections import OrderedDict

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from sim.engine.block_pool import ANON, BlockPool

K = 7  # a shared prefix's owner
OWN = 1_000  # a request's own content


def test_fresh_pool_is_one_anonymous_run() -> None:
    pool = BlockPool(10)
    assert pool.num_free == 10
    assert pool.queue_order() == [(ANON, 0, 10)]


def test_release_returns_blocks_tail_first_and_lru_evicts_the_top_of_the_oldest_run() -> None:
    pool = BlockPool(10)
    pool.allocate(6)  # a request: 3 prefix blocks, 2 own full blocks, 1 partial
    assert pool.extend(K, 0, 0, 3)
    assert pool.extend(OWN, 3, 3, 5)
    pool.release([[K, 0, 3], [OWN, 3, 5]], loose=1)
    assert pool.num_free == 10
    # fresh blocks first (the partial block joins their run), then its own tail, then the prefix
    assert pool.queue_order() == [(ANON, 0, 5), (OWN, 3, 5), (K, 0, 3)]
    pool.allocate(6)  # 5 anonymous blocks, then the own chain's last block
    assert pool.chain(OWN).end == 4 and pool.evicted_blocks == 1
    assert pool.cached_prefix(((K, 3), (OWN, 1 << 40)), limit=9) == (4, 0)
    pool.allocate(1)  # the rest of the own chain goes; the prefix, freed last, survives
    assert pool.chain(OWN) is None
    assert pool.cached_prefix(((K, 3), (OWN, 1 << 40)), limit=9) == (3, 0)
    pool.allocate(1)  # then the prefix's top block
    assert pool.cached_prefix(((K, 3), (OWN, 1 << 40)), limit=9) == (2, 0)


def test_a_hit_on_free_cached_blocks_takes_them_out_of_the_queue() -> None:
    pool = BlockPool(4)
    pool.allocate(2)
    pool.extend(K, 0, 0, 2)
    pool.release([[K, 0, 2]], loose=0)
    segments = ((K, 2),)
    assert pool.reclaimable(segments, 1) == 1 and pool.reclaimable(segments, 2) == 2
    pool.acquire(K, 1)  # a request hits block 0 only
    assert pool.num_free == 3
    pool.allocate(3)  # the two fresh blocks, then block 1; block 0 is referenced
    assert pool.cached_prefix(segments, limit=2) == (1, 0)
    with pytest.raises(ValueError):
        pool.allocate(1)


def test_a_block_is_freed_only_when_no_holder_covers_it() -> None:
    pool = BlockPool(6)
    pool.allocate(4)
    pool.extend(K, 0, 0, 4)  # the first request computed 4 blocks of the prefix
    pool.acquire(K, 2)  # a second one holds the first 2
    pool.release([[K, 0, 4]], loose=0)
    assert pool.num_free == 4  # blocks 2 and 3 are free; 0 and 1 still held
    assert pool.queue_order() == [(ANON, 0, 2), (K, 2, 4)]
    pool.release([[K, 0, 2]], loose=0)
    assert pool.queue_order() == [(ANON, 0, 2), (K, 2, 4), (K, 0, 2)]


def test_content_cached_meanwhile_is_a_duplicate() -> None:
    pool = BlockPool(8)
    pool.allocate(4)
    assert pool.extend(K, 0, 0, 2)  # one request caches the prefix
    assert not pool.extend(K, 0, 0, 2)  # another computed it at the same time


def test_evicted_blocks_move_to_host_memory_and_hit_there() -> None:
    pool = BlockPool(4, cpu_blocks=3)
    pool.allocate(4)
    pool.extend(K, 0, 0, 4)
    pool.release([[K, 0, 4]], loose=0)
    pool.allocate(3)  # positions 3, 2, 1 leave the GPU for host memory
    assert pool.cached_prefix(((K, 4),), limit=4) == (1, 3)
    assert pool.offloaded_blocks == 3 and pool.cpu_used == 3
    pool.release([], loose=3)
    pool.acquire(K, 1)
    pool.allocate(3)  # new GPU blocks for the three host-memory blocks
    assert pool.extend(K, 0, 1, 4)  # loading them back takes them out of host memory
    assert pool.cpu_used == 0 and pool.cached_prefix(((K, 4),), limit=4) == (4, 0)


def test_host_memory_is_bounded_and_drops_its_oldest_blocks() -> None:
    pool = BlockPool(4, cpu_blocks=2)
    pool.allocate(4)
    pool.extend(K, 0, 0, 2)
    pool.extend(OWN, 0, 0, 2)
    pool.release([[OWN, 0, 2]], loose=0)
    pool.release([[K, 0, 2]], loose=0)
    pool.allocate(2)  # the own chain leaves the GPU: host memory holds it
    assert pool.cached_prefix(((OWN, 2),), limit=2) == (0, 2)
    pool.allocate(2)  # then the prefix, which pushes the own chain out of host memory
    assert pool.cached_prefix(((K, 2),), limit=2) == (0, 2)
    assert pool.cached_prefix(((OWN, 2),), limit=2) == (0, 0)
    assert pool.cpu_used == 2 and pool.cpu_order() == [(K, 0, 2)]


class ReferencePool:
    """vLLM's pool block by block: a hash per full block, reference counts, an LRU queue of
    block ids (head evicted first), tail-first freeing; a duplicate is not cached."""

    def __init__(self, n: int) -> None:
        self.free: OrderedDict[int, None] = OrderedDict((b, None) for b in range(n))
        self.hash_of: dict[int, tuple] = {}
        self.block_of: dict[tuple, int] = {}
        self.ref = [0] * n

    def hits(self, hashes: list[tuple], limit: int) -> int:
        k = 0
        while k < min(len(hashes), limit) and hashes[k] in self.block_of:
            k += 1
        return k

    def reclaimable(self, hashes: list[tuple]) -> int:
        return sum(1 for h in hashes if self.ref[self.block_of[h]] == 0)

    def take(self, hashes: list[tuple]) -> list[int]:
        blocks = []
        for h in hashes:
            b = self.block_of[h]
            if self.ref[b] == 0:
                del self.free[b]
            self.ref[b] += 1
            blocks.append(b)
        return blocks

    def new(self, n: int) -> list[int]:
        blocks = []
        for _ in range(n):
            b, _ = self.free.popitem(last=False)
            h = self.hash_of.pop(b, None)
            if h is not None:
                del self.block_of[h]
            self.ref[b] = 1
            blocks.append(b)
        return blocks

    def cache(self, block: int, h: tuple) -> bool:
        if h in self.block_of:
            return False
        self.block_of[h], self.hash_of[block] = block, h
        return True

    def release(self, table: list[int]) -> None:
        for b in reversed(table):
            self.ref[b] -= 1
            if self.ref[b] == 0:
                self.free[b] = None


class PoolMachine(RuleBasedStateMachine):
    """Requests of a shared prefix (one of three) plus own blocks come, grow and go, on both
    pools; every hit, free count and cached block must agree."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 24
        self.pool = BlockPool(self.total)
        self.ref = ReferencePool(self.total)
        self.running: dict[int, dict] = {}
        self.next_rid = 0

    @rule(key=st.integers(1, 3), prefix=st.sampled_from([0, 0, 1, 2, 3, 4, 6]),
          own=st.integers(1, 5),
          partial=st.booleans())
    def admit(self, key: int, prefix: int, own: int, partial: bool) -> None:
        rid, self.next_rid = self.next_rid, self.next_rid + 1
        own_owner = OWN + rid
        segments = ((key, prefix), (own_owner, 1 << 40)) if prefix else ((own_owner, 1 << 40),)
        hashes = [(key, p) for p in range(prefix)]
        limit = prefix + own  # at least the partial block or one own block is computed
        gpu, cpu = self.pool.cached_prefix(segments, limit)
        assert cpu == 0
        assert gpu == self.ref.hits(hashes, limit)
        reclaim = self.pool.reclaimable(segments, gpu) if gpu else 0
        assert reclaim == self.ref.reclaimable(hashes[:gpu])
        need = prefix + own + partial - gpu
        if need + reclaim > self.pool.num_free:
            return
        holds = []
        if gpu:
            self.pool.acquire(key, gpu)
            holds.append([key, 0, gpu])
        self.pool.allocate(need)
        table = self.ref.take(hashes[:gpu]) + self.ref.new(need)
        loose = int(partial)
        if prefix > gpu:  # the rest of the prefix is computed and cached now
            held = gpu
            if self.pool.extend(key, 0, held, prefix):
                if holds:
                    holds[-1][2] = prefix
                else:
                    holds.append([key, 0, prefix])
            else:
                loose += prefix - gpu
            cached = [self.ref.cache(table[p], hashes[p]) for p in range(gpu, prefix)]
            assert all(cached) == (loose == int(partial))
        self.running[rid] = {"holds": holds, "loose": loose, "table": table, "prefix": prefix,
                             "own": own, "partial": partial}

    @precondition(lambda self: self.running and self.pool.num_free)
    @rule(data=st.data(), k=st.integers(1, 3))
    def grow(self, data: st.DataObject, k: int) -> None:
        """A decoding request fills its partial block and starts new ones."""
        rid = data.draw(st.sampled_from(sorted(self.running)))
        k = min(k, self.pool.num_free)
        request = self.running[rid]
        self.pool.allocate(k)
        request["table"] += self.ref.new(k)
        request["own"] += k

    @precondition(lambda self: self.running)
    @rule(data=st.data())
    def leave(self, data: st.DataObject) -> None:
        rid = data.draw(st.sampled_from(sorted(self.running)))
        request = self.running.pop(rid)
        prefix, own, table = request["prefix"], request["own"], request["table"]
        holds = request["holds"]
        # its own full blocks are cached as it leaves (the partial one is not)
        for p in range(prefix, prefix + own):
            assert self.ref.cache(table[p], (OWN + rid, p))
        if not holds and not prefix:  # nothing shared, nothing hit: the short path
            self.pool.release_own(OWN + rid, own, request["loose"])
        else:
            assert self.pool.extend(OWN + rid, prefix, prefix, prefix + own)
            holds.append([OWN + rid, prefix, prefix + own])
            self.pool.release(holds, request["loose"])
        self.ref.release(table)

    @invariant()
    def the_pools_agree(self) -> None:
        assert self.pool.num_free == len(self.ref.free)
        assert self.pool.queue_blocks() == self.pool.num_free
        cached = set()
        for owner in self.pool.owners():
            chain = self.pool.chain(owner)
            if chain is not None:  # (an owner evicted whole waits for a sweep)
                cached |= {(owner, p) for p in range(chain.first, chain.end)}
        assert cached == set(self.ref.block_of)


TestPoolMachine = PoolMachine.TestCase
TestPoolMachine.settings = settings(max_examples=200, stateful_step_count=50, deadline=None)


def test_owners_evicted_whole_are_forgotten_so_memory_stays_bounded() -> None:
    pool = BlockPool(16)
    for rid in range(20_000):  # each request leaves one cached block, pushing out an older one
        pool.allocate(1)
        pool.release_own(OWN + rid, 1, loose=0)
    assert len(pool.owners()) <= 2 * 4096 + 16
    assert pool.chain(OWN + 19_999) is not None and pool.chain(OWN) is None
