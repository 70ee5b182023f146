"""From a scenario to results: one pool, or a fleet of pools behind rule-based routes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sim.config.deployment import resolve
from sim.config.scenario import Scenario
from sim.engine.errors import ScenarioError
from sim.fleet.record_digest import RecordDigest
from sim.fleet.record_stream import RecordStream
from sim.results.summary import summarize
from sim.runner.fleet_run import run_fleet
from sim.runner.pool_run import (
    RunOutcome, add_trace_summary, check_replayed, simulate_pool, workload_source,
)
from sim.workload.trace_workload import TraceReplay


def run_scenario(
    scenario: Scenario,
    progress: Callable[[int, int], None] | None = None,
    stream_to: Path | None = None,
) -> RunOutcome:
    """Simulate ``scenario`` and summarise it. With ``stream_to`` (a Parquet file) the
    records are written there as the run goes and not kept, nor its steps: memory stays
    bounded however long the run (``sim.fleet.simulation.StreamedTotals``)."""
    if scenario.is_fleet:
        if stream_to is not None:
            raise ScenarioError("streaming the records covers one pool; a fleet scenario's "
                                "records are kept in memory (run it without streaming)")
        return run_fleet(scenario, progress)
    deployment = resolve(scenario)
    source = workload_source(scenario)
    stream = None
    if stream_to is not None:
        slo = scenario.slo
        stream = RecordStream(stream_to, RecordDigest(slo.ttft_p95_ms, slo.tpot_p95_ms))
    try:
        result = simulate_pool(deployment, source, progress, stream)
    finally:
        if stream is not None:
            stream.close()  # (a failed run leaves a readable file of what it wrote)
    check_replayed(source)
    summary = summarize(deployment, result)
    if isinstance(source, TraceReplay):
        add_trace_summary(summary, source)
    return RunOutcome(scenario, (deployment,), source, result, summary)
