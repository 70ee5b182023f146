"""Replaying a trace on a fleet: the scenario the Traces page runs and the figures it shows.

The replay is a base scenario (its model, hardware, engine and SLO) whose workload is replaced
by the trace, with its transforms and a cap on the number of requests. Everything is plain
YAML text in and out, so the result is cached on, and downloadable as, exactly what ran.
"""

from __future__ import annotations

import yaml

from sim.engine.errors import ScenarioError

from app.examples import example_names, example_text
from app.run_figures import format_value
from app.simulation import checked_document

DEFAULT_BASE = "llama3-8b-h100-shared-prefix.yaml"
DEFAULT_MAX_REQUESTS = 2000  # a replay in about a second on one core
DEFAULT_WINDOW_S = 600.0  # the first ten minutes


def base_scenarios() -> dict[str, str]:
    """Example scenarios a trace can replace the workload of: one pool, no trace of their own
    (file name -> YAML text), the default first."""
    found = {}
    for name in example_names(first=DEFAULT_BASE):
        text = example_text(name)
        data = yaml.safe_load(text)
        one_pool = isinstance(data, dict) and "fleet" not in data
        if one_pool and "trace" not in (data.get("workload") or {}):
            found[name] = text
    return found


def trace_spec(path: str, format: str | None = None, on_bad_rows: str = "error",
               columns: dict[str, str] | None = None, start_s: float = 0.0,
               end_s: float | None = None, time_scale: float = 1.0, rate_scale: float = 1.0,
               sample: float = 1.0) -> dict:
    """The scenario's ``workload.trace`` section, leaving out what does nothing."""
    spec: dict = {"path": path}
    if format:
        spec["format"] = format
    if on_bad_rows != "error":
        spec["on_bad_rows"] = on_bad_rows
    if columns:
        spec["columns"] = dict(columns)
    if start_s > 0:
        spec["start_s"] = float(start_s)
    if end_s is not None and end_s > 0:
        spec["end_s"] = float(end_s)
    for key, value in (("time_scale", time_scale), ("rate_scale", rate_scale),
                       ("sample", sample)):
        if value != 1.0:
            spec[key] = float(value)
    return spec


def pool_hardware(base_text: str) -> tuple[str, int] | None:
    """The GPU and replicas of a one-pool scenario; None for a fleet (set per pool)."""
    data = checked_document(base_text, where="the base scenario")
    hardware = data.get("hardware")
    if "fleet" in data or not isinstance(hardware, dict) or "gpu" not in hardware:
        return None
    return str(hardware["gpu"]), int(hardware.get("replicas", 1))


def replay_yaml(base_text: str, trace: dict, num_requests: int, *, gpu: str | None = None,
                replicas: int | None = None, name: str | None = None) -> str:
    """The base scenario with its workload replaced by the trace (and the fleet overrides).
    Raises ScenarioError when the base is not a scenario document."""
    data = checked_document(base_text, where="the base scenario")
    data["workload"] = {"trace": dict(trace), "num_requests": int(num_requests)}
    if gpu is not None or replicas is not None:
        if not isinstance(data.get("hardware"), dict):
            raise ScenarioError("GPU and replicas can be changed only in a one-pool scenario "
                                "(model + hardware); set them per pool in a fleet")
        if gpu is not None:
            data["hardware"]["gpu"] = gpu
        if replicas is not None:
            data["hardware"]["replicas"] = int(replicas)
    if name:
        data["name"] = name
    return yaml.safe_dump(data, sort_keys=False)


def slo_verdict(slo: dict) -> str:
    """The summary's verdict (``sim.results.slo_verdict``) in a word or a few: 'met',
    'missed: <each miss>', or 'no SLO' when the scenario sets no target."""
    if slo.get("met") is None:
        return "no SLO"
    return "met" if slo["met"] else "missed: " + "; ".join(slo["reasons"])


def replay_figures(summary: dict) -> dict[str, str]:
    """The headline figures of a replay's summary, formatted (label -> text)."""
    requests, cost, thr = summary["requests"], summary["cost"], summary["throughput"]
    trace = summary.get("trace") or {}
    rows = trace.get("rows") or {}
    return {
        "p50 TTFT": format_value(summary["ttft_ms"]["p50"], "ms"),
        "p95 TTFT": format_value(summary["ttft_ms"]["p95"], "ms"),
        "p95 TPOT": format_value(summary["tpot_ms"]["p95"], "ms"),
        "p95 E2E": format_value(summary["e2e_ms"]["p95"], "ms"),
        "throughput": f"{thr['requests_per_s']:,.1f} req/s",
        "output tokens/s": f"{thr['output_tokens_per_s']:,.0f}",
        "$ per 1M tokens": _usd(cost.get("usd_per_million_tokens"), 3),
        "monthly bill": _usd(cost.get("monthly_usd"), 0),
        "SLO": slo_verdict(summary["slo"]),
        "requests replayed": f"{trace.get('requests_replayed', requests['arrived']):,}",
        "rejected": f"{requests['rejected']:,}",
        "bad rows dropped": f"{rows.get('rows_dropped', 0):,}",
    }


def _usd(value: float | None, digits: int) -> str:
    return "–" if value is None else f"${value:,.{digits}f}"
