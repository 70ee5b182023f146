"""A scenario resolved into a deployment: catalogs looked up, memory planned, the engine's
release defaults filled in and its step-time model built."""

from __future__ import annotations

from dataclasses import dataclass
from pydantic import ValidationError

from sim.config.memory_plan import MemoryPlan, kv_bytes_per_token_per_gpu, plan_memory
from sim.config.model_catalog import load_model
from sim.config.price import FleetPrice, price_for
from sim.config.scenario import EngineSpec, Scenario, describe_validation_error
from sim.config.vllm_release import is_gpu, release_for
from sim.engine.batching_policy import BatchingPolicy
from sim.engine.dtypes import resolve_kv_dtype
from sim.engine.errors import ScenarioError
from sim.engine.gpu import GpuSpec, load_gpu
from sim.engine.latency_model import LatencyModel
from sim.engine.latency_profile import LatencyProfile, load_profile
from sim.engine.model_spec import ModelSpec
from sim.engine.operator_latency_model import OperatorLatencyModel
from sim.engine.scheduler import SchedulerLimits
from sim.fleet.gateway import GatewayPolicy
from sim.fleet.simulation import EngineSetup


@dataclass(frozen=True)
class Deployment:
    """A scenario with its catalogs looked up and its memory planned."""

    scenario: Scenario
    model: ModelSpec
    gpu: GpuSpec
    memory: MemoryPlan
    profile: LatencyProfile
    price: FleetPrice
    setup: EngineSetup
    # the scenario's engine section with its vLLM release's defaults filled in for this GPU
    engine: EngineSpec


def resolve(scenario: Scenario) -> Deployment:
    hw = scenario.hardware
    model = load_model(scenario.model)
    gpu = load_gpu(hw.gpu)
    eng = engine_with_defaults(scenario.engine, gpu)
    memory = plan_memory(
        model,
        gpu,
        tensor_parallel=hw.tensor_parallel,
        gpu_memory_utilization=hw.gpu_memory_utilization,
        block_size=eng.block_size,
        weight_dtype=eng.weight_dtype,
        kv_cache_dtype=resolve_kv_dtype(eng.kv_cache_dtype, eng.weight_dtype),
        max_num_batched_tokens=eng.max_num_batched_tokens,
        max_num_seqs=eng.max_num_seqs,
        num_gpu_blocks=eng.num_gpu_blocks,
    )
    profile = _profile(eng.latency_profile, gpu=gpu.id, model=model.id,
                       tensor_parallel=hw.tensor_parallel, weight_dtype=eng.weight_dtype,
                       interconnect=gpu.interconnect, on_gpu=is_gpu(gpu))
    coefficients = profile.resolve(
        gpu=gpu.id,
        model=model.id,
        tensor_parallel=hw.tensor_parallel,
        weight_dtype=eng.weight_dtype,
        interconnect=gpu.interconnect,
    )
    model_class = OperatorLatencyModel if profile.form == "operators" else LatencyModel
    latency = model_class(
        model,
        gpu,
        coefficients,
        tensor_parallel=hw.tensor_parallel,
        weight_dtype=eng.weight_dtype,
        kv_bytes_per_token_per_gpu=kv_bytes_per_token_per_gpu(
            model, hw.tensor_parallel, resolve_kv_dtype(eng.kv_cache_dtype, eng.weight_dtype)
        ),
        # host work hides behind the GPU's only where the profile's host terms stand apart
        async_scheduling=_async_used(eng) and profile.host_overlap,
        cuda_graph_sizes=() if eng.enforce_eager else tuple(eng.cuda_graph_sizes or ()),
    )
    max_model_len = _max_model_len(scenario, model, memory)
    setup = EngineSetup(
        limits=_limits(eng, max_model_len),
        num_gpu_blocks=memory.num_gpu_blocks,
        prefix_caching=eng.prefix_caching_used,
        max_model_len=max_model_len,
        latency=latency,
        replicas=hw.replicas,
        router=hw.router,
        kv_allocation=eng.kv_allocation_used,
        batching=_batching(eng),
        gateway=_gateway(scenario),
        cpu_blocks=_cpu_blocks(scenario, eng, gpu, memory),
    )
    return Deployment(scenario, model, gpu, memory, profile, _fleet_price(scenario), setup, eng)


def engine_with_defaults(engine: EngineSpec, gpu: GpuSpec) -> EngineSpec:
    """The engine section with every setting it leaves out taken from its vLLM release's
    defaults on this device (``sim.config.vllm_release``), checked again as a whole."""
    release = release_for(engine.vllm_version)
    on_gpu = is_gpu(gpu)
    limits = release.batch_limits(gpu)
    filled: dict = {}
    if engine.max_num_seqs is None:
        filled["max_num_seqs"] = limits.max_num_seqs
    if engine.max_num_batched_tokens is None:
        filled["max_num_batched_tokens"] = limits.max_num_batched_tokens
    if engine.async_scheduling is None:
        filled["async_scheduling"] = release.async_scheduling and on_gpu
    if engine.admission is None:
        filled["admission"] = release.admission
    seqs = filled.get("max_num_seqs", engine.max_num_seqs)
    tokens = filled.get("max_num_batched_tokens", engine.max_num_batched_tokens)
    if engine.cuda_graph_sizes is None and on_gpu:
        filled["cuda_graph_sizes"] = release.cuda_graph_sizes(seqs, tokens)
    if not on_gpu:
        filled["enforce_eager"] = True  # vLLM's CPU backend captures no CUDA graphs
    if not filled:
        return engine
    merged = {**engine.model_dump(exclude_unset=True), **filled}
    try:
        return EngineSpec.model_validate(merged)
    except ValidationError as exc:
        raise ScenarioError(
            f"engine (with vLLM {engine.vllm_version}'s defaults for {gpu.id}: "
            f"{', '.join(f'{k}={v}' for k, v in filled.items() if k != 'cuda_graph_sizes')}) "
            f"is not valid:\n{describe_validation_error(exc)}"
        ) from None


def _cpu_blocks(scenario: Scenario, eng: EngineSpec, gpu: GpuSpec, memory: MemoryPlan) -> int:
    """KV blocks of the CPU offload tier: its GiB over a block's bytes on all the replica's
    GPUs (vLLM sums the offload size over the ranks), within the server's host memory."""
    if not eng.cpu_offload_gib:
        return 0
    hw = scenario.hardware
    if not eng.prefix_caching_used:
        raise ScenarioError(
            "engine.cpu_offload_gib keeps evicted prefix-cache blocks in host memory, so it needs "
            "prefix caching on a continuous scheduler over paged memory: set "
            "engine.prefix_caching: true or cpu_offload_gib: 0")
    if gpu.host_link_gb_per_s is None:
        raise ScenarioError(
            f"engine.cpu_offload_gib: {gpu.id} has no host_link_gb_per_s (its link to host "
            "memory, which loads from the offload tier cross): add it to the device entry")
    host = hw.host_memory_gib or (gpu.host_memory_gib or 0.0) * hw.tensor_parallel
    if host and eng.cpu_offload_gib > host:
        raise ScenarioError(
            f"engine.cpu_offload_gib {eng.cpu_offload_gib:g} exceeds the host memory of one "
            f"replica ({host:g} GiB{'' if hw.host_memory_gib else f', typical for {gpu.id}'}): "
            "lower cpu_offload_gib or give hardware.host_memory_gib")
    block_bytes = memory.kv_bytes_per_block * hw.tensor_parallel
    return int(eng.cpu_offload_gib * 2**30 // block_bytes)


def _async_used(eng: EngineSpec) -> bool:
    """vLLM's async scheduler; the naive, request-level and contiguous-memory policies model
    other engines, which schedule synchronously."""
    return (bool(eng.async_scheduling) and eng.scheduler == "continuous"
            and eng.kv_allocation_used == "paged")


def _limits(eng: EngineSpec, max_model_len: int) -> SchedulerLimits:
    """The scheduler's limits; the naive policy is one whole request at a time.

    Naive serving (a plain generate() loop behind a queue) runs requests one after another:
    one sequence per step, each prompt computed whole in one step, no prefix cache.
    """
    if eng.scheduler == "naive":
        return SchedulerLimits(
            max_num_seqs=1,
            max_num_batched_tokens=max_model_len,
            block_size=eng.block_size,
            chunked_prefill=False,
        )
    return SchedulerLimits(
        max_num_seqs=eng.max_num_seqs,
        max_num_batched_tokens=eng.max_num_batched_tokens,
        block_size=eng.block_size,
        chunked_prefill=eng.chunked_prefill,
        async_scheduling=_async_used(eng),
        whole_prompt_admission=eng.admission == "whole_prompt",
        async_skips_length_stop=release_for(eng.vllm_version).async_skips_length_stop,
    )


def _profile(name: str, **config: object) -> LatencyProfile:
    """The profile a scenario names. ``auto`` is the shipped ``calibrated`` profile where it
    has an override fitted to this very configuration (measured steps of this model on this
    GPU), else on a GPU the ``trained`` profile (fitted across models, valid for any shape),
    else (a CPU) the hand-set ``roofline``."""
    if name != "auto":
        return load_profile(name)
    calibrated = load_profile("calibrated")
    matched = calibrated.most_specific_match(**config)
    if matched and {"gpu", "model"} <= matched.keys():
        return calibrated
    return load_profile("trained" if config.get("on_gpu") else "roofline")


def _batching(eng: EngineSpec) -> BatchingPolicy | None:
    if not eng.batches_requests:
        return None
    return BatchingPolicy(
        max_batch=eng.batch_size_used,
        timeout_s=eng.batch_timeout_ms_used / 1e3,
        preferred_sizes=tuple(eng.preferred_batch_sizes or ()) if eng.scheduler == "dynamic" else (),
    )


def _gateway(scenario: Scenario) -> GatewayPolicy | None:
    spec = scenario.gateway
    if spec is None:
        return None
    return GatewayPolicy(spec.window_ms / 1e3, spec.max_batch, tuple(spec.group_by))


def _max_model_len(scenario: Scenario, model: ModelSpec, memory: MemoryPlan) -> int:
    """The scenario's limit, or (like vLLM) the model's context length, capped by the cache.

    vLLM refuses to start when one full-length request cannot fit in the KV cache; when the
    user left max_model_len unset we cap it there instead, and the summary shows the value.
    """
    eng = scenario.engine
    if eng.max_model_len is None:
        return min(model.max_position_embeddings, memory.kv_capacity_tokens)
    if eng.max_model_len > model.max_position_embeddings:
        raise ScenarioError(
            f"engine.max_model_len {eng.max_model_len} exceeds {model.id}'s context length "
            f"({model.max_position_embeddings} tokens): lower it or leave it unset"
        )
    return eng.max_model_len


def _fleet_price(scenario: Scenario) -> FleetPrice:
    hw = scenario.hardware
    gpus = hw.replicas * hw.tensor_parallel
    if hw.price_usd_per_hour is not None:
        return FleetPrice(gpus, hw.price_usd_per_hour, "scenario", "hardware.price_usd_per_hour", "")
    if hw.price_tier == "reserved":
        price = price_for(hw.gpu, "on_demand")
        discount = hw.reserved_discount or 0.0
        return FleetPrice(gpus, price.usd_per_gpu_hour * (1 - discount),
                          f"reserved ({100 * discount:.0f} % off on-demand)",
                          f"{price.source}; less hardware.reserved_discount", price.as_of)
    price = price_for(hw.gpu, hw.price_tier)
    return FleetPrice(gpus, price.usd_per_gpu_hour, price.tier, price.source, price.as_of)
