"""The per-operator step-time model: hand-computed step times of a tiny model on a made-up GPU
with round figures, and the properties the engine relies on."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.engine.batch import Batch
from sim.engine.gpu import load_gpu
from sim.engine.latency_profile import OperatorCoefficients, load_profile
from sim.engine.model_spec import ModelSpec
from sim.engine.operator_latency_model import OperatorLatencyModel

# 2 layers, hidden 4, 2 query heads and 1 KV head of width 2, a gated MLP of width 8, a
# vocabulary of 10: per layer q, o = 4x4, k, v = 4x2 (48 parameters), MLP 3x4x8 (96)
TINY = ModelSpec(id="tiny", architecture="LlamaForCausalLM", num_layers=2, hidden_size=4,
                 num_attention_heads=2, num_kv_heads=1, head_dim=2, intermediate_size=8,
                 vocab_size=10, max_position_embeddings=4096)
# 1 TFLOP/s dense BF16, 1 GB/s of memory, 1 GB/s of link: times are easy to follow
GPU = dataclasses.replace(load_gpu("h100-sxm"), id="round", bf16_tflops=1.0, fp8_tflops=None,
                          mem_bandwidth_gb_per_s=1.0, interconnect_gb_per_s=1.0)
KV_BYTES = 2 * 2 * 1 * 2 * 2  # K and V x 2 layers x 1 head x width 2 x 2 bytes = 16
IDEAL = OperatorCoefficients(
    gemm_compute_efficiency=1.0, weight_memory_efficiency=1.0, kv_memory_efficiency=1.0,
    attention_compute_efficiency=1.0, allreduce_latency_us=0.0, allreduce_efficiency=1.0,
    step_overhead_ms=0.0, per_seq_overhead_us=0.0, per_prefill_seq_overhead_ms=0.0,
    graph_layer_overhead_us=0.0, eager_layer_overhead_us=0.0, moe_layer_overhead_us=0.0,
    request_overhead_ms=0.0, output_token_overhead_ms=0.0)

# bytes of weights each operator reads (BF16): projections 2 x 48 x 2; MLP 2 x 96 x 2 plus
# the norms (2 per layer + 1 final, 4 wide: 20 parameters) that ride with it; LM head 10 x 4 x 2
PROJECTION_BYTES, MLP_BYTES, LM_HEAD_BYTES = 192, 384 + 40, 80
PROJECTION_FLOPS, MLP_FLOPS, LM_HEAD_FLOPS = 2 * 96, 2 * 192, 2 * 40  # per token / sequence
PAIR_FLOPS = 4 * 2 * 2 * 2  # QK^T and AV, 2 layers x 2 heads x width 2


def latency(c: OperatorCoefficients = IDEAL, tp: int = 1, **options) -> OperatorLatencyModel:
    return OperatorLatencyModel(TINY, GPU, c, tensor_parallel=tp, weight_dtype="bf16",
                                kv_bytes_per_token_per_gpu=KV_BYTES / tp, **options)


def test_one_decode_reads_every_operators_weights_and_its_kv() -> None:
    t = latency().step_time(Batch(decode_seqs=1, decode_context_tokens=100))
    weights = (PROJECTION_BYTES + MLP_BYTES + LM_HEAD_BYTES) / 1e9  # all memory-bound
    kv = 100 * KV_BYTES / 1e9  # 100 x 16 bytes read beats 100 x 32 FLOPs at 1 TFLOP/s
    assert t == pytest.approx(weights + kv, rel=1e-12)


def test_a_long_prefill_is_bound_by_compute_operator_by_operator() -> None:
    tokens, pairs = 10_000_000, 3e12
    t = latency().step_time(Batch(prefill_tokens=tokens, prefill_seqs=1,
                                  prefill_attention_pairs=pairs, prefill_kv_tokens=tokens))
    gemms = tokens * (PROJECTION_FLOPS + MLP_FLOPS) / 1e12  # 5.76 s, far above 424 ns of reads
    lm_head = LM_HEAD_BYTES / 1e9  # one sampled row: reading the weights is longer
    attention = max(pairs * PAIR_FLOPS / 1e12, tokens * KV_BYTES / 1e9)
    assert t == pytest.approx(gemms + lm_head + attention, rel=1e-12)


def test_each_operator_takes_its_own_bound_not_the_steps() -> None:
    """At 1,050 tokens the projections are compute-bound (201.6 ns of FLOPs > 192 ns of
    reads) while the MLP (403.2 < 424 ns) and the LM head are memory-bound: the step is the sum
    of per-operator maxima, more than one max over the whole step would give."""
    tokens = 1_050
    t = latency().step_time(Batch(prefill_tokens=tokens, prefill_seqs=1))
    assert t == pytest.approx(tokens * PROJECTION_FLOPS / 1e12 + MLP_BYTES / 1e9
                              + LM_HEAD_BYTES / 1e9, rel=1e-12)
    whole_step = max((tokens * (PROJECTION_FLOPS + MLP_FLOPS) + LM_HEAD_FLOPS) / 1e12,
                     (PROJECTION_BYTES + MLP_BYTES + LM_HEAD_BYTES) / 1e9)
    assert t > whole_step * 1.01


def test_efficiencies_scale_their_own_operators() -> None:
    half_memory = dataclasses.replace(IDEAL, weight_memory_efficiency=0.5)
    batch = Batch(decode_seqs=1, decode_context_tokens=100)
    weights = (PROJECTION_BYTES + MLP_BYTES + LM_HEAD_BYTES) / 1e9
    assert latency(half_memory).step_time(batch) == pytest.approx(
        2 * weights + 100 * KV_BYTES / 1e9, rel=1e-12)
    half_kv = dataclasses.replace(IDEAL, kv_memory_efficiency=0.5)
    assert latency(half_kv).step_time(batch) == pytest.approx(
        weights + 2 * 100 * KV_BYTES / 1e9, rel=1e-12)


def test_fixed_costs_per_step_sequence_layer_and_graph() -> None:
    c = dataclasses.replace(IDEAL, step_overhead_ms=1.0, per_seq_overhead_us=10.0,
                            per_prefill_seq_overhead_ms=0.5, graph_layer_overhead_us=100.0,
                            eager_layer_overhead_us=300.0)
    graphs = latency(c, cuda_graph_sizes=(1, 2, 4, 8))
    decode = Batch(decode_seqs=3, decode_context_tokens=30)
    variable = latency().step_time(Batch(decode_seqs=4, decode_context_tokens=30))
    # 3 sequences run padded to the captured 4 (the LM head is charged for the 3 real ones)
    padding_free = (latency().step_time(decode) - variable)
    assert padding_free == pytest.approx(0.0, abs=1e-15)  # memory-bound: rows cost nothing
    assert graphs.step_time(decode) == pytest.approx(
        variable + 1e-3 + 3 * 10e-6 + 2 * 100e-6, rel=1e-9)
    prefill = Batch(prefill_tokens=5, prefill_seqs=1, decode_seqs=2, decode_context_tokens=20)
    plain = latency(cuda_graph_sizes=(1, 2, 4, 8)).step_time(prefill)
    assert graphs.step_time(prefill) == pytest.approx(
        plain + 1e-3 + 3 * 10e-6 + 0.5e-3 + 2 * 300e-6, rel=1e-9)  # with prefill: eager


def test_tensor_parallel_splits_the_work_and_adds_two_all_reduces_per_layer() -> None:
    c = dataclasses.replace(IDEAL, allreduce_latency_us=5.0, allreduce_efficiency=0.5)
    batch = Batch(decode_seqs=10, decode_context_tokens=1000)
    one, two = latency().step_time(batch), latency(c, tp=2).step_time(batch)
    # per GPU: half the weights and KV; 2 x 2 layers all-reduces of 10 tokens x 4 x 2 bytes,
    # each moving 2 (TP-1)/TP of it over a link at half its 1 GB/s
    allreduce = 4 * (5e-6 + 2 * 1 / 2 * 10 * 4 * 2 / 0.5e9)
    assert two == pytest.approx(one / 2 + allreduce, rel=1e-12)


def test_moe_reads_only_the_experts_the_tokens_were_routed_to() -> None:
    moe = dataclasses.replace(TINY, num_experts=8, experts_per_token=2,
                              expert_intermediate_size=8, num_moe_layers=2)
    c = dataclasses.replace(IDEAL, moe_layer_overhead_us=7.0)
    model = OperatorLatencyModel(moe, GPU, c, tensor_parallel=1, weight_dtype="bf16",
                                 kv_bytes_per_token_per_gpu=KV_BYTES)
    expert_bytes = 2 * 3 * 4 * 8 * 2  # 2 MoE layers x one expert's 3 x 4 x 8 weights x 2 B
    one = model.step_time(Batch(decode_seqs=1, decode_context_tokens=1))
    four = model.step_time(Batch(decode_seqs=4, decode_context_tokens=4))
    touched = moe.expected_active_experts(4) - moe.expected_active_experts(1)
    # 4 tokens read more distinct experts than 1, three more KV tokens, three more LM-head rows
    # (memory-bound: free) and nothing else
    assert four - one == pytest.approx(touched * expert_bytes / 1e9 + 3 * KV_BYTES / 1e9,
                                       rel=1e-9)
    assert one > 2 * 7e-6  # the routing cost of both MoE layers is in every step


@settings(max_examples=60, deadline=None)
@given(seqs=st.integers(1, 300), context=st.integers(0, 100_000), steps=st.integers(1, 400),
       graphs=st.booleans(), overlapped=st.booleans())
def test_a_decode_run_is_its_steps_one_by_one(seqs, context, steps, graphs, overlapped) -> None:
    """The closed form the engine uses for a run of decode steps equals stepping."""
    shipped = load_profile("trained").resolve()
    model = latency(shipped, cuda_graph_sizes=(1, 2, 4, 8, 16, 32, 64, 128) if graphs else (),
                    async_scheduling=overlapped)
    series = model.decode_run(seqs, context, steps)
    one_by_one = [model.step_time(Batch(decode_seqs=seqs,
                                        decode_context_tokens=context + i * seqs))
                  for i in range(steps)]
    assert np.allclose(series.durations(), one_by_one, rtol=1e-9, atol=1e-15)


def test_host_work_hides_behind_the_gpu_only_when_overlapped() -> None:
    c = dataclasses.replace(IDEAL, step_overhead_ms=1.0)
    model = latency(c, async_scheduling=True)
    batch = Batch(decode_seqs=1, decode_context_tokens=100)
    gpu = latency().step_time(batch)
    assert model.step_time(batch) == pytest.approx(max(1e-3, gpu))
    assert model.step_time(batch, overlapped=False) == pytest.approx(1e-3 + gpu)
