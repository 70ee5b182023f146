"""A fleet of model pools behind a rule-based router: each pool simulated on its share.

The router's rules look only at requests (``sim.runner.route_table``), so the workload is split
first and every pool runs on its own share, with its own model, GPU tier, engine settings and
within-pool router. The pools' records and steps are then merged into one result (with a
``pool`` column) and summarised twice: for the whole fleet, and per pool."""

from __future__ import annotations

from collections.abc import Callable, Iterator
import numpy as np
import pandas as pd

from sim.config.deployment import Deployment, resolve
from sim.config.scenario import Scenario
from sim.engine.errors import ScenarioError
from sim.fleet.record import RequestRecord, records_frame
from sim.fleet.simulation import SimulationResult
from sim.results.fleet_summary import fleet_summary
from sim.runner.pool_run import (
    RunOutcome, add_trace_summary, check_replayed, simulate_pool, workload_source,
)
from sim.runner.route_table import UNROUTED, RouteTable
from sim.workload.session_workload import SessionWorkload
from sim.workload.trace_workload import TraceReplay
from sim.workload.workload import Workload


NO_ROUTE = "no_matching_route"

Progress = Callable[[int, int], None] | None


def run_fleet(scenario: Scenario, progress: Progress = None) -> RunOutcome:
    """Simulate every pool of ``scenario.fleet`` on the requests its routes send it."""
    assert scenario.fleet is not None
    pools = scenario.pool_scenarios()
    deployments = tuple(_resolve_pool(name, pool) for name, pool in pools)
    names = [name for name, _ in pools]
    table = RouteTable(scenario.fleet.routes, names, scenario.seed)
    source = workload_source(scenario)
    if isinstance(source, Workload) and source.concurrency:
        raise ScenarioError(
            "fleet: a closed-loop workload ties each client to the pool that answers it, which "
            "rule-based routing cannot split; use an open-loop arrival process (e.g. poisson)"
        )
    if isinstance(source, SessionWorkload):
        raise ScenarioError(
            "fleet: a conversation's turns wait on the pool that answers them, which rule-based "
            "routing cannot split; simulate workload.sessions on one pool (remove fleet)"
        )
    unrouted: list[RequestRecord] = []
    results = []
    for index, (name, deployment) in enumerate(zip(names, deployments)):
        share = _pool_share(source, table, index, unrouted if index == 0 else None)
        results.append((name, simulate_pool(deployment, share, _pool_progress(progress, index,
                                                                               len(names)))))
    check_replayed(source)
    merged = _merge(results, unrouted)
    summary = fleet_summary(scenario, deployments, results, merged)
    if isinstance(source, TraceReplay):
        add_trace_summary(summary, source)
    return RunOutcome(scenario, deployments, source, merged, summary)


def _resolve_pool(name: str, pool: Scenario) -> Deployment:
    try:
        return resolve(pool)
    except ScenarioError as exc:
        raise ScenarioError(f"fleet pool {name!r}: {exc}") from None


def _pool_share(source: Workload | TraceReplay, table: RouteTable, index: int,
                unrouted: list[RequestRecord] | None) -> Workload | Iterator[Workload]:
    """The requests routed to pool ``index``; the first pool's pass also records the requests
    no rule matched (as rejected), so each is counted once."""
    if isinstance(source, Workload):
        return _take(source, table, index, 0, unrouted)
    return (_take(chunk, table, index, first, unrouted) for chunk, first in _numbered(source))


def _numbered(chunks: TraceReplay) -> Iterator[tuple[Workload, int]]:
    first = 0
    for chunk in chunks:
        yield chunk, first
        first += len(chunk)


def _take(chunk: Workload, table: RouteTable, index: int, first_row: int,
          unrouted: list[RequestRecord] | None) -> Workload:
    assigned = table.assign(chunk, first_row)
    if unrouted is not None:
        unrouted.extend(_unrouted_records(chunk, np.flatnonzero(assigned == UNROUTED), first_row))
    return chunk.take(np.flatnonzero(assigned == index), first_row)


def _unrouted_records(chunk: Workload, rows: np.ndarray, first_row: int) -> list[RequestRecord]:
    nan = float("nan")
    ids = chunk.trace_ids if chunk.trace_ids is not None else None
    return [
        RequestRecord(
            first_row + int(i), -1, "rejected", float(chunk.arrival_s[i]), nan, nan, nan,
            int(chunk.input_tokens[i]), 0, 0, 0,
            str(ids[i]) if ids is not None else str(first_row + int(i)),
            str(chunk.endpoints[i]) if chunk.endpoints is not None else None,
        )
        for i in rows
    ]


def _pool_progress(progress: Progress, index: int, pools: int) -> Progress:
    """Progress of one pool's pass, reported as the share of pools done so far."""
    if progress is None:
        return None

    def update(done: int, total: int) -> None:
        if total:
            progress(int(1000 * (index + done / total) / pools), 1000)

    return update


def _merge(results: list[tuple[str, SimulationResult]],
           unrouted: list[RequestRecord]) -> SimulationResult:
    """One result for the fleet: records and steps of every pool, with a ``pool`` column."""
    records = [r.records.assign(pool=name) for name, r in results]
    if unrouted:
        records.append(records_frame(unrouted).assign(pool=""))
    steps = [r.steps.assign(pool=name) for name, r in results]
    rejected: dict[str, int] = {}
    for _, r in results:
        for reason, count in r.rejected_reasons.items():
            rejected[reason] = rejected.get(reason, 0) + count
    if unrouted:
        rejected[NO_ROUTE] = len(unrouted)
    parts = [r for _, r in results]
    merged_records = pd.concat(records, ignore_index=True).sort_values(
        "arrival_s", kind="stable", ignore_index=True)
    return SimulationResult(
        records=merged_records,
        steps=pd.concat(steps, ignore_index=True),
        itl_pieces=np.concatenate([r.itl_pieces for r in parts]),
        num_gpu_blocks=sum(r.num_gpu_blocks * r.replicas for r in parts),
        replicas=sum(r.replicas for r in parts),
        preemptions=sum(r.preemptions for r in parts),
        lookup_tokens=sum(r.lookup_tokens for r in parts),
        hit_tokens=sum(r.hit_tokens for r in parts),
        cpu_hit_tokens=sum(r.cpu_hit_tokens for r in parts),
        truncated_outputs=sum(r.truncated_outputs for r in parts),
        capped_outputs=sum(r.capped_outputs for r in parts),
        output_tokens_saved=sum(r.output_tokens_saved for r in parts),
        rejected_reasons=rejected,
        gateway_hold_s=np.concatenate([r.gateway_hold_s for r in parts]),
        gateway_groups=sum(r.gateway_groups for r in parts),
        wall_s=sum(r.wall_s for r in parts),
    )
