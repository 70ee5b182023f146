"""How many KV-cache blocks fit on a GPU, worked out the way vLLM does at startup.

vLLM loads the weights, runs one profiling forward pass of ``max_num_batched_tokens`` tokens
(then samples ``max_num_seqs`` dummy requests), and gives the KV cache whatever is left of its
share of the device:

    budget  = gpu_memory_utilization x device total
    kv      = budget - weights/TP - activation peak - non-torch memory
    blocks  = floor(kv / (block_size x KV bytes per token per GPU))

Per GPU, because tensor parallelism splits the weights and the KV heads across ranks. When TP
exceeds the KV heads, each rank keeps one whole head (heads are replicated, not split further).

The activation peak is estimated from the model's shape; the non-torch term (CUDA graphs,
cuBLAS and NCCL workspaces) is fitted to real vLLM block counts (block 16, utilization 0.9,
max_num_batched_tokens 2048):

    run                                          vLLM    max_num_seqs   real     planned
    H100, Llama-2-70B, TP4                       0.15    128            31,356   31,368
    H100, CodeLlama-34B, TP2                     0.15    128            26,602   26,617
    RTX 4090, Llama-3.1-8B, TP1                  0.19    256             2,588    2,574

(max_num_seqs 128 for the H100 runs: their running batch never exceeds 128 while requests wait
with the cache 86 % free.)
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from sim.engine.dtypes import activation_bytes, kv_bytes_per_element, weight_bytes_per_param
from sim.engine.errors import ScenarioError
from sim.engine.gpu import GIB, GpuSpec
from sim.engine.model_spec import ModelSpec

# Copies of each sampled row of logits in the profiling run: the bf16 logits plus float32
# logits, probabilities and log-probabilities (2 + 4 + 4 + 4 bytes).
SAMPLER_BYTES_PER_LOGIT = 14
# Hidden-size tensors alive at a layer's peak: residual, normed input, attention output and
# MLP output.
HIDDEN_COPIES = 4
# Memory outside PyTorch's allocator that vLLM measures and subtracts. With the activation
# estimate taken out, the three runs above leave 0.475 GiB at TP1, 0.55 at TP2 and 0.60 at
# TP4: a base plus a little per NCCL peer.
NON_TORCH_BASE_BYTES = round(0.5 * GIB)
NON_TORCH_PER_PEER_BYTES = round(0.03 * GIB)


@dataclass(frozen=True, slots=True)
class MemoryPlan:
    """Where one GPU's memory goes, and how many KV blocks that leaves."""

    weight_bytes_per_gpu: int
    activation_reserve_bytes: int
    non_torch_bytes: int
    kv_bytes_per_gpu: int
    kv_bytes_per_block: int
    num_gpu_blocks: int
    block_size: int

    @property
    def kv_capacity_tokens(self) -> int:
        """Tokens the cache holds across all running requests of one replica."""
        return self.num_gpu_blocks * self.block_size


@dataclass(frozen=True, slots=True)
class _Settings:
    """The engine settings a plan depends on, besides model, GPU and TP."""

    gpu_memory_utilization: float
    block_size: int
    weight_dtype: str
    kv_cache_dtype: str
    max_num_batched_tokens: int
    max_num_seqs: int


def plan_memory(
    model: ModelSpec,
    gpu: GpuSpec,
    *,
    tensor_parallel: int,
    gpu_memory_utilization: float,
    block_size: int,
    weight_dtype: str,
    kv_cache_dtype: str,
    max_num_batched_tokens: int,
    max_num_seqs: int = 256,
    num_gpu_blocks: int | None = None,
) -> MemoryPlan:
    """Plan one replica's per-GPU memory; ``num_gpu_blocks`` (a measured count) is used as is."""
    settings = _Settings(gpu_memory_utilization, block_size, weight_dtype, kv_cache_dtype,
                         max_num_batched_tokens, max_num_seqs)
    _check(model, tensor_parallel, settings, num_gpu_blocks)
    plan = _plan(model, gpu, tensor_parallel, settings)
    if num_gpu_blocks is not None:
        return replace(plan, num_gpu_blocks=num_gpu_blocks,
                       kv_bytes_per_gpu=num_gpu_blocks * plan.kv_bytes_per_block)
    if plan.num_gpu_blocks < 1:
        raise ScenarioError(_does_not_fit(model, gpu, tensor_parallel, settings, plan))
    return plan


def kv_heads_per_gpu(model: ModelSpec, tensor_parallel: int) -> int:
    """KV heads one rank stores: its share, or one replicated head when TP > KV heads."""
    return max(1, model.num_kv_heads // tensor_parallel)


def kv_bytes_per_token_per_gpu(model: ModelSpec, tensor_parallel: int, kv_dtype: str) -> int:
    elements = 2 * model.num_layers * kv_heads_per_gpu(model, tensor_parallel) * model.head_dim
    return round(elements * kv_bytes_per_element(kv_dtype))


def weight_bytes_per_gpu(model: ModelSpec, tensor_parallel: int, weight_dtype: str) -> int:
    """One rank's share of the weights, plus the K/V projections it holds as a replica."""
    share = model.weight_bytes(weight_dtype) / tensor_parallel
    extra_heads = kv_heads_per_gpu(model, tensor_parallel) - model.num_kv_heads / tensor_parallel
    kv_projection = 2 * model.hidden_size * model.head_dim * weight_bytes_per_param(weight_dtype)
    return round(share + model.num_layers * extra_heads * kv_projection)


def activation_reserve_bytes(
    model: ModelSpec, tensor_parallel: int, num_tokens: int, max_num_seqs: int,
    weight_dtype: str = "bf16",
) -> int:
    """Peak PyTorch memory of vLLM's profiling pass, beyond the weights.

    Per token the forward pass holds a few hidden-size tensors plus one layer's widest
    intermediates: the QKV output, and the gate/up and activation outputs of the MLP (or of
    the k routed experts, each also writing a hidden-size output). Then the sampler expands
    the logits of up to ``max_num_seqs`` requests over the whole vocabulary.
    """
    tp = tensor_parallel
    qkv = (model.num_attention_heads // tp + 2 * kv_heads_per_gpu(model, tp)) * model.head_dim
    mlp = 0
    if model.num_moe_layers < model.num_layers:
        mlp = 3 * model.intermediate_size // tp
    if model.is_moe:
        routed = 3 * model.expert_intermediate_size // tp + model.hidden_size
        mlp = max(mlp, model.experts_per_token * routed)
    per_token = HIDDEN_COPIES * model.hidden_size + qkv + mlp
    sampled_rows = min(max_num_seqs, num_tokens)
    return round(num_tokens * per_token * activation_bytes(weight_dtype)
                 + sampled_rows * model.vocab_size * SAMPLER_BYTES_PER_LOGIT)


def _plan(model: ModelSpec, gpu: GpuSpec, tp: int, s: _Settings) -> MemoryPlan:
    weights = weight_bytes_per_gpu(model, tp, s.weight_dtype)
    activation = activation_reserve_bytes(model, tp, s.max_num_batched_tokens, s.max_num_seqs,
                                          s.weight_dtype)
    non_torch = NON_TORCH_BASE_BYTES + NON_TORCH_PER_PEER_BYTES * (tp - 1)
    per_block = s.block_size * kv_bytes_per_token_per_gpu(model, tp, s.kv_cache_dtype)
    free = s.gpu_memory_utilization * gpu.hbm_bytes - weights - activation - non_torch
    blocks = max(0, int(free // per_block))
    return MemoryPlan(
        weight_bytes_per_gpu=weights,
        activation_reserve_bytes=activation,
        non_torch_bytes=non_torch,
        kv_bytes_per_gpu=blocks * per_block,
        kv_bytes_per_block=per_block,
        num_gpu_blocks=blocks,
        block_size=s.block_size,
    )


def _valid_tp(model: ModelSpec) -> list[int]:
    """TP degrees vLLM accepts: they divide the attention heads and divide or are a multiple
    of the KV heads."""
    heads, kv = model.num_attention_heads, model.num_kv_heads
    return [t for t in range(1, heads + 1) if heads % t == 0 and (kv % t == 0 or t % kv == 0)]


def _check(model: ModelSpec, tp: int, s: _Settings, num_gpu_blocks: int | None) -> None:
    if tp not in _valid_tp(model):
        raise ScenarioError(
            f"hardware.tensor_parallel={tp} does not split {model.id}'s "
            f"{model.num_attention_heads} attention heads / {model.num_kv_heads} KV heads "
            f"evenly: use one of {', '.join(str(t) for t in _valid_tp(model))}"
        )
    if not 0 < s.gpu_memory_utilization <= 1:
        raise ScenarioError(
            f"gpu_memory_utilization={s.gpu_memory_utilization} must be in (0, 1]: "
            "vLLM's default is 0.9"
        )
    for name in ("block_size", "max_num_batched_tokens", "max_num_seqs"):
        if getattr(s, name) < 1:
            raise ScenarioError(f"{name}={getattr(s, name)} must be a positive integer")
    if num_gpu_blocks is not None and num_gpu_blocks < 1:
        raise ScenarioError(
            f"num_gpu_blocks={num_gpu_blocks} must be at least 1, or left out to be planned"
        )


def _does_not_fit(model: ModelSpec, gpu: GpuSpec, tp: int, s: _Settings, plan: MemoryPlan
                  ) -> str:
    budget = s.gpu_memory_utilization * gpu.hbm_bytes
    replica = model.weight_bytes(s.weight_dtype) / GIB
    per_gpu = (f" ({plan.weight_bytes_per_gpu / GIB:.1f} GiB per GPU at tensor_parallel {tp})"
               if tp > 1 else "")
    fits = next((t for t in _valid_tp(model)
                 if t > tp and _plan(model, gpu, t, s).num_gpu_blocks >= 1), None)
    tp_hint = f"hardware.tensor_parallel >= {fits}" if fits else "more tensor parallelism"
    return (
        f"{model.id} in {s.weight_dtype} needs {replica:.1f} GiB of weights per replica"
        f"{per_gpu}; one {gpu.id} at gpu_memory_utilization {s.gpu_memory_utilization} has "
        f"{budget / GIB:.1f} GiB, which leaves no room for a KV block: use {tp_hint}, "
        "a smaller weight_dtype, or a larger GPU"
    )
