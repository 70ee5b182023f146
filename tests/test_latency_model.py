"""The roofline step-time model and its profile files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sim.batch import Batch, chunk_terms
from sim.errors import ScenarioError
from sim.gpu import load_gpu
from sim.latency_model import LatencyModel, peak_flops
from sim.latency_profile import Coefficients, load_profile
from sim.memory_plan import kv_bytes_per_token_per_gpu
from sim.model_catalog import load_model

ZERO_OVERHEAD = Coefficients(
    step_overhead_ms=0.0, per_seq_overhead_ms=0.0, per_prefill_seq_overhead_ms=0.0,
    compute_efficiency=1.0, memory_efficiency=1.0, allreduce_latency_us=0.0,
    allreduce_efficiency=1.0,
)


def model_for(model_id: str, gpu_id: str, tp: int = 1, dtype: str = "bf16",
              coefficients: Coefficients = ZERO_OVERHEAD) -> LatencyModel:
    model, gpu = load_model(model_id), load_gpu(gpu_id)
    return LatencyModel(
        model, gpu, coefficients, tensor_parallel=tp, weight_dtype=dtype,
        kv_bytes_per_token_per_gpu=kv_bytes_per_token_per_gpu(model, tp, "auto"),
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
