"""Properties of the engine on random small workloads.

The fast engine plans runs of identical decode steps at once; the plain one takes one event per
step. Both must give the same records, step for step: speed without that proof is a bug
waiting to happen.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.engine.batching_policy import BatchingPolicy
from sim.engine.block_pool import BlockPool
from sim.engine.prefix_hash import shared_prefix_segments
from sim.engine.request import Request
from sim.engine.scheduler import ContinuousScheduler, SchedulerLimits
from sim.fleet.gateway import GatewayPolicy
from sim.fleet.simulation import simulate
from sim.workload.workload import Workload
from tests.helpers import LinearLatency, make_setup


@st.composite
def small_runs(draw: st.DrawFn) -> tuple[dict, Workload]:
    block_size = draw(st.sampled_from([4, 16]))
    num_blocks = draw(st.integers(12, 120))
    max_len = num_blocks * block_size
    n = draw(st.integers(1, 25))
    gaps = draw(st.lists(st.floats(0, 0.2), min_size=n, max_size=n))
    prompts = draw(st.lists(st.integers(1, min(300, max_len - 1)), min_size=n, max_size=n))
    outputs = draw(st.lists(st.integers(1, 60), min_size=n, max_size=n))
    keys = draw(st.lists(st.integers(0, 2), min_size=n, max_size=n))
    shared = [min(p, 96) if k else 0 for p, k in zip(prompts, keys)]
    max_num_seqs = draw(st.integers(1, 8))
    setup = dict(
        num_gpu_blocks=num_blocks,
        block_size=block_size,
        max_num_seqs=max_num_seqs,
        max_num_batched_tokens=draw(st.integers(max(16, max_num_seqs), 512)),
        prefix_caching=draw(st.booleans()),
        replicas=draw(st.integers(1, 2)),
        router=draw(st.sampled_from(["round_robin", "least_outstanding"])),
        async_scheduling=draw(st.booleans()),
        latency=LinearLatency(
            base=draw(st.sampled_from([0.001, 0.01])),
            per_token=draw(st.sampled_from([0.0, 1e-4])),
            per_context=draw(st.sampled_from([0.0, 1e-5])),
        ),
    )
    # Jitter the gaps so an arrival never lands exactly on a step boundary: at a tie the
    # order of two simultaneous events depends on float rounding, which differs between
    # summing step times one by one and in closed form.
    jitter = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).uniform(1e-7, 1e-6, n)
    # some requests stop at their max_tokens (which async scheduling sees coming), the rest
    # at an end-of-sequence token
    caps = [o if cap else 0 for o, cap in zip(outputs, draw(st.lists(
        st.booleans(), min_size=n, max_size=n)))]
    workload = Workload.from_arrays(
        np.cumsum(np.asarray(gaps) + jitter), prompts, outputs, prefix_key=keys,
        prefix_tokens=shared, max_tokens=caps,
    )
    return setup, workload


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_runs())
def test_decode_runs_give_the_same_records_as_single_steps(case: tuple[dict, Workload]) -> None:
    setup_args, workload = case
    fast = simulate(make_setup(**setup_args, macro_steps=True), workload)
    slow = simulate(make_setup(**setup_args, macro_steps=False), workload)
    integer_columns = ["rid", "replica", "status", "prompt_tokens", "output_tokens",
                       "cached_tokens", "preemptions"]
    pd.testing.assert_frame_equal(fast.records[integer_columns], slow.records[integer_columns])
    for column in ["first_scheduled_s", "first_token_s", "finish_s"]:
        np.testing.assert_allclose(
            fast.records[column], slow.records[column], rtol=1e-9, atol=1e-12
        )
    assert fast.preemptions == slow.preemptions
    assert fast.steps["num_steps"].sum() == slow.steps["num_steps"].sum()


@st.composite
def policies(draw: st.DrawFn) -> dict:
    """A batching policy, KV allocation and gateway to run a small workload under."""
    batching = None
    if draw(st.booleans()):
        max_batch = draw(st.integers(1, 5))
        preferred = tuple(draw(st.lists(st.integers(1, max_batch), max_size=2, unique=True)))
        batching = BatchingPolicy(max_batch, draw(st.sampled_from([0.0, 0.003, 0.05])),
                                  preferred)
    gateway = None
    if draw(st.booleans()):
        gateway = GatewayPolicy(draw(st.sampled_from([0.0, 0.002, 0.03])), draw(st.integers(1, 6)))
    return {"batching": batching, "gateway": gateway,
            "kv_allocation": draw(st.sampled_from(["paged", "contiguous"]))}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_runs(), policies())
def test_every_policy_gives_the_same_records_in_runs_and_single_steps(
    case: tuple[dict, Workload], policy: dict
) -> None:
    """Batchers that hold their queue, contiguous memory and gateways all go through the same
    run-ahead and cut logic; the plain mode must agree with it."""
    setup_args, workload = case
    fast = simulate(make_setup(**setup_args, **policy, macro_steps=True), workload)
    slow = simulate(make_setup(**setup_args, **policy, macro_steps=False), workload)
    assert (fast.records["status"] == "completed").sum() == (
        workload.input_tokens < setup_args["num_gpu_blocks"] * setup_args["block_size"]).sum()
    pd.testing.assert_frame_equal(fast.records[["rid", "replica", "output_tokens"]],
                                  slow.records[["rid", "replica", "output_tokens"]])
    for column in ["first_scheduled_s", "first_token_s", "finish_s"]:
        np.testing.assert_allclose(fast.records[column], slow.records[column],
                                   rtol=1e-9, atol=1e-12)
    if policy["gateway"] is not None:
        assert (fast.gateway_hold_s <= policy["gateway"].window_s + 1e-12).all()


@settings(max_examples=100, deadline=None)
@given(small_runs())
def test_every_request_finishes_and_steps_respect_the_budget(case: tuple[dict, Workload]) -> None:
    setup_args, workload = case
    setup = make_setup(**setup_args, macro_steps=False)
    result = simulate(setup, workload)
    records = result.records
    assert len(records) == len(workload)
    assert (records["status"] == "completed").all()
    room = setup.max_model_len - workload.input_tokens  # generation stops at max_model_len
    expected = np.minimum(workload.output_tokens, room)
    assert (records["output_tokens"].to_numpy() == expected).all()
    assert result.truncated_outputs == int((workload.output_tokens > room).sum())
    assert (records["first_token_s"] >= records["arrival_s"]).all()
    assert (records["finish_s"] >= records["first_token_s"]).all()
    tokens = result.steps["prefill_tokens"] + result.steps["decode_seqs"]
    assert (tokens <= setup.limits.max_num_batched_tokens).all()
    seqs = result.steps["prefill_seqs"] + result.steps["decode_seqs"]
    assert (seqs <= setup.limits.max_num_seqs).all()
    assert (result.steps["kv_used_end"] <= setup.num_gpu_blocks).all()


@settings(max_examples=100, deadline=None)
@given(small_runs(), st.integers(0, 2**31))
def test_scheduler_states_stay_consistent(case: tuple[dict, Workload], seed: int) -> None:
    """Drive one scheduler directly: queues are disjoint and every held block is accounted."""
    setup_args, workload = case
    bs = setup_args["block_size"]
    limits = SchedulerLimits(setup_args["max_num_seqs"], setup_args["max_num_batched_tokens"], bs,
                             async_scheduling=setup_args["async_scheduling"])
    pool = BlockPool(setup_args["num_gpu_blocks"], caching=setup_args["prefix_caching"])
    scheduler = ContinuousScheduler(limits, pool)
    rng = np.random.default_rng(seed)
    max_len = setup_args["num_gpu_blocks"] * bs  # as the engine caps it
    requests = [
        Request(rid=i, arrival_s=0.0, prompt_tokens=int(p), output_tokens=int(min(o, max_len - p)),
                segments=shared_prefix_segments(int(k), int(t), bs))
        for i, (p, o, k, t) in enumerate(zip(workload.input_tokens, workload.output_tokens,
                                             workload.prefix_key, workload.prefix_tokens))
    ]
    pending = list(requests)
    finished: list[Request] = []
    for _ in range(5_000):
        while pending and rng.random() < 0.3:
            scheduler.add(pending.pop(0))
        if not scheduler.has_work:
            if not pending:
                break
            continue
        scheduler.schedule(0.0)
        waiting = {r.rid for r in scheduler.waiting}
        running = set(scheduler.decoding) | set(scheduler.prefilling)
        assert not waiting & running
        steps = scheduler.decode_horizon() if rng.random() < 0.5 else 1
        finished += scheduler.complete(steps, 0.0)
        held = tails = 0
        for r in scheduler.decoding.values():
            computed = scheduler.step + r.computed_offset
            held += -(-computed // bs)
            tails += -computed % bs
        for r in (*scheduler.prefilling.values(), *scheduler.leaving):
            held += -(-r.num_computed // bs)
            tails += -r.num_computed % bs
        # the waste accounting, kept incrementally, matches the requests' own state
        assert scheduler.memory() == (pool.num_used, pool.num_used * bs - tails, 0, tails, 0)
        # a block of a cached chain may be held by several requests: count each once
        running = (*scheduler.decoding.values(), *scheduler.prefilling.values(),
                   *scheduler.leaving)
        in_chains = sum(end - first for r in running for _, first, end in r.holds)
        owners = {owner for r in running for owner, _, _ in r.holds}
        distinct = sum(pool.chain(o).held_end - pool.chain(o).first for o in owners)
        assert pool.num_used == held - in_chains + distinct
        assert pool.queue_blocks() == pool.num_free  # every free block is in the queue
    assert sorted(r.rid for r in finished) == list(range(len(requests)))


@settings(max_examples=60, deadline=None)
@given(small_runs(), st.lists(st.integers(1, 10), min_size=1, max_size=6))
def test_a_workload_streamed_in_chunks_gives_the_same_records(case: tuple[dict, Workload],
                                                               sizes: list[int]) -> None:
    """Streaming a trace chunk by chunk must not change what the engine does."""
    setup_args, workload = case
    columns = workload.columns()
    chunks, start = [], 0
    while start < len(workload):
        size = sizes[len(chunks) % len(sizes)]
        chunks.append(Workload(**{k: v[start:start + size] for k, v in columns.items()}))
        start += size
    whole = simulate(make_setup(**setup_args), workload)
    streamed = simulate(make_setup(**setup_args), iter(chunks))
    pd.testing.assert_frame_equal(whole.records, streamed.records)
