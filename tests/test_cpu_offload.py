"""The CPU KV offload tier from a scenario: sized from its GiB, refused when it cannot be, and
turning evictions into hits that cost a host-link transfer instead of a recompute."""

from __future__ import annotations

import pytest

from sim.config.deployment import resolve
from sim.config.scenario import parse_scenario
from sim.engine.errors import ScenarioError
from sim.runner.run import run_scenario


def scenario(engine: dict, hardware: dict | None = None, **workload: object) -> dict:
    return {
        "model": "llama-3.1-8b", "hardware": {"gpu": "h100-sxm", **(hardware or {})},
        "engine": engine,
        "workload": workload or {"arrivals": {"process": "all_at_once"}, "num_requests": 1,
                                 "lengths": {"input": 100, "output": 2}},
    }


def test_the_offload_size_becomes_blocks_of_the_replicas_kv_bytes() -> None:
    deployment = resolve(parse_scenario(scenario({"cpu_offload_gib": 8})))
    # Llama-3.1-8B: 32 layers x 8 KV heads x 128 x 2 (K and V) x 2 bytes = 128 KiB per token,
    # so a 16-token block is 2 MiB and 8 GiB holds 4,096 blocks
    assert deployment.setup.cpu_blocks == 4096
    tp2 = resolve(parse_scenario(scenario({"cpu_offload_gib": 8}, {"tensor_parallel": 2})))
    assert tp2.setup.cpu_blocks == 4096  # the size covers all the replica's GPUs together


@pytest.mark.parametrize(("engine", "hardware", "field"), [
    ({"cpu_offload_gib": 300}, {}, "exceeds the host memory"),  # 256 GiB per H100 server GPU
    ({"cpu_offload_gib": 100}, {"host_memory_gib": 64}, "exceeds the host memory"),
    ({"cpu_offload_gib": 8, "prefix_caching": False}, {}, "needs prefix caching"),
    ({"cpu_offload_gib": -1}, {}, "cpu_offload_gib"),
])
def test_an_impossible_offload_is_refused_with_the_field_and_the_fix(
        engine: dict, hardware: dict, field: str) -> None:
    with pytest.raises(ScenarioError, match=field):
        resolve(parse_scenario(scenario(engine, hardware)))


def test_prefixes_evicted_from_a_small_gpu_cache_hit_in_host_memory() -> None:
    # 40 system prompts of 1,024 tokens (64 blocks each), 2,560 blocks of GPU cache: the
    # prompts' own tails and replies push older system prompts out; with host memory behind
    # the cache those come back from there instead of being recomputed
    workload = {"arrivals": {"process": "poisson", "rate_per_s": 20}, "num_requests": 800,
                "shared_prefix": {"num_groups": 40, "prompts_per_group": 20,
                                  "system_prompt_tokens": 1024, "question_tokens": 1200,
                                  "output_tokens": 50}}
    summaries = {}
    for gib in (0, 16):
        engine = {"num_gpu_blocks": 2560, "cpu_offload_gib": gib, "max_model_len": 4096}
        summaries[gib] = run_scenario(parse_scenario(scenario(engine, **workload))).summary["kv"]
    without, with_cpu = summaries[0], summaries[16]
    assert without["prefix_cache_hits_by_tier"]["cpu"] == 0
    assert with_cpu["prefix_cache_hits_by_tier"]["cpu"] > 0.05
    assert with_cpu["prefix_cache_hit_rate"] > without["prefix_cache_hit_rate"] + 0.05


def test_a_host_memory_hit_costs_its_kv_bytes_over_the_host_link() -> None:
    from sim.engine.batch import Batch

    latency = resolve(parse_scenario(scenario({"cpu_offload_gib": 8}))).setup.latency
    prefill = Batch(prefill_tokens=100, prefill_seqs=1, prefill_attention_pairs=5050.0,
                    prefill_kv_tokens=1124)
    loaded = prefill._replace(loaded_kv_tokens=1024)
    # 1,024 tokens x 128 KiB of Llama-3.1-8B KV over the H100's PCIe Gen5 x16 (64 GB/s)
    expected = 1024 * 131_072 / 64e9
    assert latency.step_time(loaded) - latency.step_time(prefill) == pytest.approx(expected)
