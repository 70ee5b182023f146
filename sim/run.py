"""From a scenario to results: resolve catalogs, generate the workload, simulate, summarise."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from pydantic import ValidationError

from sim import metrics
from sim.batching_policy import BatchingPolicy
from sim.cost import FleetPrice, cost_summary
from sim.dtypes import resolve_kv_dtype
from sim.engine import EngineSetup, SimulationResult, simulate
from sim.error_band import ErrorBand, band_from_section
from sim.errors import ScenarioError
from sim.gateway import GatewayPolicy
from sim.gpu import GpuSpec, load_gpu
from sim.latency_model import LatencyModel
from sim.operator_latency_model import OperatorLatencyModel
from sim.kv_state import waste_shares
from sim.latency_profile import LatencyProfile, load_profile
from sim.memory_plan import MemoryPlan, kv_bytes_per_token_per_gpu, plan_memory
from sim.model_catalog import load_model
from sim.model_spec import ModelSpec
from sim.price import price_for
from sim.quality import retention_for
from sim.scenario import EngineSpec, Scenario, SloSpec, describe_validation_error
from sim.scheduler import SchedulerLimits
from sim.session_workload import SessionWorkload, generate_sessions
from sim.vllm_release import is_gpu, release_for
from sim.trace_workload import TraceReplay
from sim.workload import Workload, generate_workload
from traces.errors import TraceError


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


@dataclass(frozen=True)
class RunOutcome:
    """A finished run: for a fleet, ``result`` merges its pools (records and steps carry a
    ``pool`` column) and ``deployments`` has one entry per pool, in the fleet's order."""

    scenario: Scenario
    deployments: tuple[Deployment, ...]
    workload: Workload | TraceReplay | SessionWorkload
    result: SimulationResult
    summary: dict

    @property
    def deployment(self) -> Deployment:
        """The first (for a one-pool scenario, the only) pool's deployment."""
        return self.deployments[0]


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
    defaults on this device (``sim.vllm_release``), checked again as a whole."""
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


def hits_by_tier(result: SimulationResult) -> dict[str, float]:
    """Shares of the looked-up prompt tokens served from the GPU cache and from host memory."""
    looked = result.lookup_tokens or 1
    return {"gpu": (result.hit_tokens - result.cpu_hit_tokens) / looked,
            "cpu": result.cpu_hit_tokens / looked}


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


def run_scenario(
    scenario: Scenario,
    progress: Callable[[int, int], None] | None = None,
) -> RunOutcome:
    if scenario.is_fleet:
        from sim.fleet import run_fleet  # the fleet runs its pools through this module

        return run_fleet(scenario, progress)
    deployment = resolve(scenario)
    source = workload_source(scenario)
    result = simulate_pool(deployment, source, progress)
    check_replayed(source)
    summary = summarize(deployment, result)
    if isinstance(source, TraceReplay):
        add_trace_summary(summary, source)
    return RunOutcome(scenario, (deployment,), source, result, summary)


def workload_source(scenario: Scenario) -> Workload | TraceReplay | SessionWorkload:
    """The scenario's requests: drawn from its distributions, conversations whose turns the
    simulation sends, or a trace to stream."""
    spec = scenario.workload
    if spec.trace is not None:
        return TraceReplay(spec.trace, seed=scenario.seed, num_requests=spec.num_requests,
                           max_tokens=spec.max_tokens)
    rng = np.random.default_rng(scenario.seed)
    workload = generate_sessions(spec, rng) if spec.sessions else generate_workload(spec, rng)
    if len(workload) == 0:
        raise ScenarioError(
            "workload: the arrival process produced no requests (rate x duration is too small); "
            "raise workload.arrivals.rate_per_s or workload.duration_s, or give num_requests"
        )
    return workload


def simulate_pool(deployment: Deployment,
                  source: Workload | Iterable[Workload] | SessionWorkload,
                  progress: Callable[[int, int], None] | None = None) -> SimulationResult:
    """Simulate one pool on its requests; a trace's bad rows become a ScenarioError."""
    if isinstance(source, SessionWorkload):
        _check_conversations_fit(deployment)
    if (isinstance(source, Workload) and not deployment.setup.limits.chunked_prefill
            and deployment.setup.batching is None):
        _check_prompts_fit_one_step(source, deployment)
    try:
        return simulate(deployment.setup, source, progress)
    except TraceError as exc:
        raise ScenarioError(f"workload.trace: {exc}") from None


def check_replayed(source: Workload | TraceReplay | SessionWorkload) -> None:
    """A trace whose window, filters or sampling left no request has nothing to summarise."""
    if isinstance(source, TraceReplay) and source.requests == 0:
        raise ScenarioError(
            f"workload.trace: no requests to replay ({source.summary()}); widen the time "
            "window (start_s, end_s), loosen the model or endpoint filters, or raise sample")


def add_trace_summary(summary: dict, replay: TraceReplay) -> None:
    """What the trace replay read and transformed; caps applied while it streamed count as
    capped outputs too."""
    summary["trace"] = replay.summary()
    cuts = summary["trace"].get("transforms", {})
    summary["requests"]["capped_by_max_tokens"] += cuts.get("truncated_requests", 0)
    summary["requests"]["output_tokens_saved"] += cuts.get("output_tokens_saved", 0)


def _check_prompts_fit_one_step(workload: Workload, deployment: Deployment) -> None:
    budget = deployment.setup.limits.max_num_batched_tokens
    longest = int(workload.input_tokens.max()) if len(workload) else 0
    if longest > budget and longest < deployment.setup.max_model_len:
        raise ScenarioError(
            f"engine.chunked_prefill is false but the workload has a {longest}-token prompt "
            f"and max_num_batched_tokens is {budget}: such a prompt could never be scheduled; "
            "raise max_num_batched_tokens or enable chunked_prefill"
        )


def _check_conversations_fit(deployment: Deployment) -> None:
    """The longest conversation the sessions can draw must fit the engine's context: its last
    turn re-sends everything before it, so a conversation that outgrows max_model_len would have
    its later turns refused. (Exactly max_model_len tokens still fits: the last prompt is
    below the limit and the reply ends at it.)"""
    spec = deployment.scenario.workload
    assert spec.sessions is not None
    prompt, reply = spec.sessions.longest_turn(spec.max_tokens)
    limit = deployment.setup.max_model_len
    if prompt + reply > limit:
        raise ScenarioError(
            f"workload.sessions: the longest conversation reaches {prompt + reply:,} tokens "
            "(first_turn_tokens + (turns - 1) x (new_tokens + reply_tokens) + reply_tokens, "
            f"each at its maximum), beyond engine.max_model_len {limit:,}: lower turns, "
            "the token counts or their max, or raise engine.max_model_len"
        )
    limits = deployment.setup.limits
    if not limits.chunked_prefill and deployment.setup.batching is None and (
            prompt > limits.max_num_batched_tokens):
        raise ScenarioError(
            f"engine.chunked_prefill is false but a conversation's last prompt can reach "
            f"{prompt:,} tokens and max_num_batched_tokens is {limits.max_num_batched_tokens}: "
            "such a prompt could never be scheduled; raise max_num_batched_tokens, enable "
            "chunked_prefill or shorten the conversations"
        )


def summarize(deployment: Deployment, result: SimulationResult) -> dict:
    """The run's figures as one JSON-ready dict (the CLI's --format json output)."""
    scenario = deployment.scenario
    records = result.records
    duration = metrics.makespan_s(records)
    completed = records[records["status"] == "completed"]
    output_tokens = int(completed["output_tokens"].sum())
    total_tokens = output_tokens + int(completed["prompt_tokens"].sum())
    figures = request_figures(scenario, result, duration)
    return {
        "scenario": scenario.name,
        "seed": scenario.seed,
        "model": deployment.model.id,
        "gpu": deployment.gpu.id,
        "tensor_parallel": scenario.hardware.tensor_parallel,
        "replicas": scenario.hardware.replicas,
        "weight_dtype": scenario.engine.weight_dtype,
        "max_model_len": deployment.setup.max_model_len,
        "latency_profile": _profile_summary(deployment),
        "engine": _engine_summary(deployment.engine, deployment.setup.limits),
        **figures,
        "prediction": prediction_summary([deployment], figures),
        "kv": {
            "num_gpu_blocks": result.num_gpu_blocks,
            "block_size": deployment.setup.limits.block_size,
            "mean_utilization": metrics.kv_mean_utilization(result, duration),
            "preemptions": result.preemptions,
            "prefix_cache_hit_rate": result.prefix_cache_hit_rate,
            "prefix_cache_hit_rate_by_turn": metrics.hit_rate_by_turn(records),
            "prefix_cache_hits_by_tier": hits_by_tier(result),
            "cpu_offload_blocks": deployment.setup.cpu_blocks,
            "allocation": scenario.engine.kv_allocation_used,
            "waste": waste_shares(result.steps),
        },
        "batch_size": metrics.batch_size_distribution(result.steps),
        "gateway": _gateway_summary(scenario, result),
        "replica_busy_fraction": replica_busy_fraction(result, duration),
        "cost": cost_summary(deployment.price, duration, output_tokens, total_tokens),
        **quality_figures({deployment.model.id: quality_summary(deployment)}),
        "wall_s": result.wall_s,
    }


def quality_figures(by_pool: dict[str, dict]) -> dict:
    """The quality entries, and the lowest retention among them as one comparable figure."""
    known = [q["percent"] for q in by_pool.values() if q["percent"] is not None]
    return {"quality": by_pool, "quality_retention_percent": min(known) if known else None}


def quality_summary(deployment: Deployment) -> dict:
    """How much of the unquantized model's accuracy the weight format keeps, and the source,
    reported beside every cost so that cheaper never hides worse."""
    scenario = deployment.scenario
    retention = retention_for(deployment.model.id, scenario.engine.weight_dtype,
                              scenario.quality_retention)
    return {"model": deployment.model.id, **asdict(retention)}


def request_figures(scenario: Scenario, result: SimulationResult, duration: float) -> dict:
    """What the requests saw (counts, latency distributions, throughput, SLO verdict): the
    part of a summary that is the same for one pool and for a whole fleet."""
    records = result.records
    completed = records[records["status"] == "completed"]
    slo = scenario.slo
    ttft = metrics.distribution_ms(completed["ttft_s"])
    tpot = metrics.distribution_ms(completed["tpot_s"])
    e2e = metrics.distribution_ms(completed["e2e_s"])
    return {
        "requests": {
            "arrived": len(records),
            "completed": len(completed),
            "rejected": int((records["status"] == "rejected").sum()),
            "rejected_reasons": dict(result.rejected_reasons),
            "truncated_outputs": result.truncated_outputs,
            "capped_by_max_tokens": result.capped_outputs,
            "output_tokens_saved": result.output_tokens_saved,
        },
        "duration_s": duration,
        "ttft_ms": ttft,
        "tpot_ms": tpot,
        "itl_ms": metrics.weighted_distribution_ms(result.itl_durations_s, result.itl_weights),
        "e2e_ms": e2e,
        "queue_ms": metrics.distribution_ms(completed["queue_s"]),
        "by_endpoint": metrics.by_endpoint(records),
        "throughput": metrics.throughput(completed, duration),
        "goodput": metrics.goodput(completed, len(records), duration, slo.ttft_p95_ms,
                                   slo.tpot_p95_ms),
        "slo": _slo_verdict(slo, ttft, tpot, e2e),
    }


def replica_busy_fraction(result: SimulationResult, duration: float) -> float:
    """Share of replica-time spent stepping (replicas are busy exactly while stepping)."""
    busy_s = float(result.steps["duration_s"].sum())
    return busy_s / (result.replicas * duration) if duration > 0 else 0.0


def _gateway_summary(scenario: Scenario, result: SimulationResult) -> dict | None:
    """What the gateway did: how many groups it released and how long it held requests."""
    spec = scenario.gateway
    if spec is None:
        return None
    held = result.gateway_hold_s
    return {
        "window_ms": spec.window_ms,
        "max_batch": spec.max_batch,
        "group_by": list(spec.group_by),
        "groups": result.gateway_groups,
        "mean_group_size": len(held) / result.gateway_groups if result.gateway_groups else None,
        "hold_ms": metrics.distribution_ms(held),
        "max_hold_ms": float(held.max() * 1e3) if len(held) else None,
    }


def _profile_summary(deployment: Deployment) -> dict:
    hw = deployment.scenario.hardware
    matched = deployment.profile.most_specific_match(
        gpu=deployment.gpu.id, model=deployment.model.id, tensor_parallel=hw.tensor_parallel,
        weight_dtype=deployment.scenario.engine.weight_dtype,
        interconnect=deployment.gpu.interconnect)
    return {"name": deployment.profile.name, "source": deployment.profile.source,
            "form": deployment.profile.form, "matched": matched,
            "calibrated_for_this_configuration": bool(matched and {"gpu", "model"} <= matched.keys())}


def prediction_summary(deployments: Sequence[Deployment], figures: dict) -> dict:
    """How far to trust the latencies: whether the model, the GPU and the TP degree were in
    the data each pool's latency profile was trained on, and the range the latencies may
    really fall in (``sim.error_band``; a fleet's is the widest of its pools'), or why there
    is none."""
    seen_by_pool, bands = [], []
    for d in deployments:
        seen = d.profile.in_training_data(model=d.model.id, gpu=d.gpu.id,
                                          tensor_parallel=d.scenario.hardware.tensor_parallel)
        seen_by_pool.append(seen)
        bands.append(None if seen is None else
                     band_from_section(d.profile.error_band, seen["gpu"],
                                       f"profile {d.profile.name}"))
    names = "+".join(dict.fromkeys(d.profile.name for d in deployments))
    seen = seen_by_pool[0] if len(deployments) == 1 else seen_by_pool
    if any(band is None for band in bands):
        reason = ("the latency profile carries no error band: it was not checked on runs it was "
                  "not trained on (hand-set, fitted to one configuration, or trained without a "
                  "held-out check)")
        return {"profile": names, "in_training_data": seen, "band": None, "band_basis": reason}
    band = bands[0] if len(bands) == 1 else ErrorBand.widest(bands)
    return {"profile": names, "in_training_data": seen, "band": band.ranges(figures),
            "band_basis": band.basis}


def _engine_summary(eng: EngineSpec, limits: SchedulerLimits) -> dict:
    """The scheduling settings that took effect (defaults filled in)."""
    out: dict = {"scheduler": eng.scheduler, "kv_allocation": eng.kv_allocation_used,
                 "prefix_caching": eng.prefix_caching_used}
    if eng.batches_requests:
        out |= {"batch_size": eng.batch_size_used, "batch_timeout_ms": eng.batch_timeout_ms_used,
                "preferred_batch_sizes": list(eng.preferred_batch_sizes or ())
                if eng.scheduler == "dynamic" else []}
    else:
        out |= {"max_num_seqs": limits.max_num_seqs,
                "max_num_batched_tokens": limits.max_num_batched_tokens,
                "chunked_prefill": limits.chunked_prefill,
                "vllm_version": eng.vllm_version,
                "async_scheduling": limits.async_scheduling,
                "admission": eng.admission,
                "cuda_graphs": None if eng.enforce_eager or not eng.cuda_graph_sizes
                else f"{len(eng.cuda_graph_sizes)} sizes up to {max(eng.cuda_graph_sizes)}"}
    return out


def _slo_verdict(slo: SloSpec, ttft: dict, tpot: dict, e2e: dict) -> dict:
    def holds(target: float | None, value: float | None) -> bool | None:
        if target is None:
            return None
        return value is not None and value <= target

    verdict = {
        "ttft_p95_ms": slo.ttft_p95_ms,
        "tpot_p95_ms": slo.tpot_p95_ms,
        "ttft_p95_met": holds(slo.ttft_p95_ms, ttft["p95"]),
        "tpot_p95_met": holds(slo.tpot_p95_ms, tpot["p95"]),
    }
    if slo.e2e_p99_ms is not None:  # optional: reported only when the scenario sets it
        verdict |= {"e2e_p99_ms": slo.e2e_p99_ms,
                    "e2e_p99_met": holds(slo.e2e_p99_ms, e2e["p99"])}
    return verdict
