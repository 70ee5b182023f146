"""Contiguous KV memory: first-fit slot runs, holes, and continuous batching over them."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.engine.batching_policy import BatchingPolicy
from sim.engine.kv_state import waste_shares
from sim.engine.slot_pool import SlotPool
from sim.fleet.simulation import simulate
from sim.workload.workload import Workload
from tests.helpers import make_setup


def test_first_fit_leaves_holes_that_a_larger_request_cannot_use() -> None:
    pool = SlotPool(num_blocks=10, block_size=10)  # 100 slots
    for owner in range(3):
        assert pool.reserve(owner, 30)
    pool.free(1)
    assert pool.holes() == [30, 10]
    assert pool.num_free == 40
    assert pool.unusable_for(35) == 40  # 40 free slots, no run of 35
    assert not pool.reserve(3, 35)
    assert pool.unusable_for(20) == 10
    assert pool.reserve(3, 25)  # first fit: the 30-slot hole at 30
    assert pool.holes() == [5, 10]
    assert pool.num_used == 9  # 85 slots in 10-slot blocks
    assert pool.free(0) == 30
    assert pool.holes() == [30, 5, 10]


def test_a_reservation_larger_than_free_memory_is_refused() -> None:
    pool = SlotPool(num_blocks=1, block_size=16)
    assert not pool.reserve(0, 17)
    with pytest.raises(ValueError):
        pool.reserve(0, 0)


def test_batching_policy_sizes() -> None:
    static = BatchingPolicy(max_batch=4, timeout_s=0.1)
    assert static.ready_at(4, oldest_queued_s=1.0) == float("-inf")
    assert static.ready_at(3, oldest_queued_s=1.0) == pytest.approx(1.1)
    assert static.batch_size(9, now=1.0, oldest_queued_s=1.0) == 4
    assert static.batch_size(3, now=1.1, oldest_queued_s=1.0) == 3
    dynamic = BatchingPolicy(max_batch=8, timeout_s=0.1, preferred_sizes=(2, 4))
    assert dynamic.ready_at(3, oldest_queued_s=1.0) == float("-inf")
    assert dynamic.batch_size(3, now=1.0, oldest_queued_s=1.0) == 2
    assert dynamic.batch_size(7, now=1.0, oldest_queued_s=1.0) == 4
    assert dynamic.batch_size(7, now=1.2, oldest_queued_s=1.0) == 7  # timed out: all it has
    assert dynamic.ready_at(1, oldest_queued_s=1.0) == pytest.approx(1.1)
    with pytest.raises(ValueError):
        BatchingPolicy(max_batch=4, timeout_s=0.0, preferred_sizes=(5,))


def test_contiguous_continuous_batching_reserves_max_length_and_never_preempts() -> None:
    """Memory of 64 slots, max_model_len 64: without max_tokens each request reserves 64
    slots, so they run one at a time; with max_tokens 8 (reservation prompt + 8) all four fit
    at once, while paged memory of the same size also runs them together."""
    arrivals, prompts, outputs = [0.0] * 4, [8] * 4, [4] * 4
    setup = dict(num_gpu_blocks=4, block_size=16, max_model_len=64)
    one_by_one = simulate(make_setup(kv_allocation="contiguous", **setup),
                          Workload.from_arrays(arrivals, prompts, outputs))
    assert one_by_one.steps["decode_seqs"].max() == 1
    assert one_by_one.preemptions == 0
    capped = simulate(make_setup(kv_allocation="contiguous", **setup),
                      Workload.from_arrays(arrivals, prompts, outputs, max_tokens=8))
    assert capped.steps["prefill_seqs"].iloc[0] == 4
    shares = waste_shares(capped.steps)
    # each row: 16 reserved, 12 final; token states grow from 8 to 11 of them
    assert shares["internal_fragmentation"] == pytest.approx(4 / 16)
    assert shares["external_fragmentation"] == 0


def test_external_fragmentation_counts_holes_the_queue_head_cannot_use() -> None:
    """64 slots. A (reserves 24), B (24), C (16) fill it in that order. A finishes first,
    leaving a 24-slot hole at the start; D needs 32, so those 24 free slots are external
    fragmentation; C ends next (a 16-slot hole at the end: 40 unusable) and D starts only when
    B ends and the free slots join into one run."""
    workload = Workload.from_arrays(
        [0.0, 0.0, 0.0, 0.001], [8, 8, 8, 8], [2, 10, 8, 2], max_tokens=[16, 16, 8, 24]
    )
    result = simulate(make_setup(kv_allocation="contiguous", num_gpu_blocks=4, block_size=16,
                                 max_model_len=64), workload)
    steps = result.steps
    assert (steps["kv_external"] > 0).any()
    assert steps["kv_external"].tolist()[:3] == [0, 24, 40]
    records = result.records.set_index("rid")
    assert records.loc[3, "first_scheduled_s"] >= records.loc[1, "finish_s"] - 1e-12


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from([0.0, 0.002, 0.02]), st.integers(1, 40),
                       st.integers(1, 40), st.sampled_from([0, 4, 30])),
             min_size=1, max_size=30),
    st.sampled_from(["paged", "contiguous"]),
    st.booleans(),
)
def test_every_policy_finishes_everything_and_its_waste_sums_to_one(rows, allocation,
                                                                   static) -> None:
    gaps, prompts, outputs, caps = zip(*rows)
    arrivals = [sum(gaps[: i + 1]) for i in range(len(gaps))]
    workload = Workload.from_arrays(arrivals, prompts, outputs, max_tokens=caps)
    batching = BatchingPolicy(4, 0.01) if static else None
    setup = make_setup(kv_allocation=allocation, num_gpu_blocks=8, block_size=16,
                       max_model_len=96, max_num_batched_tokens=64, max_num_seqs=8,
                       batching=batching)
    result = simulate(setup, workload)
    assert (result.records["status"] == "completed").all()
    assert (result.steps["kv_used_end"] <= 8).all()
    taken = result.steps[["kv_token_states", "kv_reservation", "kv_internal", "kv_external"]]
    assert (taken.to_numpy() >= 0).all()
    assert (taken.sum(axis=1) <= 8 * 16).all()
    if allocation == "contiguous":
        assert result.preemptions == 0
    shares = waste_shares(result.steps)
    if shares["token_states"] is not None:
        assert sum(shares.values()) == pytest.approx(1.0)
