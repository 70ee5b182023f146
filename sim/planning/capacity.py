"""Capacity: the highest arrival rate a configuration sustains within its scenario's SLO.

The offered load is scaled by a factor (1 = the scenario's own rate) and each load is
simulated once, on the scenario's seed. A load *holds* when it holds the SLO (every target met,
and at most ``slo.max_rejected_share`` of the requests rejected: sim.results.slo_verdict) and
the fleet keeps up with it (sim.results.saturation). Keeping up means that
when the last request arrives, at most 10 % of the requests are still waiting to start: an
overloaded fleet's queue grows with the run, to about 1 - throughput / offered rate of the
requests, while a fleet that keeps up has only the few that just arrived. Without it a
TPOT-only SLO would hold at any load, since each reply, once started, streams as fast as ever
however long the queue before it. The search brackets the answer by doubling from the
scenario's rate (or halving, when that already fails), then bisects until the bracket is
within 2 % or a search has run 14 simulations:

    scale   1/1024 ... 1/2   1   2   4 | 8 ... 1024
                              held held held | failed       -> bisect in (4, 8)

With an error band the same search judges each run at the band's slow end (every figure
replaced by its ``high``), which gives the band's low rate, and at its fast end, which gives
its high rate. The searches share their simulations: a run is judged at every end at once.

How much each run simulates stays bounded. A run keeps the scenario's time span (its
duration, stages, or the span its ``num_requests`` covers at its own rate): ``num_requests``
is scaled with the rate, up to MAX_REQUESTS, and a duration-bound load is capped at as many.
Below the scenario's rate the span stretches instead, so a run never offers fewer requests than
the scenario does and its percentiles rest on as many. A trace is replayed on a faster or
slower clock (``time_scale``), which keeps its own shape and request count; its
``rate_scale`` would add copies a microsecond after each request, a burst rather than a rate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


from sim.config.scenario import Scenario, parse_scenario
from sim.engine.errors import ScenarioError, UserError
from sim.results.saturation import MAX_BACKLOG_SHARE
from sim.results.slo_verdict import SLO_FIGURES, rejected_share, slo_figures, slo_misses
from sim.runner.run import run_scenario

MAX_SCALE = 1024.0  # the search stays within the scenario's rate / 1024 and x 1024
MIN_SCALE = 1 / MAX_SCALE
MAX_REQUESTS = 10_000  # per run above the scenario's own rate (when it offers fewer itself)
PRECISION = 0.02  # the bracket's width relative to the rate that held
MAX_SIMULATIONS = 14  # new simulations one search may run
# the verdict ends: the simulated figures, and the band's slow and fast ends
PREDICTED, PESSIMISTIC, OPTIMISTIC = "predicted", "pessimistic", "optimistic"
_LABELS = {"ttft_p95": "p95 TTFT", "tpot_p95": "p95 TPOT", "e2e_p99": "p99 E2E"}


@dataclass(frozen=True)
class Check:
    """One simulated load, reduced to what the verdicts need."""

    scale: float  # the offered load relative to the scenario's own
    rate_per_s: float
    arrived: int
    rejected_share: float
    backlog_share: float  # still waiting to start at the last arrival (see the module docstring)
    figures: dict[str, dict[str, float | None]]  # end -> target name -> ms
    has_band: bool

    def misses(self, scenario: Scenario, end: str) -> dict[str, float]:
        """What this load misses at one end of the band, each with how far (figure / limit);
        the target names lose their unit (``ttft_p95``), rejections are ``rejections``."""
        misses = {name.removesuffix("_ms"): ratio for name, ratio
                  in slo_misses(scenario.slo, self.figures[end], self.rejected_share).items()}
        if self.backlog_share > MAX_BACKLOG_SHARE:
            misses["backlog"] = self.backlog_share / MAX_BACKLOG_SHARE
        return misses

    def holds(self, scenario: Scenario, end: str) -> bool:
        return not self.misses(scenario, end)

    def deciding(self, scenario: Scenario, end: str, misses: dict[str, float]) -> str:
        """What decided this load's verdict at ``end``: ``rejections`` or ``backlog`` when the
        worst miss is one of those, else the SLO target (``ttft_p95_ms``...) missed worst or,
        when all hold, the one closest to its limit (a target with no figure, because no
        request completed, counts as the farthest over)."""
        worst = max(misses, key=misses.get, default=None)
        if worst in ("rejections", "backlog"):
            return worst
        figures = self.figures[end]
        targets = {name: getattr(scenario.slo, name) for name, _, _ in SLO_FIGURES
                   if getattr(scenario.slo, name) is not None}
        return max(targets, key=lambda n: (figures[n] if figures[n] is not None
                                           else float("inf")) / targets[n])

    def row(self, scenario: Scenario) -> dict:
        """A JSON-ready record: the rate, the verdict, and the simulated figures."""
        out = {"rate_per_s": self.rate_per_s, "holds": self.holds(scenario, PREDICTED),
               **self.figures[PREDICTED], "rejected_share": self.rejected_share,
               "backlog_share": self.backlog_share, "requests": self.arrived}
        if self.has_band:
            out |= {"holds_pessimistic": self.holds(scenario, PESSIMISTIC),
                    "holds_optimistic": self.holds(scenario, OPTIMISTIC)}
        return out


@dataclass(frozen=True)
class Capacity:
    """The answer: ``max_rate_per_s`` None when even the lowest load tried misses the SLO."""

    scenario: Scenario
    max_rate_per_s: float | None
    band_low: float | None
    band_high: float | None
    band_basis: str
    limited_by: str
    rate_unit: str
    message: str
    checked: list[Check] = field(default_factory=list)

    @property
    def offered_rate_per_s(self) -> float | None:
        """The scenario's own rate (the load at scale 1)."""
        return next((c.rate_per_s for c in self.checked if c.scale == 1.0), None)

    @property
    def headroom(self) -> float | None:
        """How far above the scenario's own rate the highest sustainable one lies, as a share
        (0.25: 25 % more load would still hold; negative: the scenario's load does not)."""
        offered = self.offered_rate_per_s
        if self.max_rate_per_s is None or not offered:
            return None
        return self.max_rate_per_s / offered - 1

    def to_json(self) -> dict:
        return {
            "scenario": self.scenario.name,
            "max_rate_per_s": self.max_rate_per_s,
            "offered_rate_per_s": self.offered_rate_per_s,
            "headroom": self.headroom,
            "rate_unit": self.rate_unit,
            "band": ({"low": self.band_low, "high": self.band_high}
                     if self.checked and self.checked[0].has_band else None),
            "band_basis": self.band_basis,
            "slo": self.scenario.slo.model_dump(exclude_none=True),
            "limited_by": self.limited_by,
            "message": self.message,
            "simulations": len(self.checked),
            "checked": [c.row(self.scenario) for c in sorted(self.checked, key=lambda c: c.scale)],
        }


def check_capacity_scenario(scenario: Scenario) -> None:
    """Refuse a scenario with nothing to judge a load by, or whose load has no rate to scale."""
    slo = scenario.slo
    if all(getattr(slo, name) is None for name, _, _ in SLO_FIGURES):
        raise UserError(
            "capacity needs at least one SLO in the scenario to judge a load by: add e.g. "
            "slo: {ttft_p95_ms: 500, tpot_p95_ms: 50} (e2e_p99_ms is optional)")
    process = scenario.workload.process
    if scenario.workload.trace is None and process == "closed_loop":
        raise UserError(
            "capacity scales an arrival rate, but a closed-loop workload has none: each of its "
            "concurrency users sends the next request when a reply ends, so the load follows the "
            "server; use arrivals: {process: poisson, rate_per_s: ...} with duration_s")
    if scenario.workload.trace is None and process == "all_at_once":
        raise UserError(
            "capacity scales an arrival rate, but all_at_once sends every request at time 0, "
            "which has none; use arrivals: {process: poisson, rate_per_s: ...} with duration_s")


def find_capacity(scenario: Scenario,
                  progress: Callable[[Check, str], None] | None = None) -> Capacity:
    """The highest rate that holds the SLO at the predicted figures, and at both band ends."""
    check_capacity_scenario(scenario)
    runs = _Runs(scenario, progress)
    _search(runs, PREDICTED)
    has_band = runs.checks[1.0].has_band
    if has_band:
        _search(runs, PESSIMISTIC)
        _search(runs, OPTIMISTIC)
    # every answer from every run known: a later run can only narrow (or make more careful)
    # what an earlier search found, and the ends keep their order, low <= predicted <= high
    held, failed = _bounds(runs, PREDICTED)
    low = _bounds(runs, PESSIMISTIC)[0] if has_band else None
    high = _bounds(runs, OPTIMISTIC)[0] if has_band else None
    checks = list(runs.checks.values())
    return Capacity(
        scenario=scenario,
        max_rate_per_s=runs.rate(held) if held is not None else None,
        band_low=runs.rate(low) if low is not None else None,
        band_high=runs.rate(high) if high is not None else None,
        band_basis=runs.band_basis,
        limited_by=_limited_by(runs, failed),
        rate_unit=runs.unit,
        message=_message(runs, held, failed),
        checked=checks,
    )


class _Runs:
    """The simulations so far, one per load scale, and what the scale-1 run measured."""

    def __init__(self, scenario: Scenario, progress: Callable[[Check, str], None] | None):
        self.scenario, self.progress = scenario, progress
        self.checks: dict[float, Check] = {}
        self.base_rate_per_s, self.base_requests = _stated_rate(scenario), 0
        self.band_basis = ""
        self.unit = ("conversations/s" if scenario.workload.sessions is not None
                     else "requests/s")

    def rate(self, scale: float) -> float:
        return self.base_rate_per_s * scale

    def run(self, scale: float, end: str) -> Check:
        if scale not in self.checks:
            self.checks[scale] = self._simulate(scale)
            if self.progress is not None:
                self.progress(self.checks[scale], end)
        return self.checks[scale]

    def _simulate(self, scale: float) -> Check:
        scenario = (self.scenario if scale == 1.0 else
                    scaled_scenario(self.scenario, scale, self.base_requests))
        outcome = run_scenario(scenario)
        summary = outcome.summary
        arrived = summary["requests"]["arrived"]
        if scale == 1.0:  # everything is measured against the scenario's own load
            self.base_requests = arrived
            self.band_basis = summary["prediction"]["band_basis"]
            if self.base_rate_per_s is None:
                self.base_rate_per_s = _measured_rate(outcome.result.records["arrival_s"])
        has_band = summary["prediction"]["band"] is not None
        ends = (PREDICTED, PESSIMISTIC, OPTIMISTIC) if has_band else (PREDICTED,)
        return Check(scale, self.rate(scale), arrived,
                     rejected_share(summary["requests"]),
                     summary["saturation"]["backlog_share"],
                     {end: slo_figures(summary, end) for end in ends}, has_band)


def _search(runs: _Runs, end: str) -> tuple[float | None, float | None]:
    """Bracket by doubling (or halving) from the loads known so far, then bisect; returns the
    highest scale that held below the lowest that failed, and that lowest failure."""
    spent = len(runs.checks)

    def budget_left() -> bool:
        return len(runs.checks) - spent < MAX_SIMULATIONS

    if 1.0 not in runs.checks:
        runs.run(1.0, end)
    held, failed = _bounds(runs, end)
    while failed is None and held < MAX_SCALE and budget_left():
        runs.run(min(2 * held, MAX_SCALE), end)
        held, failed = _bounds(runs, end)
    while held is None and failed > MIN_SCALE and budget_left():
        runs.run(max(failed / 2, MIN_SCALE), end)
        held, failed = _bounds(runs, end)
    while (held is not None and failed is not None and failed - held > PRECISION * held
           and budget_left()):
        runs.run((held + failed) / 2, end)
        held, failed = _bounds(runs, end)
    return held, failed


def _bounds(runs: _Runs, end: str) -> tuple[float | None, float | None]:
    """(highest scale that held below the lowest that failed, lowest failure). Saturation is
    close to monotone, but where a lower load failed after a higher one held, the lower
    failure counts: the answer stays on the careful side."""
    failures = [s for s, c in runs.checks.items() if not c.holds(runs.scenario, end)]
    failed = min(failures, default=None)
    holds = [s for s, c in runs.checks.items() if c.holds(runs.scenario, end)
             and (failed is None or s < failed)]
    return max(holds, default=None), failed


def scaled_scenario(scenario: Scenario, scale: float, base_requests: int) -> Scenario:
    """The scenario with its offered load times ``scale`` (see the module's docstring for how
    the request count stays bounded); ``base_requests`` is what its own load offered."""
    data = scenario.model_dump(mode="json", exclude_none=True)
    workload = data["workload"]
    stretch = max(1.0, 1.0 / scale)  # below the scenario's rate, the span grows
    if "trace" in workload:
        workload["trace"]["time_scale"] = workload["trace"].get("time_scale", 1.0) / scale
        return parse_scenario(data, where=f"{scenario.name} at {scale:g}x its load")
    if "stages" in workload:
        for stage in workload["stages"]:
            stage["rate_per_s"] *= scale
            stage["duration_s"] *= stretch
    else:
        workload["arrivals"]["rate_per_s"] *= scale
        if "duration_s" in workload:
            workload["duration_s"] *= stretch
    own = workload.get("num_requests")
    if own is None and "duration_s" not in workload and "stages" not in workload:
        own = base_requests  # sized by its shared prefix's prompts
    if own is not None:  # a count: scaled with the rate, so the span stays the scenario's
        workload["num_requests"] = min(max(round(own * scale), own), max(own, MAX_REQUESTS))
    elif scale > 1:  # a duration: it bounds the count, and so does the cap
        workload["num_requests"] = max(base_requests, MAX_REQUESTS)
    return parse_scenario(data, where=f"{scenario.name} at {scale:g}x its load")


def _stated_rate(scenario: Scenario) -> float | None:
    """The scenario's own rate where its file states one: the arrival rate, or the busiest
    stage's (stages scale together); None for a trace, whose rate is measured."""
    spec = scenario.workload
    if spec.trace is not None:
        return None
    if spec.stages is not None:
        return max(stage.rate_per_s for stage in spec.stages)
    return spec.arrivals.rate_per_s


def _measured_rate(arrivals_s) -> float:
    """A trace's own rate: requests per second between its first and last arrival."""
    if len(arrivals_s) < 2 or float(arrivals_s.max() - arrivals_s.min()) <= 0:
        raise ScenarioError(
            "workload.trace: fewer than two requests at distinct times, so the trace has no "
            "rate to scale; widen its window or give a longer trace")
    return (len(arrivals_s) - 1) / float(arrivals_s.max() - arrivals_s.min())


def _limited_by(runs: _Runs, failed: float | None) -> str:
    """What the lowest failing load missed by the most; search_limit when none failed."""
    if failed is None:
        return "search_limit"
    misses = runs.checks[failed].misses(runs.scenario, PREDICTED)
    return max(misses, key=misses.get)


def _message(runs: _Runs, held: float | None, failed: float | None) -> str:
    if held is None:
        lowest = runs.checks[failed]
        reason = _limited_by(runs, failed)
        if reason == "rejections":
            why = (f"{100 * lowest.rejected_share:.1f} % of the requests are rejected (prompts "
                   "longer than the context this configuration can hold), at any rate")
        elif reason == "backlog":
            why = "the fleet does not keep up even with this trickle of requests"
        else:
            name = reason + "_ms"
            value = lowest.figures[PREDICTED][name]
            shown = "no figure (no request completed)" if value is None else f"{value:,.0f} ms"
            why = (f"{_LABELS[reason]} is {shown} against a target of "
                   f"{getattr(runs.scenario.slo, name):,.0f} ms: one request's own work (e.g. "
                   "a prefill longer than the TTFT target) exceeds it")
        return (f"the configuration cannot meet the SLO at any load: even at "
                f"{lowest.rate_per_s:.3g} {runs.unit} (1/{1 / lowest.scale:g} of the "
                f"scenario's rate) {why}")
    if failed is None:
        return (f"the SLO still holds at {MAX_SCALE:g} x the scenario's rate, the top of the "
                "search: the capacity is at least this")
    return ""
