"""Whether a run held its service-level objective: the one verdict every output shows.

A run holds its SLO when every latency target the scenario sets is met *and* no more than
``slo.max_rejected_share`` of the requests that arrived were rejected or left unfinished (by
default 1 %). Latency percentiles are taken over the requests that completed, so without the
second condition a fleet that turns most requests away would look fast; with it, it fails, and
the verdict says why. The CLI, the summary JSON, the planner, the capacity search and every page
of the app judge runs with these functions.
"""

from __future__ import annotations

from sim.config.scenario import SloSpec

# Each latency target and the summary figure it is judged on: (target, metric, statistic).
SLO_FIGURES = (("ttft_p95_ms", "ttft_ms", "p95"), ("tpot_p95_ms", "tpot_ms", "p95"),
               ("e2e_p99_ms", "e2e_ms", "p99"))
LABELS = {"ttft_p95_ms": "p95 TTFT", "tpot_p95_ms": "p95 TPOT", "e2e_p99_ms": "p99 E2E"}
REJECTIONS = "rejections"  # the miss of too many requests rejected or unfinished


def sets_targets(slo: SloSpec) -> bool:
    """Whether the SLO sets any latency target (without one there is no verdict)."""
    return any(getattr(slo, name) is not None for name, _, _ in SLO_FIGURES)


def slo_figures(summary: dict, end: str = "predicted") -> dict[str, float | None]:
    """The figures a run's SLO verdict rests on, by target name (``ttft_p95_ms``, ...).

    ``predicted`` takes the simulated figures; ``pessimistic`` and ``optimistic`` take the
    high (slow) and low end of the run's error band (``summary["prediction"]["band"]``). A run
    without a band, or a figure its band does not cover, keeps the simulated figure: there is
    no measured spread to move it by, and none is made up.
    """
    band = summary.get("prediction", {}).get("band") if end != "predicted" else None
    side = "high" if end == "pessimistic" else "low"
    figures = {}
    for name, metric, stat in SLO_FIGURES:
        value = summary[metric][stat]
        edge = (band or {}).get(metric, {}).get(stat)
        figures[name] = edge[side] if edge is not None and value is not None else value
    return figures


def rejected_share(requests: dict) -> float:
    """The share of the arrived requests that were rejected or never finished (a summary
    written before ``completed`` was counted gives its rejections)."""
    arrived = requests["arrived"]
    completed = requests.get("completed")
    unserved = arrived - completed if completed is not None else requests.get("rejected", 0)
    return unserved / arrived if arrived else 0.0


def slo_misses(slo: SloSpec, figures: dict[str, float | None],
               rejected: float = 0.0) -> dict[str, float]:
    """What a run misses, each with how far: a latency target's figure / target (a missing
    figure, no request completed, misses by infinity), and ``rejections`` when the share of
    requests rejected or unfinished (``rejected``) is above ``slo.max_rejected_share``."""
    misses = {}
    for name, _, _ in SLO_FIGURES:
        target, value = getattr(slo, name), figures[name]
        if not _within(value, target):
            misses[name] = float("inf") if value is None or value != value else value / target
    limit = slo.max_rejected_share
    if rejected > limit:
        misses[REJECTIONS] = rejected / limit if limit > 0 else float("inf")
    return misses


def slo_verdict(slo: SloSpec, figures: dict[str, float | None], requests: dict) -> dict:
    """The summary's ``slo`` entry: each target with whether it was met, the share of requests
    rejected or unfinished against its limit, and the whole verdict, ``met`` (None when the
    SLO sets no latency target) with a reason per miss."""
    share = rejected_share(requests)
    verdict: dict = {}
    for name, _, _ in SLO_FIGURES:
        target = getattr(slo, name)
        if target is None and name == "e2e_p99_ms":
            continue  # optional: reported only when the scenario sets it
        verdict[name] = target
        verdict[name.removesuffix("_ms") + "_met"] = (
            None if target is None else _within(figures[name], target))
    misses = slo_misses(slo, figures, share)
    verdict |= {
        "max_rejected_share": slo.max_rejected_share,
        "rejected_share": share,
        "rejections_met": REJECTIONS not in misses,
        "met": (not misses) if sets_targets(slo) else None,
        "reasons": [miss_reason(name, slo, figures, share) for name in misses]
        if sets_targets(slo) else [],
    }
    return verdict


def miss_reason(name: str, slo: SloSpec, figures: dict[str, float | None],
                share: float) -> str:
    """One miss in words: "p95 TTFT 812 ms > 500 ms", "83.0 % of requests rejected or
    unfinished > 1 %"."""
    if name == REJECTIONS:
        return (f"{100 * share:.1f} % of requests rejected or unfinished > "
                f"{100 * slo.max_rejected_share:g} %")
    value = figures[name]
    shown = "none completed" if value is None or value != value else f"{value:,.0f} ms"
    return f"{LABELS[name]} {shown} > {getattr(slo, name):,.0f} ms"


def _within(value: float | None, target: float | None) -> bool:
    return target is None or (value is not None and value == value and value <= target)
