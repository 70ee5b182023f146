"""What a simulated fleet costs: GPU-hours, dollars, and dollars per token."""

from __future__ import annotations

from sim.config.price import FleetPrice

HOURS_PER_MONTH = 730.0  # 8,760 hours / 12 months


def billed_window_s(arrived: int, first_arrival_s: float, last_arrival_s: float,
                    makespan_s: float, kept_up: bool | None) -> tuple[float, str]:
    """The span a run's fleet is billed for, and its basis in words.

    A fleet that keeps up is billed for the window its load was offered over, what a fleet
    sized for this load pays per hour of that load: ``n`` arrivals spanning ``last - first``
    stand for ``(last - first) * n / (n - 1)`` of a steady load (each arrival for one gap). The
    queue draining after the last arrival is lag, not billed. A fleet that falls behind
    (``kept_up`` False) works until its queue drains to serve that load, and a batch whose
    requests all arrive at once (``kept_up`` None) runs until it ends: both are billed until
    the last reply.
    """
    if kept_up and arrived >= 2 and last_arrival_s > first_arrival_s:
        window = (last_arrival_s - first_arrival_s) * arrived / (arrived - 1)
        return min(window, makespan_s), "arrival window"
    if kept_up is None:
        return makespan_s, "until the last reply (every request arrived at once)"
    return makespan_s, "until the last reply (the fleet did not keep up with the load)"


def cost_summary(price: FleetPrice, billed: tuple[float, str], output_tokens: int,
                 total_tokens: int, busy_usd: float) -> dict[str, float | int | str | None]:
    """Cost of running the fleet for the ``billed`` span (``billed_window_s``), and per token
    served; ``busy_usd`` is the part of it spent while GPUs were stepping.

    The monthly bill assumes the fleet runs around the clock at this size, which is what a
    fleet sized for this load costs.
    """
    billed_s, basis = billed
    hours = billed_s / 3600
    usd_total = price.usd_per_hour * hours
    per_million_out = usd_total / output_tokens * 1e6 if output_tokens else None
    per_million_all = usd_total / total_tokens * 1e6 if total_tokens else None
    return {
        "gpus": price.gpus,
        "usd_per_gpu_hour": price.usd_per_gpu_hour,
        "usd_per_hour": price.usd_per_hour,
        "billed_s": billed_s,
        "billed_basis": basis,
        "gpu_hours": price.gpus * hours,
        "usd_total": usd_total,
        "busy_usd": min(busy_usd, usd_total) if usd_total > 0 else busy_usd,
        "usd_per_million_output_tokens": per_million_out,
        "usd_per_million_tokens": per_million_all,
        "output_tokens_per_usd": output_tokens / usd_total if usd_total > 0 else None,
        "monthly_usd": price.usd_per_hour * HOURS_PER_MONTH,
        "price_tier": price.tier,
        "price_source": price.source,
        "price_as_of": price.as_of,
    }
