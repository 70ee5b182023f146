"""The block pool: exact eviction order, and invariants under random operation sequences."""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from sim.block_pool import ANON, PRIVATE, SHARED, BlockPool


def test_fresh_pool_is_one_anonymous_run() -> None:
    pool = BlockPool(10)
    assert pool.num_free == 10
    assert pool.queue_order() == [(ANON, 0, 10)]


def test_release_returns_blocks_tail_first_and_lru_evicts_oldest_first() -> None:
    pool = BlockPool(8)
    pool.allocate(4)
    for h in (101, 102, 103):
        assert pool.register_shared(h)
    # request holds shared 101,102,103 and one partial block of its own
    pool.release((101, 102, 103), own_full=0, own_partial=1, owner=1)
    assert pool.num_free == 8
    # fresh blocks first (the tail block joins their run), then the prefix deepest-first
    assert pool.queue_order() == [
        (ANON, 0, 5),
        (SHARED, 103, 1),
        (SHARED, 102, 1),
        (SHARED, 101, 1),
    ]
    pool.allocate(6)  # 4 fresh + the partial + evicts 103
    assert not pool.is_cached(103)
    assert pool.is_cached(102) and pool.is_cached(101)
    assert pool.evicted_blocks == 1
    assert pool.longest_shared_prefix((101, 102, 103), limit=3) == 2


def test_hit_on_a_free_cached_block_takes_it_out_of_the_queue() -> None:
    pool = BlockPool(4)
    pool.allocate(2)
    pool.register_shared(7)
    pool.register_shared(8)
    pool.release((7, 8), 0, 0, owner=1)
    assert pool.num_free == 4
    pool.acquire_shared((7,))
    assert pool.ref_count(7) == 1 and pool.ref_count(8) == 0
    assert pool.num_free == 3
    pool.allocate(3)  # the two fresh blocks and block 8; 7 is referenced and survives
    assert pool.is_cached(7) and not pool.is_cached(8)
    assert pool.num_free == 0
    with pytest.raises(ValueError):
        pool.allocate(1)


def test_shared_block_is_freed_only_when_its_last_reference_goes() -> None:
    pool = BlockPool(4)
    pool.allocate(1)
    pool.register_shared(5)
    pool.acquire_shared((5,))  # a second request hits it
    pool.release((5,), 0, 0, owner=1)
    assert pool.ref_count(5) == 1 and pool.num_free == 3
    pool.release((5,), 0, 0, owner=2)
    assert pool.ref_count(5) == 0 and pool.num_free == 4


def test_private_run_is_evicted_from_its_end_and_reclaimed_from_its_start() -> None:
    pool = BlockPool(10)
    pool.allocate(10)
    pool.release((), own_full=6, own_partial=0, owner=42)  # a preempted request's own blocks
    pool.allocate(4)
    assert pool.private_cached(42) == 2  # its last four blocks went first
    assert pool.evicted_blocks == 4
    pool = BlockPool(10)
    pool.allocate(10)
    pool.release((), own_full=6, own_partial=1, owner=42)
    pool.release((), own_full=0, own_partial=3, owner=43)
    assert pool.queue_order() == [(ANON, 0, 1), (PRIVATE, 42, 6), (ANON, 0, 3)]
    pool.allocate(3)  # the partial block, then two of 42's blocks from its end
    assert pool.private_cached(42) == 4
    pool.claim_private(42, 3)
    assert pool.num_free == 10 - 3 - 3
    assert pool.private_cached(42) == 0
    # the unreachable leftover of the run is now anonymous and still free
    assert pool.queue_order() == [(ANON, 42, 1), (ANON, 0, 3)]


def test_duplicate_registration_is_refused() -> None:
    pool = BlockPool(4)
    pool.allocate(2)
    assert pool.register_shared(9)
    assert not pool.register_shared(9)


def test_without_caching_own_blocks_are_plain_free_blocks() -> None:
    pool = BlockPool(6, caching=False)
    pool.allocate(6)
    pool.release((), own_full=4, own_partial=1, owner=3)
    assert pool.private_cached(3) == 0
    assert pool.queue_order() == [(ANON, 0, 5)]


class PoolMachine(RuleBasedStateMachine):
    """Random requests taking and returning blocks; the pool's books must always balance.

    Each simulated request holds a prefix of a shared chain (by reference) plus own blocks.
    """

    def __init__(self) -> None:
        super().__init__()
        self.total = 40
        self.pool = BlockPool(self.total)
        self.holders: dict[int, tuple[tuple[int, ...], int]] = {}  # owner -> (shared, own)
        self.next_owner = 1

    @rule(chain=st.integers(1, 3), length=st.integers(0, 6), own=st.integers(0, 5))
    def admit(self, chain: int, length: int, own: int) -> None:
        hashes = tuple(chain * 100 + i for i in range(length))
        hit = self.pool.longest_shared_prefix(hashes, limit=length)
        reclaim = sum(1 for h in hashes[:hit] if self.pool.ref_count(h) == 0)
        fresh = length - hit
        if fresh + own + reclaim > self.pool.num_free:
            return
        self.pool.acquire_shared(hashes[:hit])
        self.pool.allocate(fresh + own)
        held = hit
        for h in hashes[hit:]:
            if not self.pool.register_shared(h):
                break
            held += 1
        owner = self.next_owner
        self.next_owner += 1
        # blocks whose registration was refused stay the request's own
        self.holders[owner] = (hashes[:held], own + (length - held))

    @precondition(lambda self: self.holders)
    @rule(data=st.data(), preempted=st.booleans())
    def release(self, data: st.DataObject, preempted: bool) -> None:
        owner = data.draw(st.sampled_from(sorted(self.holders)))
        shared, own = self.holders.pop(owner)
        if preempted:
            self.pool.release(shared, own, 0, owner)
        else:
            self.pool.release(shared, 0, own, owner)

    @precondition(lambda self: self.pool.num_free > 0)
    @rule(n=st.integers(1, 10))
    def evict_some(self, n: int) -> None:
        # another request's decode growth, as anonymous blocks held by a dummy owner
        n = min(n, self.pool.num_free)
        self.pool.allocate(n)
        self.holders[self.next_owner] = ((), n)
        self.next_owner += 1

    @invariant()
    def blocks_are_conserved(self) -> None:
        shared_blocks = {h for shared, _ in self.holders.values() for h in shared}
        held = len(shared_blocks) + sum(own for _, own in self.holders.values())
        assert self.pool.num_free + held == self.total
        assert self.pool.queue_blocks() == self.pool.num_free

    @invariant()
    def a_shared_block_is_free_iff_unreferenced(self) -> None:
        refs: dict[int, int] = {}
        for shared, _ in self.holders.values():
            for h in shared:
                refs[h] = refs.get(h, 0) + 1
        free_shared = {key for kind, key, _ in self.pool.queue_order() if kind == SHARED}
        for h in self.pool.cached_hashes():
            assert self.pool.ref_count(h) == refs.get(h, 0)
            assert (h in free_shared) == (refs.get(h, 0) == 0)
        assert set(refs) <= set(self.pool.cached_hashes())


TestPoolMachine = PoolMachine.TestCase
TestPoolMachine.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
