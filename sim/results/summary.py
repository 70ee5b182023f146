"""A one-pool run's figures as one JSON-ready dict: latency, throughput, KV use, cost, SLO
verdict and how far the prediction can be trusted."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict

from sim.config.deployment import Deployment
from sim.config.quality import retention_for
from sim.config.scenario import EngineSpec, Scenario
from sim.engine.kv_state import waste_shares
from sim.engine.scheduler import SchedulerLimits
from sim.fleet.simulation import SimulationResult
from sim.results import metrics
from sim.results.cost import billed_window_s, cost_summary
from sim.results.error_band import ErrorBand, band_from_section
from sim.results.piece_distribution import piece_distribution_ms
from sim.results.request_counts import request_counts
from sim.results.saturation import backlog_share, backlog_share_of_file, saturation_summary
from sim.results.slo_verdict import slo_figures, slo_verdict
from sim.results.streamed_figures import streamed_request_figures, streamed_step_figures


def hits_by_tier(result: SimulationResult) -> dict[str, float]:
    """Shares of the looked-up prompt tokens served from the GPU cache and from host memory."""
    looked = result.lookup_tokens or 1
    return {"gpu": (result.hit_tokens - result.cpu_hit_tokens) / looked,
            "cpu": result.cpu_hit_tokens / looked}


def summarize(deployment: Deployment, result: SimulationResult) -> dict:
    """The run's figures as one JSON-ready dict (the CLI's --format json output)."""
    scenario = deployment.scenario
    if result.streamed is None:
        records = result.records
        duration = metrics.makespan_s(records)
        figures = request_figures(scenario, result, duration)
        step_figures = _table_step_figures(result, duration)
        completed = records[records["status"] == "completed"]
        output_tokens = int(completed["output_tokens"].sum())
        prompt_tokens = int(completed["prompt_tokens"].sum())
        arrivals = records["arrival_s"]
        first, last = (float(arrivals.min()), float(arrivals.max())) if len(arrivals) else (0, 0)
        backlog = backlog_share(records)
    else:
        digest = result.streamed.records
        duration = digest.makespan_s
        figures = streamed_request_figures(scenario, result, result.streamed, duration)
        step_figures = streamed_step_figures(result, result.streamed, duration)
        output_tokens, prompt_tokens = digest.all.output_tokens, digest.all.prompt_tokens
        first, last = digest.first_arrival_s, digest.last_arrival_s
        backlog = backlog_share_of_file(result.streamed.records_path)
    total_tokens = output_tokens + prompt_tokens
    saturation = saturation_summary(backlog, first, last, duration)
    billed = billed_window_s(figures["requests"]["arrived"], first, last, duration,
                             saturation["kept_up"])
    busy_usd = (step_figures["replica_busy_fraction"] * duration / 3600
                * deployment.price.usd_per_hour)
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
            "mean_utilization": step_figures["kv_mean_utilization"],
            "preemptions": result.preemptions,
            "prefix_cache_hit_rate": result.prefix_cache_hit_rate,
            "prefix_cache_hit_rate_by_turn": step_figures["hit_rate_by_turn"],
            "prefix_cache_hits_by_tier": hits_by_tier(result),
            "cpu_offload_blocks": deployment.setup.cpu_blocks,
            "allocation": scenario.engine.kv_allocation_used,
            "waste": step_figures["waste"],
        },
        "batch_size": step_figures["batch_size"],
        "gateway": _gateway_summary(scenario, result),
        "replica_busy_fraction": step_figures["replica_busy_fraction"],
        "saturation": saturation,
        "cost": cost_summary(deployment.price, billed, output_tokens, total_tokens, busy_usd),
        **quality_figures({deployment.model.id: quality_summary(deployment)}),
        "wall_s": result.wall_s,
    }


def _table_step_figures(result: SimulationResult, duration: float) -> dict:
    """The figures of ``summarize`` that come from the step table (and the turns' hits)."""
    return {
        "kv_mean_utilization": metrics.kv_mean_utilization(result, duration),
        "hit_rate_by_turn": metrics.hit_rate_by_turn(result.records),
        "waste": waste_shares(result.steps),
        "batch_size": metrics.batch_size_distribution(result.steps),
        "replica_busy_fraction": replica_busy_fraction(result, duration),
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
    figures = {
        "requests": request_counts(result, len(records), len(completed),
                                   int((records["status"] == "rejected").sum())),
        "duration_s": duration,
        "ttft_ms": ttft,
        "tpot_ms": tpot,
        "itl_ms": piece_distribution_ms(result.itl_pieces, metrics.QUANTILES),
        "e2e_ms": e2e,
        "queue_ms": metrics.distribution_ms(completed["queue_s"]),
        "by_endpoint": metrics.by_endpoint(records),
        "throughput": metrics.throughput(completed, duration),
        "goodput": metrics.goodput(completed, len(records), duration, slo.ttft_p95_ms,
                                   slo.tpot_p95_ms),
    }
    return figures | {"slo": slo_verdict(slo, slo_figures(figures), figures["requests"])}


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
    really fall in (``sim.results.error_band``; a fleet's is the widest of its pools'), or why
    there is none."""
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
