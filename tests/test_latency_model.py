"""The roofline step-time model and its profile files."""

from __future__ import annotations

from pathlib import Path

import dataclasses

import numpy as np
import pytest

from sim.config.vllm_release import release_for
from sim.engine.batch import Batch, chunk_terms
from sim.engine.errors import ScenarioError
from sim.engine.gpu import GpuSpec, load_gpu
from sim.engine.latency_model import LatencyModel, peak_flops

# vLLM 0.15.1's capture sizes on an H100 (1,024 sequences, 8,192 tokens)
VLLM_CAPTURE_SIZES = release_for("0.15.1").cuda_graph_sizes(1024, 8192)
from sim.config.memory_plan import kv_bytes_per_token_per_gpu
from sim.config.model_catalog import load_model
from sim.engine.latency_profile import Coefficients, load_profile
from sim.engine.model_spec import ModelSpec

ZERO_OVERHEAD = Coefficients(
    step_overhead_ms=0.0, per_seq_overhead_ms=0.0, per_prefill_seq_overhead_ms=0.0,
    compute_efficiency=1.0, memory_efficiency=1.0, allreduce_latency_us=0.0,
    allreduce_efficiency=1.0,
)


def model_for(model_id: str, gpu_id: str, tp: int = 1, dtype: str = "bf16",
              coefficients: Coefficients = ZERO_OVERHEAD, **options: object) -> LatencyModel:
    model, gpu = load_model(model_id), load_gpu(gpu_id)
    return LatencyModel(
        model, gpu, coefficients, tensor_parallel=tp, weight_dtype=dtype,
        kv_bytes_per_token_per_gpu=kv_bytes_per_token_per_gpu(model, tp, "auto"), **options,
    )


def test_batch_one_decode_is_bound_by_streaming_the_weights() -> None:
    latency = model_for("llama-3.1-8b", "h100-sxm")
    model, gpu = load_model("llama-3.1-8b"), load_gpu("h100-sxm")
    t = latency.step_time(Batch(decode_seqs=1, decode_context_tokens=1))
    weights_s = model.weight_bytes_read(1, "bf16") / (gpu.mem_bandwidth_gb_per_s * 1e9)
    assert t == pytest.approx(weights_s, rel=0.01)
    assert 4e-3 < t < 6e-3  # ~15 GB at 3.35 TB/s


def test_long_prefill_is_bound_by_compute() -> None:
    latency = model_for("llama-3.1-8b", "h100-sxm")
    pairs, kv = chunk_terms(8192, 0)
    t = latency.step_time(Batch(prefill_tokens=8192, prefill_seqs=1,
                                prefill_attention_pairs=pairs, prefill_kv_tokens=kv))
    model = load_model("llama-3.1-8b")
    flops = 8192 * (model.linear_flops_per_token - 2 * model.hidden_size * model.vocab_size)
    flops += 2 * model.hidden_size * model.vocab_size  # logits for the one sampled token
    flops += pairs * model.attention_flops_per_token_per_context
    assert t == pytest.approx(flops / (load_gpu("h100-sxm").bf16_tflops * 1e12), rel=1e-9)


def test_decode_time_grows_with_context_and_tensor_parallel_splits_the_work() -> None:
    tp1 = model_for("llama-3.1-70b", "h100-sxm", tp=2)
    tp4 = model_for("llama-3.1-70b", "h100-sxm", tp=4)
    short = Batch(decode_seqs=64, decode_context_tokens=64 * 500)
    long = Batch(decode_seqs=64, decode_context_tokens=64 * 8000)
    assert tp1.step_time(long) > tp1.step_time(short)
    assert tp4.step_time(short) < tp1.step_time(short)


def test_tensor_parallel_adds_allreduce_cost_on_slow_links() -> None:
    coeffs = Coefficients(0, 0, 0, 1, 1, allreduce_latency_us=25, allreduce_efficiency=1)
    latency = model_for("llama-2-7b", "l4", tp=2, coefficients=coeffs)
    batch = Batch(decode_seqs=1, decode_context_tokens=1)
    no_comm = model_for("llama-2-7b", "l4", tp=2).step_time(batch)
    # two all-reduces per layer: 2 x 32 x 25 us, plus the bytes over PCIe
    assert latency.step_time(batch) - no_comm > 2 * 32 * 25e-6


def test_moe_decode_reads_more_experts_as_the_batch_grows() -> None:
    latency = model_for("mixtral-8x7b", "h100-sxm", tp=2)
    one = latency.step_time(Batch(decode_seqs=1, decode_context_tokens=100))
    many = latency.step_time(Batch(decode_seqs=64, decode_context_tokens=6400))
    assert many > 2 * one  # batch 1 reads 2 of 8 experts per layer, batch 64 nearly all


def test_fp8_uses_fp8_tensor_cores_only_where_the_gpu_has_them() -> None:
    h100 = load_gpu("h100-sxm")
    assert peak_flops(h100, "fp8") == h100.fp8_tflops * 1e12 > 1.9 * peak_flops(h100, "bf16")
    assert peak_flops(load_gpu("a100-80gb"), "fp8") == peak_flops(load_gpu("a100-80gb"), "bf16")
    assert peak_flops(load_gpu("h100-sxm"), "awq-int4") == peak_flops(load_gpu("h100-sxm"), "bf16")


def test_decode_run_matches_step_by_step_times() -> None:
    latency = model_for("llama-3.1-8b", "h100-sxm", coefficients=load_profile().resolve())
    run = latency.decode_run(48, 48 * 900, 300)
    one_by_one = [
        latency.step_time(Batch(decode_seqs=48, decode_context_tokens=48 * 900 + 48 * i))
        for i in range(300)
    ]
    np.testing.assert_allclose(run.durations(), one_by_one, rtol=1e-12)
    assert run.total == pytest.approx(sum(one_by_one), rel=1e-12)


def test_profile_overrides_pick_the_most_specific_match(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        "name: t\ncoefficients: {step_overhead_ms: 1, per_seq_overhead_ms: 0,"
        " per_prefill_seq_overhead_ms: 0, compute_efficiency: 0.5, memory_efficiency: 0.5,"
        " allreduce_latency_us: 1, allreduce_efficiency: 0.5}\n"
        "overrides:\n"
        "  - match: {gpu: h100-sxm, model: llama-3.1-8b}\n    coefficients: {step_overhead_ms: 3}\n"
        "  - match: {gpu: h100-sxm}\n    coefficients: {step_overhead_ms: 2, memory_efficiency: 0.9}\n"
    )
    profile = load_profile(str(path))
    both = profile.resolve(gpu="h100-sxm", model="llama-3.1-8b")
    assert both.step_overhead_ms == 3 and both.memory_efficiency == 0.9
    assert profile.resolve(gpu="h100-sxm", model="other").step_overhead_ms == 2
    assert profile.resolve(gpu="a100-80gb").step_overhead_ms == 1


def test_bad_profiles_are_reported(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="no profile"):
        load_profile("does-not-exist")
    path = tmp_path / "bad.yaml"
    path.write_text("coefficients: {compute_efficiency: 2}\n")
    with pytest.raises(ScenarioError):
        load_profile(str(path)).resolve()


# ---- host/GPU split, async scheduling and CUDA graphs, on numbers a test can work out --------
#
# A one-layer model (hidden 64, one head of 64, MLP 128, vocab 1000, bf16) on a GPU of exactly
# 1 TFLOP/s, 1 TB/s HBM and 100 GB/s links, all efficiencies 1. Per the model_spec formulas:
#   linear FLOPs per token without the LM head  2 x (attention 16384 + MLP 24576 + norms 192)
#                                               = 82304 FLOPs   -> 82.304 ns per token
#   LM head, per sequence                       2 x 64 x 1000 = 128000 FLOPs -> 128 ns
#   attention per (query, key) pair             4 x 64 = 256 FLOPs -> 0.256 ns
#   weights read (all but the input table)      105152 params x 2 B = 210304 B -> 210.304 ns
#   KV per token                                2 x 64 x 2 B = 256 B -> 0.256 ns
#   all-reduce bytes per token at TP 2          2 calls x 1 x 64 x 2 B / 100 GB/s = 2.56 ns
NS = 1e-9
UNIT_MODEL = ModelSpec(id="unit", architecture="LlamaForCausalLM", num_layers=1,
                       hidden_size=64, num_attention_heads=1, num_kv_heads=1, head_dim=64,
                       intermediate_size=128, vocab_size=1000, max_position_embeddings=4096)
UNIT_GPU = GpuSpec(id="unit", name="unit", vendor="test", hbm_gib=80,
                   mem_bandwidth_gb_per_s=1000, bf16_tflops=1, fp8_tflops=None, int8_tops=0,
                   interconnect="nvlink", interconnect_gb_per_s=100, source="test")
GRAPHS = (1, 2, 4, 8, 16)
# graph replay 1000 ns, eager launches 2000 ns, no host work
LAUNCH = dataclasses.replace(ZERO_OVERHEAD, graph_step_overhead_ms=0.001,
                             eager_step_overhead_ms=0.002)


def unit(coefficients: Coefficients = ZERO_OVERHEAD, tp: int = 1,
         **options: object) -> LatencyModel:
    return LatencyModel(UNIT_MODEL, UNIT_GPU, coefficients, tensor_parallel=tp,
                        weight_dtype="bf16", kv_bytes_per_token_per_gpu=256, **options)


def decode(seqs: int, context_each: int = 100) -> Batch:
    return Batch(decode_seqs=seqs, decode_context_tokens=seqs * context_each)


@pytest.mark.parametrize(("step_overhead_ms", "sync_ns", "async_ns"), [
    (0.0005, 900 + 943.616, 943.616),    # host 900 ns < GPU: async hides the host work
    (0.0010, 1400 + 943.616, 1400.0),    # host 1400 ns > GPU: the GPU waits for the host
])
def test_async_scheduling_takes_the_larger_of_host_and_gpu_instead_of_their_sum(
        step_overhead_ms: float, sync_ns: float, async_ns: float) -> None:
    # 4 decodes of context 100: GPU = max(compute 4 x 82.304 + 4 x 128 + 400 x 0.256 = 943.616,
    # memory 210.304 + 400 x 0.256 = 312.704) ns; host = overhead + 4 x 100 ns
    coefficients = dataclasses.replace(ZERO_OVERHEAD, step_overhead_ms=step_overhead_ms,
                                       per_seq_overhead_ms=0.0001)
    assert unit(coefficients).step_time(decode(4)) == pytest.approx(sync_ns * NS, rel=1e-12)
    overlapped = unit(coefficients, async_scheduling=True).step_time(decode(4))
    assert overlapped == pytest.approx(async_ns * NS, rel=1e-12)


def test_prefill_sequences_are_host_work_too() -> None:
    # a 10-token prompt: host = 300 + 100 + 5000 ns (per-prefill-sequence overhead) > GPU
    coefficients = dataclasses.replace(ZERO_OVERHEAD, step_overhead_ms=0.0003,
                                       per_seq_overhead_ms=0.0001,
                                       per_prefill_seq_overhead_ms=0.005)
    pairs, kv = chunk_terms(10, 0)
    batch = Batch(prefill_tokens=10, prefill_seqs=1, prefill_attention_pairs=pairs,
                  prefill_kv_tokens=kv)
    assert unit(coefficients, async_scheduling=True).step_time(batch) == pytest.approx(
        5400 * NS, rel=1e-12)


def test_a_five_sequence_decode_runs_as_eight_tokens_under_graphs() -> None:
    # padded to 8 rows: GEMMs of 8 tokens (8 x 82.304), LM head, attention and KV of the 5
    # real sequences (5 x 128 + 500 x 0.256), plus one graph replay (1000 ns)
    padded = unit(LAUNCH, cuda_graph_sizes=GRAPHS).step_time(decode(5))
    assert padded == pytest.approx((8 * 82.304 + 5 * 128 + 500 * 0.256 + 1000) * NS, rel=1e-12)
    # without graphs: 5 tokens, eager launches
    eager = unit(LAUNCH).step_time(decode(5))
    assert eager == pytest.approx((5 * 82.304 + 5 * 128 + 500 * 0.256 + 2000) * NS, rel=1e-12)


def test_padding_rows_cost_gemms_and_all_reduce_bytes_but_no_attention() -> None:
    # TP 2: compute at 2 TFLOP/s, all-reduce bytes of 8 rows (8 x 2.56 ns), no all-reduce latency
    padded = unit(LAUNCH, tp=2, cuda_graph_sizes=GRAPHS).step_time(decode(5))
    compute = (8 * 82.304 + 5 * 128 + 500 * 0.256) / 2
    assert padded == pytest.approx((compute + 8 * 2.56 + 1000) * NS, rel=1e-12)
    # the same 8 token rows with 8 real sequences: the difference is 3 LM heads, 3 x 100
    # contexts of attention (halved by TP 2), nothing else
    full = unit(LAUNCH, tp=2, cuda_graph_sizes=GRAPHS).step_time(decode(8))
    assert full - padded == pytest.approx((3 * 128 + 300 * 0.256) / 2 * NS, rel=1e-9)


def test_padding_reads_the_experts_of_the_padded_rows() -> None:
    # Mixtral decoding 5 sequences is memory-bound: padded to 8 it reads the experts 8 tokens
    # touch, so with the same total context it takes exactly as long as 8 sequences
    graphs = model_for("mixtral-8x7b", "h100-sxm", tp=2, cuda_graph_sizes=GRAPHS)
    five = Batch(decode_seqs=5, decode_context_tokens=800)
    eight = Batch(decode_seqs=8, decode_context_tokens=800)
    assert graphs.step_time(five) == graphs.step_time(eight)
    eager = model_for("mixtral-8x7b", "h100-sxm", tp=2)
    assert eager.step_time(five) < eager.step_time(eight)


def test_a_step_above_the_largest_capture_size_runs_eagerly_unpadded() -> None:
    # 20 decodes > 16: 20 token rows and the eager launch cost, as with graphs off
    over = unit(LAUNCH, cuda_graph_sizes=GRAPHS).step_time(decode(20))
    assert over == pytest.approx((20 * 82.304 + 20 * 128 + 2000 * 0.256 + 2000) * NS,
                                 rel=1e-12)
    assert over == unit(LAUNCH).step_time(decode(20))


def test_a_mixed_step_is_padded_but_pays_the_eager_launch_cost() -> None:
    # a 3-token prompt (pairs 6, KV 3) and 2 decodes of context 100: 5 tokens padded to 8,
    # 3 sequences; compute 8 x 82.304 + 3 x 128 + 206 x 0.256 = 1095.168 ns; eager 2000 ns
    pairs, kv = chunk_terms(3, 0)
    batch = Batch(prefill_tokens=3, prefill_seqs=1, prefill_attention_pairs=pairs,
                  prefill_kv_tokens=kv, decode_seqs=2, decode_context_tokens=200)
    t = unit(LAUNCH, cuda_graph_sizes=GRAPHS).step_time(batch)
    assert t == pytest.approx((1095.168 + 2000) * NS, rel=1e-12)


def test_graphs_off_means_no_padding_and_the_eager_cost_on_every_step() -> None:
    off = unit(LAUNCH)
    for seqs in (1, 3, 5, 7):  # compute-bound here, so every extra row would show
        assert off.step_time(decode(seqs)) == pytest.approx(
            (seqs * (82.304 + 128 + 100 * 0.256) + 2000) * NS, rel=1e-12)


def test_capture_sizes_are_checked_and_sorted() -> None:
    assert unit(cuda_graph_sizes=(8, 1, 4, 2, 4)).cuda_graph_sizes == (1, 2, 4, 8)
    for bad in ((0, 8), (2.5,), (-1,)):
        with pytest.raises(ScenarioError, match="cuda_graph_sizes"):
            unit(cuda_graph_sizes=bad)
    assert VLLM_CAPTURE_SIZES[:5] == (1, 2, 4, 8, 16)
    assert VLLM_CAPTURE_SIZES[-3:] == (480, 496, 512) and 256 in VLLM_CAPTURE_SIZES
    assert len(VLLM_CAPTURE_SIZES) == 3 + 32 + 16


def test_launch_costs_default_to_zero_and_must_not_be_negative() -> None:
    assert Coefficients(1, 0, 0, 1, 1, 0, 1).graph_step_overhead_ms == 0.0
    assert load_profile().resolve().eager_step_overhead_ms == 0.0
    with pytest.raises(ScenarioError, match="graph_step_overhead_ms"):
        dataclasses.replace(ZERO_OVERHEAD, graph_step_overhead_ms=-1.0)


def _with_host_mid_run(model_id: str, tp: int, seqs: int, first: int, steps: int,
                       **options: object) -> Coefficients:
    """Launch costs and a host time halfway between the GPU time of the run's first and last
    steps, so that with async scheduling the host line is on top for part of the run."""
    no_host = dataclasses.replace(load_profile().resolve(), step_overhead_ms=0.0,
                                  per_seq_overhead_ms=0.0, graph_step_overhead_ms=0.001,
                                  eager_step_overhead_ms=0.002)
    gpu = model_for(model_id, "h100-sxm", tp, coefficients=no_host, **options)
    lo = gpu.step_time(Batch(decode_seqs=seqs, decode_context_tokens=first))
    hi = gpu.step_time(Batch(decode_seqs=seqs, decode_context_tokens=first + seqs * steps))
    return dataclasses.replace(no_host, per_seq_overhead_ms=0.001,
                               step_overhead_ms=(lo + hi) / 2 * 1e3 - seqs * 0.001)


@pytest.mark.parametrize("async_scheduling", [False, True])
@pytest.mark.parametrize("graphs", [(), VLLM_CAPTURE_SIZES])
@pytest.mark.parametrize(("model_id", "tp"), [("llama-3.1-8b", 1), ("llama-3.1-8b", 2),
                                              ("mixtral-8x7b", 1), ("mixtral-8x7b", 2)])
@pytest.mark.parametrize("seqs", [5, 48, 600])
def test_decode_run_matches_step_time_with_async_and_graphs(
        async_scheduling: bool, graphs: tuple[int, ...], model_id: str, tp: int,
        seqs: int) -> None:
    first, steps = seqs * 2000, 400
    options = {"cuda_graph_sizes": graphs}
    coefficients = _with_host_mid_run(model_id, tp, seqs, first, steps, **options)
    latency = model_for(model_id, "h100-sxm", tp, coefficients=coefficients,
                        async_scheduling=async_scheduling, **options)
    run = latency.decode_run(seqs, first, steps)
    one_by_one = [latency.step_time(Batch(decode_seqs=seqs,
                                          decode_context_tokens=first + seqs * i))
                  for i in range(steps)]
    np.testing.assert_allclose(run.durations(), one_by_one, rtol=1e-12)
    assert run.total == pytest.approx(sum(one_by_one), rel=1e-12)
    if async_scheduling:  # the host line was on top for the first half, then the GPU's
        assert len(run.pieces) >= 2 and run.pieces[0].slope == 0.0
