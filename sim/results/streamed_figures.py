"""A streamed run's summary figures, from the totals it kept (``StreamedTotals``) instead of
its record and step tables: the same keys as ``sim.results.summary`` computes from the tables,
with counts, sums and means equal and percentiles within 0.05 %
(``sim.engine.log_histogram``)."""

from __future__ import annotations

from sim.config.scenario import Scenario
from sim.engine.kv_state import shares_of
from sim.engine.log_histogram import LogHistogram
from sim.fleet.record_digest import LatencyDigest, RecordDigest
from sim.fleet.simulation import SimulationResult, StreamedTotals
from sim.results.metrics import QUANTILES
from sim.results.request_counts import request_counts
from sim.results.slo_verdict import slo_figures, slo_verdict

PERCENTILE_NOTE = ("percentiles of a streamed run come from histograms of its records "
                   "(within 0.05 %); the records themselves are in the streamed file")


def histogram_ms(histogram: LogHistogram, offset_s: float = 0.0,
                 weighted: bool = False) -> dict[str, float | None]:
    """Mean and percentiles in milliseconds of a histogram's values each shifted by
    ``offset_s``: as ``metrics.distribution_ms`` gives for a list of samples, or, ``weighted``,
    as ``metrics.weighted_distribution_ms`` (lower percentiles)."""
    mean = histogram.mean()
    if mean is None:
        return {"mean": None, **{k: None for k in QUANTILES}}
    return {"mean": (mean + offset_s) * 1e3} | {
        k: (histogram.quantile(q / 100, linear=not weighted) + offset_s) * 1e3
        for k, q in QUANTILES.items()}


def streamed_request_figures(scenario: Scenario, result: SimulationResult,
                             streamed: StreamedTotals, duration: float) -> dict:
    """``summary.request_figures`` of a streamed run."""
    digest = streamed.records
    every = digest.all
    slo = scenario.slo
    ttft, tpot, e2e = histogram_ms(every.ttft), histogram_ms(every.tpot), histogram_ms(every.e2e)
    figures = {
        "requests": request_counts(result, every.arrived, every.completed, every.rejected),
        "duration_s": duration,
        "ttft_ms": ttft,
        "tpot_ms": tpot,
        "itl_ms": histogram_ms(streamed.steps.itl, streamed.itl_offset_s, weighted=True),
        "e2e_ms": e2e,
        "queue_ms": histogram_ms(every.queue),
        "by_endpoint": _by_endpoint(digest),
        "throughput": _throughput(every, duration),
        "goodput": _goodput(digest, slo.ttft_p95_ms, slo.tpot_p95_ms, duration),
    }
    return figures | {"slo": slo_verdict(slo, slo_figures(figures), figures["requests"]),
                      "percentiles": PERCENTILE_NOTE}


def streamed_step_figures(result: SimulationResult, streamed: StreamedTotals,
                          duration: float) -> dict:
    """The step-table figures of ``summary.summarize`` of a streamed run."""
    steps = streamed.steps
    capacity = result.replicas * duration
    return {
        "kv_mean_utilization": (steps.kv_block_seconds / (result.num_gpu_blocks * capacity)
                                if capacity > 0 and steps.rows else 0.0),
        "waste": shares_of(steps.waste_slot_seconds),
        "batch_size": steps.batch_size_distribution(QUANTILES),
        "replica_busy_fraction": steps.busy_s / capacity if capacity > 0 else 0.0,
        "hit_rate_by_turn": ({str(turn): cached / prompt for turn, (cached, prompt)
                              in sorted(streamed.records.turn_tokens.items())}
                             or None),
    }


def _throughput(every: LatencyDigest, duration: float) -> dict[str, float]:
    if duration <= 0:
        return {"requests_per_s": 0.0, "input_tokens_per_s": 0.0, "output_tokens_per_s": 0.0}
    return {"requests_per_s": every.completed / duration,
            "input_tokens_per_s": every.prompt_tokens / duration,
            "output_tokens_per_s": every.output_tokens / duration}


def _goodput(digest: RecordDigest, ttft_ms: float | None, tpot_ms: float | None,
             duration: float) -> dict[str, float | None]:
    if ttft_ms is None and tpot_ms is None:
        return {"requests_per_s": None, "fraction_meeting_slo": None}
    count, arrived = digest.meeting_slo, digest.all.arrived
    return {"requests_per_s": count / duration if duration > 0 else 0.0,
            "fraction_meeting_slo": count / arrived if arrived else None}


def _by_endpoint(digest: RecordDigest) -> dict[str, dict] | None:
    if not digest.any_endpoint or digest.endpoints is None:
        return None
    return {name: {"arrived": d.arrived, "completed": d.completed,
                   "output_tokens": d.output_tokens, "ttft_ms": histogram_ms(d.ttft),
                   "tpot_ms": histogram_ms(d.tpot), "e2e_ms": histogram_ms(d.e2e)}
            for name, d in sorted(digest.endpoints.items())}
