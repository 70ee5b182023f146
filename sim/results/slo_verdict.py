"""Whether a run held its service-level objectives: the one verdict every output shows."""

from __future__ import annotations

from sim.config.scenario import SloSpec


def slo_verdict(slo: SloSpec, ttft: dict, tpot: dict, e2e: dict) -> dict:
    """Each target the SLO sets, with whether the run's percentile met it."""
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
