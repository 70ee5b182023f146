"""One simulation behind a page: a scenario's YAML text in, its figures and chart data out.

Results are cached on the YAML text (a plain string, so hashable and exactly what the user can
download). The cache is a memo of a deterministic function: the same scenario always gives the
same result, so it holds nothing one user could learn from another's session that they did not
already type in. Uploaded files reach a scenario only under a path unique to their content and
session (see ``app.trace_upload``).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import streamlit as st
import yaml

from app import worker
from app.run_memo import RunMemo
from app.worker import run_in_worker
from sim.config.scenario import Scenario, parse_scenario, scenario_yaml
from sim.engine.errors import ScenarioError
from sim.runner.run import run_scenario

TIMELINE_BUCKETS = 120  # points on the over-time charts; enough to see bursts, light to draw
CDF_POINTS = 200
# The most requests one run of the app may simulate (a server answers many users; a run of
# millions belongs to the CLI): SERVESIM_APP_MAX_REQUESTS overrides it.
MAX_REQUESTS = 1_000_000
# A rough cost per simulated request on a 2-core server (docs/performance.md: 55-100 us per
# request from one replica to 64), for the time estimate shown before a run.
SECONDS_PER_REQUEST = 80e-6


@dataclass(frozen=True)
class AppRun:
    """What a page shows of one run.

    ``records``: one row per request (arrival_s, status, ttft_ms, tpot_ms, e2e_ms, queue_ms,
    prompt_tokens, output_tokens, cached_tokens, preemptions, endpoint, and pool for fleets).
    ``timeline``: one row per time bucket (time_s, arrivals_per_s, ttft_p50_ms, ttft_p95_ms,
    e2e_p50_ms, e2e_p95_ms, batch_size, kv_used_share, running_replicas).
    ``cdf``: latency quantiles (metric, latency_ms, share) for the CDF charts.
    """

    scenario_yaml: str
    summary: dict
    records: pd.DataFrame
    timeline: pd.DataFrame
    cdf: pd.DataFrame
    wall_s: float


def scenario_from_yaml(text: str, where: str = "the scenario") -> Scenario:
    """Parse scenario YAML typed or uploaded in the app; raises ScenarioError with the fix."""
    return parse_scenario(_yaml(text, where), where=where)


def checked_document(text: str, where: str = "the scenario") -> dict:
    """The mapping a scenario's YAML holds, for a page to edit, once it is known to be a valid
    scenario (ScenarioError naming the problem otherwise)."""
    data = _yaml(text, where)
    parse_scenario(data, where=where)
    return data


def _yaml(text: str, where: str):
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{where} is not valid YAML: {exc}") from None


def simulate_yaml(text: str) -> AppRun:
    """Run the scenario written in ``text`` in a worker process (``app.worker``), or answer
    from the memo of earlier runs. Raises ScenarioError; refuses a run above the size cap
    before starting a worker."""
    memo = _memo()
    known = memo.get(text)
    if known is not None:
        return known
    check_run_size(scenario_from_yaml(text))  # a bad or runaway scenario fails here, at once
    run = run_in_worker(simulate_text, text, _Waiting().heartbeat)
    memo.put(text, run)
    return run


def simulate_text(text: str) -> AppRun:
    """What a worker runs: ``simulate`` of the scenario written in ``text``."""
    return simulate(scenario_from_yaml(text))


@st.cache_resource(show_spinner=False)
def _memo() -> RunMemo:
    return RunMemo()


class _Waiting:
    """Says on the page that a run waits for a free simulation slot, while it does; every
    heartbeat touches the session state, where Streamlit stops a script whose user pressed
    Stop or started a newer run (the worker is then killed)."""

    def __init__(self) -> None:
        self.note = None

    def heartbeat(self, state: str) -> None:
        st.session_state["_servesim_worker"] = state
        if state == "waiting" and self.note is None:
            self.note = st.empty()
            self.note.info(f"Waiting for a free simulation slot: {worker.running()} of "
                           f"{worker.SLOTS} running on this server…", icon=":material/schedule:")
        elif state == "running" and self.note is not None:
            self.note.empty()


def max_requests() -> int:
    """The per-run cap: SERVESIM_APP_MAX_REQUESTS when it is a positive whole number."""
    text = os.environ.get("SERVESIM_APP_MAX_REQUESTS", "")
    return int(text) if text.isdigit() and int(text) > 0 else MAX_REQUESTS


def run_size(scenario: Scenario) -> tuple[float | None, float | None]:
    """(requests, seconds) a run of the scenario is expected to take, None where unknown
    before it runs (a trace without num_requests)."""
    requests = scenario.workload.expected_requests()
    return requests, None if requests is None else requests * SECONDS_PER_REQUEST


def size_text(scenario: Scenario) -> str:
    """"about 19,800 requests, ~2 s" for a spinner, or "" when the size is not known."""
    requests, seconds = run_size(scenario)
    if requests is None:
        return ""
    return f"about {requests:,.0f} requests, ~{max(seconds, 1):,.0f} s"


def check_run_size(scenario: Scenario) -> None:
    """Refuse, before any work, a run above the app's cap (ScenarioError saying the fix)."""
    requests, seconds = run_size(scenario)
    cap = max_requests()
    if requests is not None and requests > cap:
        workload = scenario.workload
        how = ""
        if workload.arrivals is not None and workload.arrivals.rate_per_s and workload.duration_s:
            how = (f" ({_plain(workload.arrivals.rate_per_s)} requests/s × "
                   f"{_plain(workload.duration_s)} s)")
        raise ScenarioError(
            f"this scenario offers about {requests:,.0f} requests{how}, more than the "
            f"{cap:,} one run of this app may simulate (it would take ~{seconds / 60:,.0f} "
            "minutes): lower the rate, shorten the window or set workload.num_requests; "
            "`servesim run` on your own machine has no such limit")


def _plain(value: float) -> str:
    """A number as people write it: 1,000,000 and 2.5, never 1e+06."""
    return f"{value:,.0f}" if value == int(value) else f"{value:,.4g}"


def simulate(scenario: Scenario) -> AppRun:
    """Run a scenario now, without the cache (refused above the app's size cap)."""
    check_run_size(scenario)
    start = time.perf_counter()
    outcome = run_scenario(scenario)
    result = outcome.result
    records = _records(result.records)
    blocks = result.num_gpu_blocks * result.replicas
    return AppRun(
        scenario_yaml=scenario_yaml(scenario),
        summary=outcome.summary,
        records=records,
        timeline=timeline(records, result.steps, blocks, outcome.summary["duration_s"]),
        cdf=latency_cdf(records),
        wall_s=time.perf_counter() - start,
    )


def _records(frame: pd.DataFrame) -> pd.DataFrame:
    keep = [c for c in ("rid", "arrival_s", "status", "endpoint", "pool", "prompt_tokens",
                        "output_tokens", "cached_tokens", "preemptions") if c in frame]
    out = frame[keep].copy()
    for name in ("ttft", "tpot", "e2e", "queue"):
        out[f"{name}_ms"] = frame[f"{name}_s"] * 1e3
    return out


def timeline(records: pd.DataFrame, steps: pd.DataFrame, total_blocks: int,
             duration_s: float) -> pd.DataFrame:
    """Per time bucket: arrivals, latency of the requests that arrived in it, the mean batch
    of the steps that started in it (weighted by step time) and the KV share in use."""
    end = max(duration_s, float(records["arrival_s"].max()) if len(records) else 0.0, 1e-9)
    width = end / TIMELINE_BUCKETS
    edges = np.arange(TIMELINE_BUCKETS + 1) * width
    out = pd.DataFrame({"time_s": edges[:-1] + width / 2})
    bucket = np.minimum((records["arrival_s"] / width).astype(int), TIMELINE_BUCKETS - 1)
    out["arrivals_per_s"] = np.bincount(bucket, minlength=TIMELINE_BUCKETS) / width
    done = records[records["status"] == "completed"]
    grouped = done.groupby(bucket[done.index])
    for name in ("ttft", "e2e"):
        out[f"{name}_p50_ms"] = grouped[f"{name}_ms"].quantile(0.5).reindex(out.index)
        out[f"{name}_p95_ms"] = grouped[f"{name}_ms"].quantile(0.95).reindex(out.index)
    out["batch_size"], out["kv_used_share"] = _step_series(steps, width, total_blocks)
    return out


def _step_series(steps: pd.DataFrame, width: float,
                 total_blocks: int) -> tuple[np.ndarray, np.ndarray]:
    """Per bucket: the mean sequences per step while replicas were stepping, and the share of
    all KV blocks in use. A row of the step log may stand for a long run of decode steps, so
    each row is spread over the buckets its time span covers."""
    if steps.empty:
        return np.full(TIMELINE_BUCKETS, np.nan), np.zeros(TIMELINE_BUCKETS)
    edges = np.arange(TIMELINE_BUCKETS + 1) * width
    start = steps["start_s"].to_numpy(dtype=np.float64)
    end = start + steps["duration_s"].to_numpy(dtype=np.float64)
    seqs = (steps["decode_seqs"] + steps["prefill_seqs"]).to_numpy(dtype=np.float64)
    used = ((steps["kv_used_start"] + steps["kv_used_end"]) / 2).to_numpy(dtype=np.float64)
    busy_s = np.diff(_integral_to(edges, start, end, np.ones_like(start)))
    seq_s = np.diff(_integral_to(edges, start, end, seqs))
    block_s = np.diff(_integral_to(edges, start, end, used))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_batch = np.where(busy_s > 0, seq_s / busy_s, np.nan)
    kv_share = block_s / (max(total_blocks, 1) * width)  # idle replicas hold no blocks here
    return mean_batch, np.clip(kv_share, 0.0, 1.0)


def _integral_to(points: np.ndarray, start: np.ndarray, end: np.ndarray,
                 level: np.ndarray) -> np.ndarray:
    """For each point t: the sum over rows of level * (time of [start, end) before t).

    Equals sum over rows with start < t of level * (t - start), less the same over rows with
    end < t of level * (t - end); sorted cumulative sums give it without a loop over rows.
    """
    def ramp(times: np.ndarray) -> np.ndarray:
        order = np.argsort(times)
        t, w = times[order], level[order]
        cum_w = np.concatenate([[0.0], np.cumsum(w)])
        cum_wt = np.concatenate([[0.0], np.cumsum(w * t)])
        n = np.searchsorted(t, points, side="left")
        return cum_w[n] * points - cum_wt[n]

    return ramp(start) - ramp(end)


def latency_cdf(records: pd.DataFrame) -> pd.DataFrame:
    """TTFT, TPOT and E2E quantiles at CDF_POINTS evenly spaced shares, long-form."""
    done = records[records["status"] == "completed"]
    shares = np.linspace(0, 1, CDF_POINTS)
    parts = []
    for metric in ("ttft", "tpot", "e2e"):
        values = done[f"{metric}_ms"].dropna().to_numpy()
        if len(values) == 0:
            continue
        parts.append(pd.DataFrame({"metric": metric.upper(),
                                   "latency_ms": np.quantile(values, shares), "share": shares}))
    if not parts:
        return pd.DataFrame(columns=["metric", "latency_ms", "share"])
    return pd.concat(parts, ignore_index=True)
