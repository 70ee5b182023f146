"""Step time of one engine iteration: a roofline with calibrated efficiency factors.

    host        = step_overhead + per_seq * seqs + per_prefill_seq * prefill_seqs
    gpu         = fixed (graph or eager) + max(t_compute, t_memory) + t_allreduce
    t_step      = host + gpu               (synchronous scheduling)
                = max(host, gpu)           (asynchronous: the host work of step n+1 overlaps
                                            the GPU work of step n)

    t_compute   = (linear FLOPs per token * run tokens + attention FLOPs per pair * pairs)
                  / (TP * peak FLOPs of the weight format * compute_efficiency)
    t_memory    = (weight bytes read per GPU + KV bytes per token per GPU * KV tokens read)
                  / (HBM bandwidth * memory_efficiency)
    t_allreduce = 2 * layers * (allreduce_latency + 2 (TP-1)/TP * run tokens * hidden * 2 bytes
                  / (link bandwidth * allreduce_efficiency))          (TP > 1 only)

"Run tokens" are the step's tokens padded up to the next CUDA graph capture size (when the step
fits the largest): padding rows go through the GEMMs and all-reduces, not attention, KV reads
or the LM head. The formula and its terms are documented in docs/latency-model.md. The
coefficients come from a latency profile (``sim.engine.latency_profile``), so calibration replaces
them without code changes.
"""

from __future__ import annotations

from bisect import bisect_left

from sim.engine.batch import Batch
from sim.engine.dtypes import activation_bytes
from sim.engine.errors import ScenarioError
from sim.engine.gpu import GpuSpec
from sim.engine.latency_profile import Coefficients
from sim.engine.model_spec import ModelSpec
from sim.engine.step_series import StepSeries


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
    """Predicts step times for one replica (model, GPU, TP degree, formats, coefficients).

    ``async_scheduling`` overlaps a step's host work with the GPU work (vLLM's async
    scheduler); ``cuda_graph_sizes`` are the token counts CUDA graphs were captured for
    (empty: no graphs, every step runs eagerly).
    """

    def __init__(
        self,
        model: ModelSpec,
        gpu: GpuSpec,
        coefficients: Coefficients,
        *,
        tensor_parallel: int,
        weight_dtype: str,
        kv_bytes_per_token_per_gpu: float,
        async_scheduling: bool = False,
        cuda_graph_sizes: tuple[int, ...] = (),
    ) -> None:
        c = coefficients
        self.model = model
        self.coefficients = c
        self.tensor_parallel = tp = tensor_parallel
        self.weight_dtype = weight_dtype
        self.async_scheduling = async_scheduling
        self.cuda_graph_sizes = sizes = capture_sizes(cuda_graph_sizes)
        self._largest_graph, self._padded = padded_sizes(sizes)
        # a roofline profile has no costs outside the engine
        self.request_overhead_s = self.output_token_overhead_s = 0.0
        self._overhead_s = c.step_overhead_ms * 1e-3
        self._per_seq_s = c.per_seq_overhead_ms * 1e-3
        self._per_prefill_seq_s = c.per_prefill_seq_overhead_ms * 1e-3
        flops = peak_flops(gpu, weight_dtype) * c.compute_efficiency * tp
        # Logits are computed only where a token is sampled (once per sequence), not for
        # every prompt token, so the LM head is charged per sequence.
        lm_head_flops = 2 * model.hidden_size * model.vocab_size
        self._s_per_token_compute = (model.linear_flops_per_token - lm_head_flops) / flops
        self._s_per_seq_compute = lm_head_flops / flops
        self._s_per_decode_token = self._s_per_token_compute + self._s_per_seq_compute
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
        # the fixed GPU time of a step: launches (one graph replay, or eager/piecewise
        # kernels) and the all-reduces' latency (with graphs off and no launch cost this is
        # the all-reduce term alone, to the bit)
        # KV copied back from host memory (a CPU offload tier's hits) crosses the host link
        host_link = (gpu.host_link_gb_per_s or 0.0) * 1e9
        self._s_per_loaded_kv_token = (kv_bytes_per_token_per_gpu / host_link if host_link
                                       else 0.0)
        self._graph_fixed_s = self._allreduce_fixed_s + c.graph_step_overhead_ms * 1e-3
        self._eager_fixed_s = self._allreduce_fixed_s + c.eager_step_overhead_ms * 1e-3

    def _weight_s(self, num_tokens: int) -> float:
        if self._dense:
            return self._dense_weight_s
        read = self.model.weight_bytes_read(num_tokens, self.weight_dtype)
        return read / self.tensor_parallel / self._bandwidth

    def step_time(self, batch: Batch, overlapped: bool = True) -> float:
        """Seconds one step with this composition takes.

        With async scheduling a step's host work hides behind the GPU's previous step;
        ``overlapped=False`` is the first step after the engine idled, which has no step to
        hide behind and takes host plus GPU time.
        """
        tokens = batch.prefill_tokens + batch.decode_seqs
        if tokens == 0:
            return 0.0
        if tokens > self._largest_graph:
            run_tokens = tokens
            gpu_fixed = self._eager_fixed_s
        else:  # padded up to the next captured size
            run_tokens = self._padded[tokens]
            # only a pure decode step replays a full graph; one with prefill runs piecewise
            gpu_fixed = self._eager_fixed_s if batch.prefill_tokens else self._graph_fixed_s
        pairs = batch.prefill_attention_pairs + batch.decode_context_tokens
        seqs = batch.prefill_seqs + batch.decode_seqs
        compute = (
            run_tokens * self._s_per_token_compute
            + seqs * self._s_per_seq_compute
            + pairs * self._s_per_pair_compute
        )
        kv_tokens = batch.decode_context_tokens + batch.prefill_kv_tokens
        memory = self._weight_s(run_tokens) + kv_tokens * self._s_per_kv_token
        if batch.loaded_kv_tokens:
            gpu_fixed += batch.loaded_kv_tokens * self._s_per_loaded_kv_token
        if self.async_scheduling and overlapped:
            host = (
                self._overhead_s
                + self._per_seq_s * seqs
                + self._per_prefill_seq_s * batch.prefill_seqs
            )
            gpu = (
                (compute if compute > memory else memory)
                + gpu_fixed
                + self._allreduce_s_per_token * run_tokens
            )
            return host if host > gpu else gpu
        return (
            self._overhead_s
            + self._per_seq_s * seqs
            + self._per_prefill_seq_s * batch.prefill_seqs
            + (compute if compute > memory else memory)
            + gpu_fixed
            + self._allreduce_s_per_token * run_tokens
        )

    def decode_run(self, num_seqs: int, first_context: int, num_steps: int) -> StepSeries:
        """``num_steps`` consecutive decode-only steps of ``num_seqs`` sequences.

        Every step adds one token to every sequence, so the total context grows by
        ``num_seqs`` per step and both roofline terms grow linearly; the host time, the padding
        and the graph/eager choice stay the same. The step time is the upper envelope of those
        lines (``sim.engine.step_series``): two of them, or three with the constant host line when
        the host work overlaps the GPU's.
        """
        n = num_seqs
        if n > self._largest_graph:
            run_tokens, gpu_fixed = n, self._eager_fixed_s
        else:
            run_tokens, gpu_fixed = self._padded[n], self._graph_fixed_s
        pair_s, kv_s = self._s_per_pair_compute, self._s_per_kv_token
        compute = (
            n * self._s_per_decode_token
            + (run_tokens - n) * self._s_per_token_compute  # padding rows: GEMMs only
            + first_context * pair_s
        )
        memory = self._weight_s(run_tokens) + first_context * kv_s
        if self.async_scheduling:
            host = self._overhead_s + self._per_seq_s * n
            gpu = gpu_fixed + self._allreduce_s_per_token * run_tokens
            lines = ((host, 0.0), (gpu + compute, n * pair_s), (gpu + memory, n * kv_s))
            return StepSeries.upper_envelope(0.0, lines, num_steps)
        fixed = (
            self._overhead_s
            + self._per_seq_s * n
            + gpu_fixed
            + self._allreduce_s_per_token * run_tokens
        )
        return StepSeries.of_lines(fixed, compute, n * pair_s, memory, n * kv_s, num_steps)


def padded_sizes(sizes: tuple[int, ...]) -> tuple[int, tuple[int, ...]]:
    """The largest capture size, and the token rows a step of ``t`` tokens runs as
    (``padded[t]``, for ``1 <= t <= largest``); without graphs the largest is 0, so every
    step runs as it is."""
    largest = sizes[-1] if sizes else 0
    return largest, (0, *(sizes[bisect_left(sizes, t)] for t in range(1, largest + 1)))


def capture_sizes(sizes: tuple[int, ...]) -> tuple[int, ...]:
    """The capture sizes sorted, without repeats; each must be a positive whole number."""
    for size in sizes:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ScenarioError(
                f"cuda_graph_sizes: {size!r} is not a token count; give positive whole numbers "
                "(vLLM's default is 1, 2, 4, then multiples of 8 up to 256 and of 16 up to 512)"
            )
    return tuple(sorted(set(sizes)))
