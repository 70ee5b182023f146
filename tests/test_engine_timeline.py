"""Exact small timelines: what one or two requests see on an otherwise idle engine."""

from __future__ import annotations

import numpy as np
import pytest

from sim.fleet.simulation import simulate
from sim.workload.workload import Workload
from tests.helpers import LinearLatency, make_setup


def one_request(prompt: int, output: int, arrival: float = 0.0) -> Workload:
    return Workload.from_arrays([arrival], [prompt], [output])


@pytest.mark.parametrize("macro", [True, False])
def test_single_request_ttft_is_its_prefill_step_and_e2e_the_sum_of_steps(macro: bool) -> None:
    latency = LinearLatency(base=0.010, per_token=0.001, per_context=0.0)
    result = simulate(make_setup(latency=latency, macro_steps=macro), one_request(100, 5, 2.0))
    row = result.records.iloc[0]
    prefill = 0.010 + 0.001 * 100  # one step computes all 100 prompt tokens
    decode = 0.010 + 0.001 * 1  # then each of the other 4 tokens is one decode step
    assert row.first_token_s == pytest.approx(2.0 + prefill, abs=1e-12)
    assert row.finish_s == pytest.approx(2.0 + prefill + 4 * decode, abs=1e-12)
    assert row.ttft_s == pytest.approx(prefill, abs=1e-12)
    assert row.tpot_s == pytest.approx(decode, abs=1e-12)
    assert row.output_tokens == 5 and row.preemptions == 0


def test_long_prompt_is_chunked_by_the_token_budget() -> None:
    latency = LinearLatency(base=0.010, per_token=0.001)
    setup = make_setup(latency=latency, max_num_batched_tokens=256)
    row = simulate(setup, one_request(600, 1)).records.iloc[0]
    # 256 + 256 + 88 tokens over three steps; the first token comes with the last chunk
    expected = 3 * 0.010 + 0.001 * 600
    assert row.first_token_s == pytest.approx(expected, abs=1e-12)
    assert row.finish_s == row.first_token_s


def test_decode_context_grows_by_one_token_per_step() -> None:
    latency = LinearLatency(base=0.0, per_token=0.0, per_context=0.001)
    row = simulate(make_setup(latency=latency), one_request(10, 4)).records.iloc[0]
    # prefill step: no decode context; decode steps attend to 11, 12, 13 tokens
    assert row.finish_s == pytest.approx(0.001 * (11 + 12 + 13), abs=1e-12)


def test_second_request_joins_the_running_batch_at_the_next_step_boundary() -> None:
    latency = LinearLatency(base=0.010, per_token=0.0)
    workload = Workload.from_arrays([0.0, 0.015], [32, 32], [10, 2])
    records = simulate(make_setup(latency=latency), workload).records
    first, second = records.iloc[0], records.iloc[1]
    # steps are 10 ms; the arrival at 15 ms is scheduled in the step starting at 20 ms
    assert second.first_scheduled_s == pytest.approx(0.020)
    assert second.first_token_s == pytest.approx(0.030)
    assert second.finish_s == pytest.approx(0.040)
    assert first.finish_s == pytest.approx(0.100)  # 10 steps, one token each, never delayed


def test_prefix_cache_hit_skips_the_shared_prompt() -> None:
    latency = LinearLatency(base=0.010, per_token=0.001)
    workload = Workload.from_arrays(
        [0.0, 1.0], [320, 320], [1, 1], prefix_key=[5, 5], prefix_tokens=[256, 256]
    )
    records = simulate(make_setup(latency=latency), workload).records
    assert records.iloc[0].cached_tokens == 0
    assert records.iloc[1].cached_tokens == 256
    assert records.iloc[1].ttft_s == pytest.approx(0.010 + 0.001 * 64)


def test_fully_cached_prompt_still_recomputes_its_last_token() -> None:
    latency = LinearLatency(base=0.010, per_token=0.001)
    workload = Workload.from_arrays(
        [0.0, 1.0], [64, 64], [1, 1], prefix_key=[3, 3], prefix_tokens=[64, 64]
    )
    records = simulate(make_setup(latency=latency), workload).records
    # 63 tokens' worth of full blocks could hit, but only 3 whole blocks (48 tokens) do,
    # because vLLM always leaves at least one token to compute
    assert records.iloc[1].cached_tokens == 48
    assert records.iloc[1].ttft_s == pytest.approx(0.010 + 0.001 * 16)


def test_without_prefix_caching_nothing_hits() -> None:
    workload = Workload.from_arrays(
        [0.0, 1.0], [320, 320], [1, 1], prefix_key=[5, 5], prefix_tokens=[256, 256]
    )
    result = simulate(make_setup(prefix_caching=False), workload)
    assert result.records["cached_tokens"].tolist() == [0, 0]
    assert result.prefix_cache_hit_rate == 0.0


def test_memory_pressure_preempts_the_youngest_and_recomputes_it() -> None:
    # 10 blocks of 4 tokens; two requests of 8-token prompts growing to 23 tokens (6 blocks)
    latency = LinearLatency(base=0.010, per_token=0.0)
    workload = Workload.from_arrays([0.0, 0.0], [8, 8], [16, 16])
    setup = make_setup(latency=latency, num_gpu_blocks=10, block_size=4)
    result = simulate(setup, workload)
    records = result.records
    assert result.preemptions >= 1
    assert records.iloc[0].preemptions == 0  # the oldest is never the victim here
    assert records.iloc[1].preemptions >= 1
    assert records["output_tokens"].tolist() == [16, 16]
    # the older request ran without interruption: 1 prefill + 15 decode steps
    assert records.iloc[0].finish_s == pytest.approx(16 * 0.010)


def test_requests_longer_than_max_model_len_are_rejected_and_counted() -> None:
    workload = Workload.from_arrays([0.0, 0.0], [100, 5000], [10, 10])
    result = simulate(make_setup(max_model_len=4096), workload)
    assert result.records["status"].tolist() == ["completed", "rejected"]
    assert result.rejected_reasons == {"prompt_exceeds_max_model_len": 1}
    assert np.isnan(result.records.iloc[1].finish_s)


def test_output_is_truncated_at_max_model_len() -> None:
    result = simulate(make_setup(max_model_len=128), one_request(100, 500))
    assert result.records.iloc[0].output_tokens == 28
    assert result.truncated_outputs == 1


def test_max_tokens_caps_outputs_and_counts_the_tokens_saved() -> None:
    workload = Workload.from_arrays([0.0, 0.0, 0.0], [50, 50, 50], [10, 300, 40], max_tokens=32)
    result = simulate(make_setup(), workload)
    assert result.records["output_tokens"].tolist() == [10, 32, 32]
    assert result.capped_outputs == 2
    assert result.output_tokens_saved == (300 - 32) + (40 - 32)


def test_single_request_timeline_with_the_roofline_model() -> None:
    from sim.config.deployment import resolve
    from sim.config.scenario import parse_scenario
    from sim.engine.batch import Batch, chunk_terms

    scenario = parse_scenario({
        "model": "llama-3.1-8b",
        "hardware": {"gpu": "h100-sxm"},
        "engine": {"latency_profile": "roofline"},
        "workload": {"arrivals": {"process": "all_at_once"}, "num_requests": 1,
                     "lengths": {"input": 1000, "output": 4}},
    })
    setup = resolve(scenario).setup
    result = simulate(setup, one_request(1000, 4, arrival=0.5))
    row = result.records.iloc[0]
    pairs, kv = chunk_terms(1000, 0)
    # vLLM 0.15.1 schedules asynchronously on an H100, but the roofline profile's fixed costs
    # are one sum with the GPU time, so no host work is hidden (docs/latency-model.md)
    assert setup.limits.async_scheduling and not setup.latency.async_scheduling
    prefill = setup.latency.step_time(Batch(1000, 1, pairs, kv, 0, 0))
    decodes = [setup.latency.step_time(Batch(decode_seqs=1, decode_context_tokens=1001 + i))
               for i in range(3)]
    assert row.ttft_s == pytest.approx(prefill, rel=1e-12)
    assert row.e2e_s == pytest.approx(prefill + sum(decodes), rel=1e-12)


def test_a_streaming_client_waits_for_ingest_and_every_tokens_streaming() -> None:
    """A per-operator profile adds what happens outside the engine: the request's HTTP and
    tokenization before its first token, and each output token's streaming. The costs are set
    here to the published ~15 ms and ~0.05 ms (a fit may put either at zero)."""
    from sim.config.deployment import resolve
    from sim.config.scenario import parse_scenario
    from sim.engine.batch import Batch, chunk_terms

    scenario = parse_scenario({
        "model": "llama-3.1-8b",
        "hardware": {"gpu": "h100-sxm"},
        "engine": {"latency_profile": "trained"},
        "workload": {"arrivals": {"process": "all_at_once"}, "num_requests": 1,
                     "lengths": {"input": 1000, "output": 4}},
    })
    setup = resolve(scenario).setup
    ingest, per_token = 0.015, 0.00005
    setup.latency.request_overhead_s, setup.latency.output_token_overhead_s = ingest, per_token
    row = simulate(setup, one_request(1000, 4, arrival=0.5)).records.iloc[0]
    pairs, kv = chunk_terms(1000, 0)
    prefill = setup.latency.step_time(Batch(1000, 1, pairs, kv, 0, 0), overlapped=False)
    decodes = [setup.latency.step_time(Batch(decode_seqs=1, decode_context_tokens=1001 + i))
               for i in range(3)]
    assert row.ttft_s == pytest.approx(ingest + prefill + per_token, rel=1e-12)
    assert row.e2e_s == pytest.approx(ingest + prefill + sum(decodes) + 4 * per_token, rel=1e-12)


def test_naive_policy_serves_one_whole_request_at_a_time() -> None:
    from sim.config.deployment import resolve
    from sim.config.scenario import parse_scenario
    from sim.runner.run import run_scenario

    data = {
        "model": "llama-3.1-8b",
        "hardware": {"gpu": "h100-sxm"},
        # the engine's own times (no client costs), so service periods can be compared
        "engine": {"scheduler": "naive", "latency_profile": "roofline"},
        "workload": {"arrivals": {"rate_per_s": 20}, "num_requests": 60,
                     "lengths": {"input": {"dist": "uniform", "min": 100, "max": 12000},
                                 "output": {"dist": "uniform", "min": 1, "max": 50}}},
    }
    scenario = parse_scenario(data)
    setup = resolve(scenario).setup
    assert setup.limits.max_num_seqs == 1 and not setup.limits.chunked_prefill
    assert not setup.prefix_caching
    outcome = run_scenario(scenario)
    steps, records = outcome.result.steps, outcome.result.records
    assert (steps["prefill_seqs"] + steps["decode_seqs"] <= 1).all()
    assert (steps.loc[steps["prefill_seqs"] > 0, "prefill_tokens"]
            .isin(records["prompt_tokens"])).all()  # every prompt in one step
    ordered = records.sort_values("first_scheduled_s")
    # service never overlaps: each request starts after the previous one finished
    assert (ordered["first_scheduled_s"].to_numpy()[1:]
            >= ordered["finish_s"].to_numpy()[:-1] - 1e-12).all()
    continuous = run_scenario(parse_scenario(
        {**data, "engine": {"latency_profile": "roofline"}})).summary
    assert continuous["e2e_ms"]["mean"] < outcome.summary["e2e_ms"]["mean"]
