"""Step time of one engine iteration as a sum of operators, each bounded by its own roofline.

A step runs every layer's operators over the step's tokens; each operator takes the longer of
its compute time (FLOPs / peak x efficiency) and its memory time (bytes / bandwidth x
efficiency), and the step is their sum plus fixed costs:

    attention projections   T tokens x (q, k, v, o) weights          GEMM efficiency
    MLP (dense layers and   T tokens x their weights                  GEMM efficiency
      shared experts)
    MoE experts             T x k experts of FLOPs; the weights of the distinct experts the
                            batch's tokens were routed to are read once
    LM head                 one row per sampled sequence; its weights read once
    prefill attention       FLOPs of each chunk against its context; the cached context's KV read
    decode attention        each sequence's KV read (FLOPs: one query row against it)
    all-reduce              2 per layer under tensor parallelism: latency + bytes / link
    fixed                   per step and per sequence (host), per layer (graph or eager
                            launches), per MoE layer (routing)

T is the step's token count padded up to the next CUDA-graph capture size (padding rows go
through the GEMMs and all-reduces, not attention or the LM head). Per GPU under tensor
parallelism everything divides by the TP degree except the fixed costs.

The coefficients (``sim.engine.latency_profile.OperatorCoefficients``) are a handful shared by all
models and GPUs, trained on real runs (``calibrate.operator_fit``); a model or GPU the data
never saw plugs in through its shape and datasheet. docs/latency-model.md has the derivation.
"""

from __future__ import annotations

from sim.engine.batch import Batch
from sim.engine.dtypes import activation_bytes, weight_bytes_per_param
from sim.engine.gpu import GpuSpec
from sim.engine.latency_model import capture_sizes, padded_sizes, peak_flops
from sim.engine.latency_profile import OperatorCoefficients
from sim.engine.model_spec import ModelSpec
from sim.engine.step_series import StepSeries


class OperatorLatencyModel:
    """Predicts step times for one replica from the model's operators; same interface as
    ``sim.engine.latency_model.LatencyModel``."""

    def __init__(
        self,
        model: ModelSpec,
        gpu: GpuSpec,
        coefficients: OperatorCoefficients,
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
        self.kv_bytes_per_token_per_gpu = kv_bytes_per_token_per_gpu
        self.async_scheduling = async_scheduling
        self.cuda_graph_sizes = sizes = capture_sizes(cuda_graph_sizes)
        self._largest_graph, self._padded = padded_sizes(sizes)
        self.request_overhead_s = c.request_overhead_ms * 1e-3
        self.output_token_overhead_s = c.output_token_overhead_ms * 1e-3

        gemm_rate = peak_flops(gpu, weight_dtype) * c.gemm_compute_efficiency * tp
        # attention runs in the activations' format whatever the weights are stored in
        attention_rate = (peak_flops(gpu, "fp32" if weight_dtype == "fp32" else "bf16")
                          * c.attention_compute_efficiency * tp)
        weight_bw = gpu.mem_bandwidth_gb_per_s * 1e9 * c.weight_memory_efficiency * tp
        kv_bw = gpu.mem_bandwidth_gb_per_s * 1e9 * c.kv_memory_efficiency
        shape = _OperatorShapes(model, weight_dtype)
        # (seconds per token row of compute, seconds of weight reading) per GEMM operator
        self._gemms = tuple((flops / gemm_rate, weight_bytes / weight_bw)
                            for flops, weight_bytes in shape.dense_gemms())
        self._lm_head = (shape.lm_head_flops / gemm_rate, shape.lm_head_bytes / weight_bw)
        self._moe = model.num_experts > 1 and model.num_moe_layers > 0
        self._expert_s_per_token = shape.expert_flops_per_token / gemm_rate
        self._expert_bytes_per_expert = shape.expert_bytes_per_expert
        self._weight_bw = weight_bw
        # attention: per (query, context) pair of FLOPs, per KV token read
        self._s_per_pair = model.attention_flops_per_token_per_context / attention_rate
        self._s_per_kv_token = kv_bytes_per_token_per_gpu / kv_bw
        self._s_per_decode_context = max(self._s_per_pair, self._s_per_kv_token)
        if tp > 1:
            link = gpu.interconnect_gb_per_s * 1e9 * c.allreduce_efficiency
            calls = 2 * model.num_layers
            self._allreduce_fixed_s = calls * c.allreduce_latency_us * 1e-6
            hidden_bytes = model.hidden_size * activation_bytes(weight_dtype)
            self._allreduce_s_per_token = calls * 2 * (tp - 1) / tp * hidden_bytes / link
        else:
            self._allreduce_fixed_s = self._allreduce_s_per_token = 0.0
        moe_fixed = model.num_moe_layers * c.moe_layer_overhead_us * 1e-6 if self._moe else 0.0
        layers = model.num_layers
        self._graph_fixed_s = (self._allreduce_fixed_s + moe_fixed
                               + layers * c.graph_layer_overhead_us * 1e-6)
        self._eager_fixed_s = (self._allreduce_fixed_s + moe_fixed
                               + layers * c.eager_layer_overhead_us * 1e-6)
        self._overhead_s = c.step_overhead_ms * 1e-3
        self._decode_cache: dict[int, tuple[float, float]] = {}
        self._per_seq_s = c.per_seq_overhead_us * 1e-6
        self._per_prefill_seq_s = c.per_prefill_seq_overhead_ms * 1e-3
        host_link = (gpu.host_link_gb_per_s or 0.0) * 1e9
        self._s_per_loaded_kv_token = (kv_bytes_per_token_per_gpu / host_link if host_link
                                       else 0.0)

    # ---- the operators ----------------------------------------------------------------

    def _weights_s(self, run_tokens: int, seqs: int) -> float:
        """The GEMMs of every layer and the LM head, each at its own bound."""
        total = 0.0
        for per_token, read in self._gemms:
            compute = per_token * run_tokens
            total += compute if compute > read else read
        per_seq, read = self._lm_head
        compute = per_seq * seqs
        total += compute if compute > read else read
        if self._moe:
            compute = self._expert_s_per_token * run_tokens
            experts = self.model.expected_active_experts(run_tokens)
            read = experts * self._expert_bytes_per_expert / self._weight_bw
            total += compute if compute > read else read
        return total

    def _run_shape(self, tokens: int, has_prefill: bool) -> tuple[int, float]:
        """Token rows the GEMMs run over, and the fixed GPU time of the step."""
        if tokens > self._largest_graph:
            return tokens, self._eager_fixed_s
        # only a pure decode step replays a whole graph; one with prefill runs piecewise
        return self._padded[tokens], self._eager_fixed_s if has_prefill else self._graph_fixed_s

    def _host_s(self, seqs: int, prefill_seqs: int) -> float:
        return self._overhead_s + self._per_seq_s * seqs + self._per_prefill_seq_s * prefill_seqs

    def step_time(self, batch: Batch, overlapped: bool = True) -> float:
        """Seconds one step with this composition takes (see ``LatencyModel.step_time``)."""
        tokens = batch.prefill_tokens + batch.decode_seqs
        if tokens == 0:
            return 0.0
        run_tokens, gpu = self._run_shape(tokens, batch.prefill_tokens > 0)
        seqs = batch.prefill_seqs + batch.decode_seqs
        gpu += self._weights_s(run_tokens, seqs)
        gpu += self._allreduce_s_per_token * run_tokens
        gpu += batch.decode_context_tokens * self._s_per_decode_context
        if batch.prefill_tokens:
            compute = batch.prefill_attention_pairs * self._s_per_pair
            read = batch.prefill_kv_tokens * self._s_per_kv_token
            gpu += compute if compute > read else read
        if batch.loaded_kv_tokens:
            gpu += batch.loaded_kv_tokens * self._s_per_loaded_kv_token
        host = self._host_s(seqs, batch.prefill_seqs)
        if self.async_scheduling and overlapped:
            return host if host > gpu else gpu
        return host + gpu

    def decode_run(self, num_seqs: int, first_context: int, num_steps: int) -> StepSeries:
        """``num_steps`` decode-only steps of ``num_seqs`` sequences: every operator but the
        decode attention is the same each step, and that one grows with the context, which
        grows by ``num_seqs`` a step, so the steps lie on one line."""
        constant, host = self._decode_constants(num_seqs)
        per_context = self._s_per_decode_context
        first, slope = constant + first_context * per_context, num_seqs * per_context
        if self.async_scheduling:
            return StepSeries.of_lines(0.0, host, 0.0, first, slope, num_steps)
        return StepSeries.line(host + first, slope, num_steps)

    def _decode_constants(self, n: int) -> tuple[float, float]:
        """(GPU seconds of a decode step of ``n`` sequences but its attention, host seconds):
        the same for every run of that batch size, so computed once per size."""
        known = self._decode_cache.get(n)
        if known is None:
            run_tokens, gpu = self._run_shape(n, False)
            gpu += self._weights_s(run_tokens, n) + self._allreduce_s_per_token * run_tokens
            known = self._decode_cache[n] = (gpu, self._host_s(n, 0))
        return known


class _OperatorShapes:
    """FLOPs per token and bytes of weights of each operator group, for the whole model."""

    def __init__(self, model: ModelSpec, weight_dtype: str) -> None:
        h, layers, moe_layers = model.hidden_size, model.num_layers, model.num_moe_layers
        q_dim = model.num_attention_heads * model.head_dim
        kv_dim = model.num_kv_heads * model.head_dim
        linear = weight_bytes_per_param(weight_dtype)
        activation = activation_bytes(weight_dtype)
        projection_params = layers * (2 * h * q_dim + 2 * h * kv_dim)
        dense_layers = layers - moe_layers
        mlp_params = (dense_layers * model.mlp_projections * h * model.intermediate_size
                      + moe_layers * model.mlp_projections * h
                      * model.shared_expert_intermediate_size)
        router_params = moe_layers * h * model.num_experts if model.is_moe else 0
        self.expert_flops_per_token = (2 * moe_layers * model.experts_per_token
                                       * model.expert_params_per_expert)
        self.expert_bytes_per_expert = moe_layers * model.expert_params_per_expert * linear
        self.lm_head_flops = 2 * h * model.vocab_size
        self.lm_head_bytes = h * model.vocab_size * activation
        self.projection = (2 * projection_params, projection_params * linear)
        # norms, biases and routers ride with the MLP: what the model reads besides the named
        # operators, so the groups add up to the model's weight bytes read
        experts_one = model.expert_bytes_read(1, weight_dtype) if model.is_moe else 0.0
        rest = (model.weight_bytes_read(1, weight_dtype) - experts_one - self.lm_head_bytes
                - self.projection[1] - mlp_params * linear)
        self.mlp = (2 * (mlp_params + router_params), mlp_params * linear + max(rest, 0.0))

    def dense_gemms(self) -> tuple[tuple[float, float], ...]:
        return (self.projection, self.mlp)
