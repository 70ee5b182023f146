"""A fleet's figures: the same keys as a one-pool summary (so reports and comparisons read
both) and, under ``pools``, each pool's own summary."""

from __future__ import annotations

from dataclasses import replace

from sim.config.deployment import Deployment
from sim.config.price import FleetPrice
from sim.config.scenario import Scenario
from sim.engine.kv_state import waste_shares
from sim.fleet.simulation import SimulationResult
from sim.results import metrics
from sim.results.cost import billed_window_s, cost_summary
from sim.results.saturation import backlog_share, saturation_summary
from sim.results.summary import (
    hits_by_tier, prediction_summary, quality_figures, quality_summary, replica_busy_fraction,
    request_figures, summarize,
)


def fleet_summary(scenario: Scenario, deployments: tuple[Deployment, ...],
                  results: list[tuple[str, SimulationResult]], merged: SimulationResult) -> dict:
    """The fleet's figures (same keys as a one-pool summary, so reports and comparisons read
    both) and, under ``pools``, each pool's own summary."""
    duration = metrics.makespan_s(merged.records)
    completed = merged.records[merged.records["status"] == "completed"]
    output_tokens = int(completed["output_tokens"].sum())
    total_tokens = output_tokens + int(completed["prompt_tokens"].sum())
    pools = {name: summarize(d, r) for (name, r), d in zip(results, deployments)}
    for name, pool in pools.items():
        pool["requests"]["routed"] = pool["requests"]["arrived"]
        pool["share_of_requests"] = (pool["requests"]["arrived"] / len(merged.records)
                                     if len(merged.records) else 0.0)
    # A replica's blocks count once per replica: merged.num_gpu_blocks is the fleet's total.
    per_replica = replace(merged, replicas=1)
    figures = request_figures(scenario, merged, duration)
    arrivals = merged.records["arrival_s"]
    first, last = (float(arrivals.min()), float(arrivals.max())) if len(arrivals) else (0, 0)
    saturation = saturation_summary(backlog_share(merged.records), first, last, duration)
    billed = billed_window_s(len(merged.records), first, last, duration, saturation["kept_up"])
    busy_usd = sum(pool["cost"]["busy_usd"] for pool in pools.values())
    return {
        "scenario": scenario.name,
        "seed": scenario.seed,
        "model": "+".join(dict.fromkeys(d.model.id for d in deployments)),
        "gpu": "+".join(dict.fromkeys(d.gpu.id for d in deployments)),
        "tensor_parallel": None,
        "replicas": merged.replicas,
        "weight_dtype": "+".join(dict.fromkeys(d.scenario.engine.weight_dtype
                                               for d in deployments)),
        "fleet": {"pools": list(pools), "routes": [r.model_dump(exclude_defaults=True)
                                                   for r in scenario.fleet.routes]},
        **figures,
        "prediction": prediction_summary(deployments, figures),
        "kv": {
            "num_gpu_blocks": merged.num_gpu_blocks,
            "mean_utilization": metrics.kv_mean_utilization(per_replica, duration),
            "preemptions": merged.preemptions,
            "prefix_cache_hit_rate": merged.prefix_cache_hit_rate,
            "prefix_cache_hit_rate_by_turn": metrics.hit_rate_by_turn(merged.records),
            "prefix_cache_hits_by_tier": hits_by_tier(merged),
            "waste": waste_shares(merged.steps),
        },
        "batch_size": metrics.batch_size_distribution(merged.steps),
        "replica_busy_fraction": replica_busy_fraction(merged, duration),
        "saturation": saturation,
        "cost": cost_summary(_fleet_price(deployments), billed, output_tokens, total_tokens,
                             busy_usd),
        **quality_figures({name: quality_summary(d) for name, d in zip(pools, deployments)}),
        "pools": pools,
        "wall_s": merged.wall_s,
    }


def _fleet_price(deployments: tuple[Deployment, ...]) -> FleetPrice:
    """All pools' GPUs at their own prices, as one price per average GPU-hour."""
    gpus = sum(d.price.gpus for d in deployments)
    usd_per_hour = sum(d.price.usd_per_hour for d in deployments)

    def joined(values: list[str]) -> str:
        return "; ".join(dict.fromkeys(v for v in values if v))

    return FleetPrice(
        gpus=gpus,
        usd_per_gpu_hour=usd_per_hour / gpus if gpus else 0.0,
        tier=joined([d.price.tier for d in deployments]),
        source=joined([d.price.source for d in deployments]),
        as_of=joined([d.price.as_of for d in deployments]),
    )
