"""KV memory planning against block counts real vLLM reported, and its error messages."""

from __future__ import annotations

import pytest

from sim.config.memory_plan import MemoryPlan, plan_memory
from sim.config.model_catalog import load_model
from sim.engine.errors import ScenarioError
from sim.engine.gpu import GIB, load_gpu

DEFAULTS = dict(gpu_memory_utilization=0.9, block_size=16, weight_dtype="bf16",
                kv_cache_dtype="auto", max_num_batched_tokens=2048)


def plan(model_id: str, gpu_id: str, tp: int, **overrides) -> MemoryPlan:
    settings = {**DEFAULTS, **overrides}
    return plan_memory(load_model(model_id), load_gpu(gpu_id), tensor_parallel=tp, **settings)


@pytest.mark.parametrize(
    ("model_id", "gpu_id", "tp", "max_num_seqs", "real_blocks", "planned_blocks"),
    [
        # vLLM v0.15 (llm-d) on H100: kv.blocks_total_gpu in the h100_vllm_steps calibration.
        ("llama-2-70b", "h100-sxm", 4, 128, 31_356, 31_368),
        ("codellama-34b", "h100-sxm", 2, 128, 26_602, 26_617),
        # vLLM 0.19 on an RTX 4090: num_gpu_blocks in the LLMServingSim benchmark meta.json.
        ("llama-3.1-8b", "rtx-4090", 1, 256, 2_588, 2_574),
    ],
)
def test_block_counts_match_real_vllm(model_id, gpu_id, tp, max_num_seqs, real_blocks,
                                      planned_blocks) -> None:
    result = plan(model_id, gpu_id, tp, max_num_seqs=max_num_seqs)
    assert result.num_gpu_blocks == planned_blocks  # pinned, so a formula change shows
    assert result.num_gpu_blocks == pytest.approx(real_blocks, rel=0.03)


def test_plan_accounts_for_the_whole_budget() -> None:
    result = plan("llama-3.1-8b", "rtx-4090", 1)
    used = (result.weight_bytes_per_gpu + result.activation_reserve_bytes
            + result.non_torch_bytes + result.kv_bytes_per_gpu)
    budget = 0.9 * 25_250_627_584
    assert budget - result.kv_bytes_per_block < used <= budget
    assert result.kv_bytes_per_block == 16 * 131_072
    assert result.kv_capacity_tokens == result.num_gpu_blocks * 16


def test_tensor_parallel_halves_weights_and_kv_per_gpu() -> None:
    one = plan("llama-3.1-8b", "h100-sxm", 1)
    two = plan("llama-3.1-8b", "h100-sxm", 2)
    assert two.weight_bytes_per_gpu == pytest.approx(one.weight_bytes_per_gpu / 2, rel=1e-9)
    assert two.kv_bytes_per_block == one.kv_bytes_per_block // 2
    assert two.num_gpu_blocks > 2 * one.num_gpu_blocks


def test_kv_heads_are_replicated_when_tp_exceeds_them() -> None:
    # Llama-3.1-8B has 8 KV heads: at TP 8 and at TP 16 each rank keeps one whole head.
    tp8 = plan("llama-3.1-8b", "l4", 8)
    tp16 = plan("llama-3.1-8b", "l4", 16)
    assert tp8.kv_bytes_per_block == tp16.kv_bytes_per_block == 16 * 2 * 32 * 1 * 128 * 2
    # At TP 16 every rank holds a whole K/V projection head, more than 1/16 of the K/V weights.
    model = load_model("llama-3.1-8b")
    replicated = 32 * 2 * 4096 * 128 * 2 / 2  # half a head's K/V projection per layer, bf16
    assert tp16.weight_bytes_per_gpu == pytest.approx(model.weight_bytes("bf16") / 16 + replicated)


def test_fp8_kv_cache_doubles_the_blocks_roughly() -> None:
    auto = plan("llama-3.1-8b", "h100-sxm", 1)
    fp8 = plan("llama-3.1-8b", "h100-sxm", 1, kv_cache_dtype="fp8")
    assert fp8.num_gpu_blocks == pytest.approx(2 * auto.num_gpu_blocks, abs=1)


def test_measured_block_count_is_used_as_is() -> None:
    result = plan("llama-3.1-8b", "rtx-4090", 1, num_gpu_blocks=2588)
    assert result.num_gpu_blocks == 2588
    assert result.kv_capacity_tokens == 41_408  # num_kv_tokens in the same meta.json
    assert result.kv_bytes_per_gpu == 2588 * 16 * 131_072


def test_weights_that_do_not_fit_say_how_to_fix_it() -> None:
    with pytest.raises(ScenarioError) as err:
        plan("llama-3.1-70b", "h100-sxm", 1)
    assert str(err.value) == (
        "llama-3.1-70b in bf16 needs 131.4 GiB of weights per replica; one h100-sxm at "
        "gpu_memory_utilization 0.9 has 71.3 GiB, which leaves no room for a KV block: use "
        "hardware.tensor_parallel >= 2, a smaller weight_dtype, or a larger GPU"
    )


def test_a_smaller_weight_dtype_makes_it_fit() -> None:
    with pytest.raises(ScenarioError, match="tensor_parallel >= 2"):
        plan("llama-3.1-8b", "t4", 1)
    assert plan("llama-3.1-8b", "t4", 1, weight_dtype="awq-int4").num_gpu_blocks > 0


def test_tensor_parallel_must_split_the_heads() -> None:
    with pytest.raises(ScenarioError, match=r"tensor_parallel=3 .*use one of 1, 2, 4, 8"):
        plan("llama-3.1-8b", "h100-sxm", 3)


@pytest.mark.parametrize(
    ("override", "field"),
    [({"gpu_memory_utilization": 1.2}, "gpu_memory_utilization=1.2"),
     ({"block_size": 0}, "block_size=0"),
     ({"num_gpu_blocks": 0}, "num_gpu_blocks=0")],
)
def test_bad_settings_are_named(override, field) -> None:
    with pytest.raises(ScenarioError, match=field):
        plan("llama-3.1-8b", "h100-sxm", 1, **override)


def test_moe_weights_count_every_expert() -> None:
    # Mixtral-8x7B is 87 GiB in bf16: two H100s, not one.
    with pytest.raises(ScenarioError, match=r"mixtral-8x7b in bf16 needs 87\.0 GiB"):
        plan("mixtral-8x7b", "h100-sxm", 1)
    per_gpu = plan("mixtral-8x7b", "h100-sxm", 2).weight_bytes_per_gpu
    assert per_gpu / GIB == pytest.approx(43.5, abs=0.05)
