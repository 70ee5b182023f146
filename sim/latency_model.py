"""Step time of one engine iteration: a roofline with calibrated efficiency factors.

    t_step = step_overhead + per_seq * seqs + per_prefill_seq * prefill_seqs
             + max(t_compute, t_memory) + t_allreduce

    t_compute   = (linear FLOPs per token * tokens + attention FLOPs per pair * pairs)
                  / (TP * peak FLOPs of the weight format * compute_efficiency)
    t_memory    = (weight bytes read per GPU + KV bytes per token per GPU * KV tokens read)
                  / (HBM bandwidth * memory_efficiency)
    t_allreduce = 2 * layers * (allreduce_latency + 2 (TP-1)/TP * tokens * hidden * 2 bytes
                  / (link bandwidth * allreduce_efficiency))          (TP > 1 only)

The formula and its terms are documented in docs/latency-model.md. The coefficients come from a
latency profile (``sim.latency_profile``), so calibration replaces them without code changes.
"""

from __future__ import annotations

from sim.batch import Batch
from sim.dtypes import activation_bytes
from sim.errors import ScenarioError
from sim.gpu import GpuSpec
from sim.latency_profile import Coefficients
from sim.model_spec import ModelSpec
from sim.step_series import StepSeries

def peak_flops(gpu: GpuSpec, weight_dtype: str) -> float:
    """Dense peak FLOP/s the step's matrix multiplies run at for this weight format.

    W8A8 formats use the 8-bit tensor cores where the GPU has them; 4-bit weight-only formats
    dequantise to 16-bit and compute there; GPUs without FP8 units fall back to 16-bit.
    """
    if weight_dtype == "fp32":
        if gpu.fp32_tflops is None:
            raise ScenarioError(
                f"weight_dtype fp32 needs the fp32 peak of {gpu.id}, which its device entry "
                "does not give: add fp32_tflops to it, or use a 16-bit or quantized format"
            )
        return gpu.fp32_tflops * 1e12
    if weight_dtype == "fp8" and gpu.fp8_tflops:
        return gpu.fp8_tflops * 1e12
    if weight_dtype == "int8" and gpu.int8_tops:
        return gpu.int8_tops * 1e12
    return gpu.bf16_tflops * 1e12


class LatencyModel:
    """Predicts step times for one replica (model, GPU, TP degree, formats, coefficients)."""

    def __init__(
        self,
        model: ModelSpec,
        gpu: GpuSpec,
        coefficients: Coefficients,
        *,
        tensor_parallel: int,
        weight_dtype: str,
        kv_bytes_per_token_per_gpu: float,
    ) -> None:
        c = coefficients
        self.model = model
        self.coefficients = c
        self.tensor_parallel = tp = tensor_parallel
        self.weight_dtype = weight_dtype
        self._overhead_s = c.step_overhead_ms * 1e-3
        self._per_seq_s = c.per_seq_overhead_ms * 1e-3
        self._per_prefill_seq_s = c.per_prefill_seq_overhead_ms * 1e-3
        flops = peak_flops(gpu, weight_dtype) * c.compute_efficiency * tp
        # Logits are computed only where a token is sampled (once per sequence), not for
        # every prompt token, so the LM head is charged per sequence.
        lm_head_flops = 2 * model.hidden_size * model.vocab_size
        self._s_per_token_compute = (model.linear_flops_per_token - lm_head_flops) / flops
        self._s_per_seq_compute = lm_head_flops / flops
        self._s_per_pair_compute = model.attention_flops_per_token_per_context / flops
        bandwidth = gpu.mem_bandwidth_gb_per_s * 1e9 * c.memory_efficiency
        self._bandwidth = bandwidth
        self._s_per_kv_token = kv_bytes_per_token_per_gpu / bandwidth
        self._dense = model.num_experts <= 1
        self._dense_weight_s = model.weight_bytes_read(1, weight_dtype) / tp / bandwidth
        if tp > 1:
            link = gpu.interconnect_gb_per_s * 1e9 * c.allreduce_efficiency
            per_layer_calls = 2 * model.num_layers
            self._allreduce_fixed_s = per_layer_calls * c.allreduce_latency_us * 1e-6
            hidden_bytes = model.hidden_size * activation_bytes(weight_dtype)
            self._allreduce_s_per_token = per_layer_calls * 2 * (tp - 1) / tp * hidden_bytes / link
        else:
            self._allreduce_fixed_s = 0.0
            self._allreduce_s_per_token = 0.0

    def _weight_s(self, num_tokens: int) -> float:
        if self._dense:
            return self._dense_weight_s
        read = self.model.weight_bytes_read(num_tokens, self.weight_dtype)
        return read / self.tensor_parallel / self._bandwidth

    def step_time(self, batch: Batch) -> float:
        """Seconds one step with this composition takes."""
        tokens = batch.prefill_tokens + batch.decode_seqs
        if tokens == 0:
            return 0.0
        pairs = batch.prefill_attention_pairs + batch.decode_context_tokens
        seqs = batch.prefill_seqs + batch.decode_seqs
        compute = (
            tokens * self._s_per_token_compute
            + seqs * self._s_per_seq_compute
            + pairs * self._s_per_pair_compute
        )
        kv_tokens = batch.decode_context_tokens + batch.prefill_kv_tokens
        memory = self._weight_s(tokens) + kv_tokens * self._s_per_kv_token
        return (
            self._overhead_s
            + self._per_seq_s * seqs
            + self._per_prefill_seq_s * batch.prefill_seqs
            + (compute if compute > memory else memory)
            + self._allreduce_fixed_s
            + self._allreduce_s_per_token * tokens
        )

    def decode_run(self, num_seqs: int, first_context: int, num_steps: int) -> StepSeries:
        """``num_steps`` consecutive decode-only steps of ``num_seqs`` sequences.

        Every step adds one token to every sequence, so the total context grows by
        ``num_seqs`` per step and both roofline terms grow linearly (``sim.step_series``).
        """
        fixed = (
            self._overhead_s
            + self._per_seq_s * num_seqs
            + self._allreduce_fixed_s
            + self._allreduce_s_per_token * num_seqs
        )
        pair_s, kv_s = self._s_per_pair_compute, self._s_per_kv_token
        compute_first = (
            num_seqs * (self._s_per_token_compute + self._s_per_seq_compute)
            + first_context * pair_s
        )
        memory_first = self._weight_s(num_seqs) + first_context * kv_s
        return StepSeries.of_lines(
            fixed, compute_first, num_seqs * pair_s, memory_first, num_seqs * kv_s, num_steps
        )
