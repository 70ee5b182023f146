"""Request-level batching (static and dynamic batches): exact timelines and invariants."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.engine.batching_policy import BatchingPolicy
from sim.engine.kv_state import waste_shares
from sim.fleet.simulation import simulate
from sim.workload.workload import Workload
from tests.helpers import make_setup


def _run(workload: Workload, policy: BatchingPolicy, **setup):
    setup.setdefault("kv_allocation", "contiguous")
    setup.setdefault("max_model_len", 100)
    return simulate(make_setup(batching=policy, **setup), workload)


def test_a_static_batch_admits_nobody_mid_batch() -> None:
    """Step = 10 ms + 1 ms per token. A (10 in, 3 out) and B (20 in, 5 out) fill a batch of
    two at t=0; C arrives at 15 ms and waits for the whole batch, which B holds to 86 ms."""
    workload = Workload.from_arrays([0.0, 0.0, 0.015], [10, 20, 10], [3, 5, 2])
    result = _run(workload, BatchingPolicy(max_batch=2, timeout_s=0.05))
    records = result.records.set_index("rid")
    # prompt step: 30 tokens -> 40 ms; two rows decode at 12 ms/step, then B alone at 11 ms
    assert records.loc[0, "first_token_s"] == pytest.approx(0.040)
    assert records.loc[0, "finish_s"] == pytest.approx(0.064)
    assert records.loc[1, "finish_s"] == pytest.approx(0.086)
    # C starts only when the batch has ended (its 50 ms timeout passed long before)
    assert records.loc[2, "first_scheduled_s"] == pytest.approx(0.086)
    assert records.loc[2, "first_token_s"] == pytest.approx(0.106)
    assert records.loc[2, "finish_s"] == pytest.approx(0.117)
    # A's row sat idle once A was done: the last decode steps computed B alone
    steps = result.steps
    assert steps["decode_seqs"].tolist() == [0, 2, 1, 0, 1]
    assert steps["num_steps"].tolist() == [1, 2, 2, 1, 1]


def test_a_partial_batch_starts_when_its_oldest_request_times_out() -> None:
    workload = Workload.from_arrays([0.0, 0.02], [10, 10], [1, 1])
    result = _run(workload, BatchingPolicy(max_batch=4, timeout_s=0.05))
    records = result.records
    assert records["first_scheduled_s"].tolist() == pytest.approx([0.05, 0.05])
    # one prompt step of 20 tokens for both: 30 ms
    assert records["finish_s"].tolist() == pytest.approx([0.08, 0.08])


def test_a_full_batch_does_not_wait_for_the_timeout() -> None:
    workload = Workload.from_arrays([0.0, 0.01, 0.02], [10, 10, 10], [1, 1, 1])
    result = _run(workload, BatchingPolicy(max_batch=3, timeout_s=1.0))
    assert result.records["first_scheduled_s"].tolist() == pytest.approx([0.02] * 3)


def test_the_dynamic_batcher_sends_a_preferred_size_at_once() -> None:
    """Three queued requests, preferred size 2 (max 4): two go at once, the third after its
    queue delay, here when the first batch ends (the replica is busy until then)."""
    workload = Workload.from_arrays([0.0, 0.0, 0.0], [10, 10, 10], [1, 1, 1])
    result = _run(workload, BatchingPolicy(max_batch=4, timeout_s=0.02, preferred_sizes=(2,)))
    starts = result.records["first_scheduled_s"].tolist()
    assert starts == pytest.approx([0.0, 0.0, 0.030])


def test_contiguous_reservations_limit_the_batch_to_what_memory_holds() -> None:
    """Memory of 160 slots and max_model_len 100 with no max_tokens: one row per batch."""
    workload = Workload.from_arrays([0.0, 0.0], [10, 10], [2, 2])
    result = _run(workload, BatchingPolicy(max_batch=2, timeout_s=0.0), num_gpu_blocks=10)
    assert result.records["first_scheduled_s"].tolist() == pytest.approx([0.0, 0.031])
    # with max_tokens 5 each reserves 15 slots and both fit
    capped = Workload.from_arrays([0.0, 0.0], [10, 10], [2, 2], max_tokens=5)
    result = _run(capped, BatchingPolicy(max_batch=2, timeout_s=0.0), num_gpu_blocks=10)
    assert result.records["first_scheduled_s"].tolist() == pytest.approx([0.0, 0.0])


def test_waste_of_a_static_batch_by_hand() -> None:
    """One row, 10 prompt + 3 output tokens, max_tokens 7: a 17-slot reservation.

    Steps (10 ms + 1 ms/token): prompt 20 ms, then 2 decode steps of 11 ms. At step ends:
    prompt step  computed 10, final 13 -> states 10, reservation 3, internal 4
    decode run   the row is done: the batch ends and its memory goes back (all zero)
    Trapezoids: 0.020 * (10, 3, 4)/2 + 0.022 * (10, 3, 4)/2 = 0.021 * (10, 3, 4).
    """
    workload = Workload.from_arrays([0.0], [10], [3], max_tokens=7)
    result = _run(workload, BatchingPolicy(max_batch=1, timeout_s=0.0))
    shares = waste_shares(result.steps)
    assert shares["token_states"] == pytest.approx(10 / 17)
    assert shares["reservation"] == pytest.approx(3 / 17)
    assert shares["internal_fragmentation"] == pytest.approx(4 / 17)
    assert shares["external_fragmentation"] == 0


@st.composite
def batched_runs(draw):
    n = draw(st.integers(1, 25))
    gaps = draw(st.lists(st.sampled_from([0.0, 0.001, 0.01, 0.05]), min_size=n, max_size=n))
    prompts = draw(st.lists(st.integers(1, 60), min_size=n, max_size=n))
    outputs = draw(st.lists(st.integers(1, 30), min_size=n, max_size=n))
    caps = draw(st.lists(st.sampled_from([0, 8, 40]), min_size=n, max_size=n))
    max_batch = draw(st.integers(1, 6))
    preferred = draw(st.lists(st.integers(1, max_batch), max_size=2, unique=True))
    policy = BatchingPolicy(max_batch, draw(st.sampled_from([0.0, 0.005, 0.1])),
                            tuple(preferred))
    workload = Workload.from_arrays(np.cumsum(gaps), prompts, outputs, max_tokens=caps)
    return workload, policy, draw(st.sampled_from(["paged", "contiguous"]))


@settings(max_examples=80, deadline=None)
@given(batched_runs())
def test_batches_never_overlap_and_never_exceed_their_size(case) -> None:
    workload, policy, allocation = case
    result = _run(workload, policy, kv_allocation=allocation, num_gpu_blocks=20)
    records = result.records
    assert (records["status"] == "completed").all()
    assert (records["first_scheduled_s"] >= records["arrival_s"] - 1e-12).all()
    # a batch = the requests that started together; they start after the last one ended
    batches = records.groupby("first_scheduled_s")
    assert batches.size().max() <= policy.max_batch
    ends = batches["finish_s"].max().sort_index()
    starts = ends.index.to_numpy()
    assert (starts[1:] >= ends.to_numpy()[:-1] - 1e-12).all()
    # nobody waits past the timeout while the replica is idle
    for start, group in batches:
        idle_since = ends[ends.index < start].max() if (ends.index < start).any() else 0.0
        deadline = max(group["arrival_s"].min() + policy.timeout_s, idle_since)
        assert start <= deadline + 1e-9
    shares = waste_shares(result.steps)
    if shares["token_states"] is not None:  # None: no step ended with memory held
        assert sum(shares.values()) == pytest.approx(1.0)
        assert min(shares.values()) >= -1e-12
        assert shares["token_states"] > 0
