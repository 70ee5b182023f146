"""Exact timelines of asynchronous scheduling (vLLM plans step n+1 while step n runs).

Steps of the ``LinearLatency`` model take ``base + per_token * tokens`` seconds, so every
timeline below can be checked by hand.
"""

from __future__ import annotations

import pytest

from sim.engine.batch import Batch
from sim.fleet.simulation import simulate
from sim.workload.workload import Workload
from tests.helpers import LinearLatency, make_setup

TEN_MS = LinearLatency(base=0.010, per_token=0.0)


@pytest.mark.parametrize("macro", [True, False])
@pytest.mark.parametrize(("asynchronous", "first_step_s"), [(False, 0.020), (True, 0.030)])
def test_a_request_arriving_during_step_n_joins_step_n_plus_1_sync_n_plus_2_async(
        macro: bool, asynchronous: bool, first_step_s: float) -> None:
    # steps are 10 ms: [0, 10) prefill of A, [10, 20) decode, [20, 30) ...; B arrives at 15 ms,
    # during the step that starts at 10 ms. Synchronous: B is in the step starting at 20 ms.
    # Async: that step was planned at 10 ms, before B came, so B is in the one at 30 ms.
    workload = Workload.from_arrays([0.0, 0.015], [32, 32], [10, 2])
    setup = make_setup(latency=TEN_MS, macro_steps=macro, async_scheduling=asynchronous)
    records = simulate(setup, workload).records
    first, second = records.iloc[0], records.iloc[1]
    assert second.first_scheduled_s == pytest.approx(first_step_s, abs=1e-12)
    assert second.first_token_s == pytest.approx(first_step_s + 0.010, abs=1e-12)
    assert second.finish_s == pytest.approx(first_step_s + 0.020, abs=1e-12)
    assert first.finish_s == pytest.approx(0.100, abs=1e-12)


@pytest.mark.parametrize("macro", [True, False])
def test_an_idle_engine_takes_a_request_at_once_with_async_scheduling(macro: bool) -> None:
    latency = LinearLatency(base=0.010, per_token=0.001)
    workload = Workload.from_arrays([0.0, 1.0], [100, 100], [5, 5])
    sync = simulate(make_setup(latency=latency, macro_steps=macro), workload).records
    asyn = simulate(make_setup(latency=latency, macro_steps=macro, async_scheduling=True),
                    workload).records
    for column in ("first_scheduled_s", "first_token_s", "finish_s"):
        assert asyn[column].tolist() == pytest.approx(sync[column].tolist(), abs=1e-12)
    assert asyn.iloc[1].first_scheduled_s == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("macro", [True, False])
def test_a_request_arriving_after_the_last_step_ended_by_length_is_not_delayed(
        macro: bool) -> None:
    # A (prompt step [0, 10) then 2 decode steps) stops at its max_tokens, which the scheduler
    # sees coming, so nothing is planned after its last step [20, 30); B arrives at 25 ms and is
    # taken when that step ends: at 30 ms, as without async.
    workload = Workload.from_arrays([0.0, 0.025], [32, 32], [3, 1], max_tokens=[3, 1])
    setup = make_setup(latency=TEN_MS, macro_steps=macro, async_scheduling=True)
    records = simulate(setup, workload).records
    assert records.iloc[0].finish_s == pytest.approx(0.030, abs=1e-12)
    assert records.iloc[1].first_scheduled_s == pytest.approx(0.030, abs=1e-12)


@pytest.mark.parametrize("macro", [True, False])
@pytest.mark.parametrize(("asynchronous", "max_tokens", "b_finish_s"), [
    (False, 0, 0.175),  # synchronous: A leaves when its last token is out
    # async, A stops at end-of-sequence: it rides along one more step, holding its slot and
    # blocks; its discarded token is not charged beside B's
    (True, 0, 0.175),
    (True, 3, 0.175),  # async, A stops at max_tokens: the scheduler knew, no extra step
])
def test_a_request_stopping_at_end_of_sequence_takes_one_more_step_with_async(
        macro: bool, asynchronous: bool, max_tokens: int, b_finish_s: float) -> None:
    # per step: 10 ms + 1 ms per token. Step 1: both prompts (64 tokens) -> 74 ms. Steps 2-3:
    # two decoders, 12 ms each -> A's third token at 98 ms. Then B decodes alone (11 ms a step)
    # for its tokens 4..10: 7 steps.
    latency = LinearLatency(base=0.010, per_token=0.001)
    workload = Workload.from_arrays([0.0, 0.0], [32, 32], [3, 10], max_tokens=[max_tokens, 0])
    setup = make_setup(latency=latency, macro_steps=macro, async_scheduling=asynchronous)
    result = simulate(setup, workload)
    a, b = result.records.iloc[0], result.records.iloc[1]
    assert a.finish_s == pytest.approx(0.098, abs=1e-12)  # its reply ends when its token is out
    assert b.finish_s == pytest.approx(b_finish_s, abs=1e-12)
    # A's extra token shares one of B's steps; B (stopping at end-of-sequence too) has one of
    # its own after its last token, alone
    assert result.steps["num_steps"].sum() == (11 if asynchronous else 10)


def test_blocks_of_a_request_stopping_at_end_of_sequence_are_freed_one_step_later() -> None:
    # 32-token prompts are 2 blocks each, plus a third as decoding starts the next block.
    workload = Workload.from_arrays([0.0, 0.0], [32, 32], [3, 10])
    used = {}
    for asynchronous in (False, True):
        steps = simulate(make_setup(latency=TEN_MS, macro_steps=False,
                                    async_scheduling=asynchronous), workload).steps
        used[asynchronous] = steps["kv_used_end"].tolist()
    # A's last token comes in step 3: its 3 blocks are free when that step ends, or with async
    # only after step 4, which it rides along in
    assert used[False][:4] == [4, 6, 3, 3]
    assert used[True][:4] == [4, 6, 6, 3]


@pytest.mark.parametrize(("overlap", "asynchronous", "hidden"), [
    (True, None, True),  # a profile with its host terms apart, async by the release: hidden
    (True, False, False),  # a synchronous engine never hides host work
    (False, None, False),  # a profile fitted as one sum keeps the sum
])
def test_host_work_hides_behind_gpu_time_only_where_the_profile_sets_it_apart(
        tmp_path, overlap: bool, asynchronous: bool | None, hidden: bool) -> None:
    from sim.config.deployment import resolve
    from sim.config.scenario import parse_scenario

    profile = tmp_path / "split.yaml"
    profile.write_text(
        f"name: split\nhost_overlap: {str(overlap).lower()}\ncoefficients:\n"
        "  step_overhead_ms: 1.0\n  per_seq_overhead_ms: 0.01\n"
        "  per_prefill_seq_overhead_ms: 0.1\n  compute_efficiency: 0.6\n"
        "  memory_efficiency: 0.8\n  allreduce_latency_us: 8\n  allreduce_efficiency: 0.7\n")
    engine = {"latency_profile": str(profile)}
    if asynchronous is not None:
        engine["async_scheduling"] = asynchronous
    deployment = resolve(parse_scenario({
        "model": "llama-3.1-8b", "hardware": {"gpu": "h100-sxm"}, "engine": engine,
        "workload": {"arrivals": {"process": "all_at_once"}, "num_requests": 1,
                     "lengths": {"input": 10, "output": 2}}}))
    assert deployment.setup.latency.async_scheduling is hidden
    decode = Batch(decode_seqs=8, decode_context_tokens=8000)
    latency = deployment.setup.latency
    if hidden:  # max(host, GPU) in a busy engine, the sum right after idling
        assert latency.step_time(decode) < latency.step_time(decode, overlapped=False)
    else:
        assert latency.step_time(decode) == latency.step_time(decode, overlapped=False)


def test_a_step_carrying_only_a_finished_request_is_run_but_is_no_inter_token_gap() -> None:
    # one request, stopping at end-of-sequence after 3 tokens: prompt step, 2 decode steps,
    # then the step planned before its end was seen, with nothing else to do
    latency = LinearLatency(base=0.010, per_token=0.001)
    result = simulate(make_setup(latency=latency, async_scheduling=True),
                      Workload.from_arrays([0.0], [32], [3]))
    assert result.steps["num_steps"].sum() == 4
    assert result.steps["duration_s"].iloc[-1] == pytest.approx(0.011)  # its one discarded token
    assert result.records.iloc[0].finish_s == pytest.approx(0.042 + 0.022)  # before that step
    assert len(result.itl_durations_s) == 2  # the two real decode steps
