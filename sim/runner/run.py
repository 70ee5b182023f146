"""From a scenario to results: one pool, or a fleet of pools behind rule-based routes."""

from __future__ import annotations

from collections.abc import Callable

from sim.config.deployment import resolve
from sim.config.scenario import Scenario
from sim.results.summary import summarize
from sim.runner.fleet_run import run_fleet
from sim.runner.pool_run import (
    RunOutcome, add_trace_summary, check_replayed, simulate_pool, workload_source,
)
from sim.workload.trace_workload import TraceReplay


def run_scenario(
    scenario: Scenario,
    progress: Callable[[int, int], None] | None = None,
) -> RunOutcome:
    if scenario.is_fleet:
        return run_fleet(scenario, progress)
    deployment = resolve(scenario)
    source = workload_source(scenario)
    result = simulate_pool(deployment, source, progress)
    check_replayed(source)
    summary = summarize(deployment, result)
    if isinstance(source, TraceReplay):
        add_trace_summary(summary, source)
    return RunOutcome(scenario, (deployment,), source, result, summary)
