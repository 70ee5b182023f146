"""What a simulated fleet costs: GPU-hours, dollars, and dollars per token."""

from __future__ import annotations

from sim.config.price import FleetPrice

HOURS_PER_MONTH = 730.0  # 8,760 hours / 12 months


def cost_summary(price: FleetPrice, duration_s: float, output_tokens: int,
                 total_tokens: int) -> dict[str, float | int | str | None]:
    """Cost of running the fleet for the simulated span, and per token served in it.

    The monthly bill assumes the fleet runs around the clock at this size, which is what a
    fleet sized for this load costs.
    """
    hours = duration_s / 3600
    usd_total = price.usd_per_hour * hours
    per_million_out = usd_total / output_tokens * 1e6 if output_tokens else None
    per_million_all = usd_total / total_tokens * 1e6 if total_tokens else None
    return {
        "gpus": price.gpus,
        "usd_per_gpu_hour": price.usd_per_gpu_hour,
        "usd_per_hour": price.usd_per_hour,
        "gpu_hours": price.gpus * hours,
        "usd_total": usd_total,
        "usd_per_million_output_tokens": per_million_out,
        "usd_per_million_tokens": per_million_all,
        "output_tokens_per_usd": output_tokens / usd_total if usd_total > 0 else None,
        "monthly_usd": price.usd_per_hour * HOURS_PER_MONTH,
        "price_tier": price.tier,
        "price_source": price.source,
        "price_as_of": price.as_of,
    }
