"""The scenarios of a comparison, built from what the Compare page asks for.

A comparison is a baseline and a few changes. Every column runs under the same page settings
(how much traffic, how long, which SLO), so a difference in the figures comes from the change
and not from a different load. A change is either ``section.key=value`` overrides applied on
top of the baseline, or a scenario file of its own.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from sim.config.scenario import (Scenario, SloSpec, apply_overrides, parse_scenario,
                                 scenario_yaml)
from sim.engine.errors import ScenarioError
from sim.results.slo_verdict import rejected_share, slo_figures, slo_misses

DEFAULT_REJECTED_SHARE = SloSpec().max_rejected_share

DEFAULT_EXAMPLE = "azure-conv-hour-h100.yaml"  # one H100 under a realistic chat load
DEFAULT_DURATION_S = 120.0  # ~660 requests a seed at the default 5.5 req/s: p95s that hold still
# Common chat targets, used only when the baseline sets no SLO of its own.
FALLBACK_TTFT_P95_MS = 1000.0
FALLBACK_TPOT_P95_MS = 50.0

# (name, overrides): each tells a question a team actually asks about a chat deployment.
DEFAULT_CHANGES: list[tuple[str, str]] = [
    ("fp8 weights", "engine.weight_dtype=fp8"),
    ("A100 80GB", "hardware.gpu=a100-80gb"),
    ("AWQ on L4", "hardware.gpu=l4\nengine.weight_dtype=awq-int4"),
]


@dataclass(frozen=True)
class LoadKnob:
    """The one number that sets how much traffic a scenario sends.

    ``kind``: "rate" (arrivals.rate_per_s), "stages" (a multiplier on every stage's rate),
    "trace" (trace.rate_scale) or "concurrency" (closed-loop users).
    """

    kind: str
    label: str
    value: float
    integer: bool = False


@dataclass(frozen=True)
class SloTarget:
    """The service level every column is judged against; None means no limit."""

    ttft_p95_ms: float | None
    tpot_p95_ms: float | None
    e2e_p99_ms: float | None = None

    def describe(self) -> str:
        parts = [f"p95 TTFT ≤ {self.ttft_p95_ms:,.0f} ms" if self.ttft_p95_ms else "",
                 f"p95 TPOT ≤ {self.tpot_p95_ms:,.0f} ms" if self.tpot_p95_ms else "",
                 f"p99 E2E ≤ {self.e2e_p99_ms:,.0f} ms" if self.e2e_p99_ms else ""]
        return ", ".join(p for p in parts if p) or "no SLO"

    @property
    def is_set(self) -> bool:
        return any((self.ttft_p95_ms, self.tpot_p95_ms, self.e2e_p99_ms))


@dataclass(frozen=True)
class Settings:
    """Page settings put on every column: the load (when the column's kind of load matches the
    baseline's), the seconds of traffic simulated, and the SLO."""

    knob: LoadKnob | None
    duration_s: float
    slo: SloTarget


def load_knob(scenario: Scenario) -> LoadKnob | None:
    """How this scenario's load is turned up or down; None when arrivals follow no rate."""
    workload = scenario.workload
    if workload.trace is not None:
        return LoadKnob("trace", "Trace rate scale (× the trace's own rate)",
                        workload.trace.rate_scale)
    if workload.stages is not None:
        return LoadKnob("stages", "Load (× every stage's rate)", 1.0)
    if workload.process == "closed_loop":
        return LoadKnob("concurrency", "Concurrent users", float(workload.arrivals.concurrency),
                        integer=True)
    if workload.arrivals is not None and workload.arrivals.rate_per_s is not None:
        return LoadKnob("rate", "Arrival rate (requests/s)", workload.arrivals.rate_per_s)
    return None


def with_load(data: dict, kind: str, value: float) -> dict:
    """A copy of the document sending ``value`` of load, in the knob's terms."""
    out = copy.deepcopy(data)
    workload = out.setdefault("workload", {})
    if kind == "rate":
        workload.setdefault("arrivals", {})["rate_per_s"] = float(value)
    elif kind == "trace":
        workload["trace"]["rate_scale"] = float(value)
    elif kind == "stages":
        # Stages are read back from the document as given, so the base rates stay those of the
        # file; "value" multiplies them.
        workload["stages"] = [{**stage, "rate_per_s": stage["rate_per_s"] * value}
                              for stage in workload["stages"]]
    elif kind == "concurrency":
        workload["arrivals"]["concurrency"] = max(1, round(value))
    else:
        raise ValueError(f"unknown kind of load {kind!r}")
    return out


def nominal_rate(scenario: Scenario) -> float | None:
    """The mean arrival rate the scenario asks for (requests/s), when it says one."""
    workload = scenario.workload
    if workload.stages is not None:
        total = sum(stage.duration_s for stage in workload.stages)
        return sum(stage.rate_per_s * stage.duration_s for stage in workload.stages) / total
    if workload.trace is None and workload.arrivals is not None:
        return workload.arrivals.rate_per_s
    return None


def with_duration(data: dict, seconds: float) -> dict:
    """A copy simulating about ``seconds`` of traffic, so a column and each sweep point stay fast.

    Rate-driven load runs for the duration; stages keep their shape, squeezed into it; a
    trace is cut to a window of that many seconds of trace time; a fixed count of requests
    (all at once, closed loop) is left as it is.
    """
    out = copy.deepcopy(data)
    workload = out.get("workload")
    if not isinstance(workload, dict):
        return out
    if isinstance(workload.get("trace"), dict):
        trace = workload["trace"]
        start = float(trace.get("start_s") or 0.0)
        end = trace.get("end_s")
        trace["end_s"] = start + seconds if end is None else min(float(end), start + seconds)
    elif isinstance(workload.get("stages"), list):
        total = sum(float(stage["duration_s"]) for stage in workload["stages"])
        workload["stages"] = [{**stage, "duration_s": float(stage["duration_s"]) * seconds / total}
                              for stage in workload["stages"]]
    elif (workload.get("arrivals") or {}).get("process") not in ("all_at_once", "closed_loop"):
        workload["duration_s"] = float(seconds)
        workload.pop("num_requests", None)  # the duration now sets the size
    return out


def with_slo(data: dict, slo: SloTarget) -> dict:
    out = copy.deepcopy(data)
    values = {"ttft_p95_ms": slo.ttft_p95_ms, "tpot_p95_ms": slo.tpot_p95_ms,
              "e2e_p99_ms": slo.e2e_p99_ms}
    out["slo"] = {key: float(value) for key, value in values.items() if value}
    return out


def sets_slo(scenario: Scenario) -> bool:
    slo = scenario.slo
    return any(v is not None for v in (slo.ttft_p95_ms, slo.tpot_p95_ms, slo.e2e_p99_ms))


def describe_load(knob: LoadKnob) -> str:
    """The load in a few words: "5.5 requests/s", "8 users", "trace rate × 2"."""
    words = {"rate": "{:g} requests/s", "concurrency": "{:g} users",
             "trace": "trace rate × {:g}", "stages": "stage rates × {:g}"}
    return words[knob.kind].format(knob.value)


def slo_of(scenario: Scenario) -> SloTarget:
    """The scenario's own SLO, or common chat targets when it sets none."""
    slo = scenario.slo
    if not sets_slo(scenario):
        return SloTarget(FALLBACK_TTFT_P95_MS, FALLBACK_TPOT_P95_MS)
    return SloTarget(slo.ttft_p95_ms, slo.tpot_p95_ms, slo.e2e_p99_ms)


def meets_slo(summary: dict, slo: SloTarget) -> bool:
    """Whether a run holds ``slo`` by the one verdict of ``sim.results.slo_verdict``: every
    limit met by the run's percentiles (a run with no completed request meets nothing), and
    at most the scenario's share of requests rejected or unfinished."""
    spec = SloSpec(ttft_p95_ms=slo.ttft_p95_ms or None, tpot_p95_ms=slo.tpot_p95_ms or None,
                   e2e_p99_ms=slo.e2e_p99_ms or None,
                   max_rejected_share=(summary.get("slo") or {}).get("max_rejected_share",
                                                                     DEFAULT_REJECTED_SHARE))
    return not slo_misses(spec, slo_figures(summary), rejected_share(summary["requests"]))


def settle(data: dict, settings: Settings) -> dict:
    """Put the page settings on a scenario document (load only if its kind of load matches)."""
    out = with_slo(with_duration(data, settings.duration_s), settings.slo)
    knob = settings.knob
    if knob is not None:
        own = load_knob(parse_scenario(out))
        if own is not None and own.kind == knob.kind:
            out = with_load(out, knob.kind, knob.value)
    return out


def override_lines(text: str) -> list[str]:
    """The ``section.key=value`` lines of a change (blank lines and # comments skipped);
    raises ScenarioError naming the first line that is not of that form."""
    lines = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, _ = line.partition("=")
        parts = key.strip().split(".")
        if not sep or len(parts) < 2 or not all(part.strip() for part in parts):
            raise ScenarioError(
                f"line {number} {line!r} is not an override: write one section.key=value a "
                "line, e.g. engine.weight_dtype=fp8 or hardware.gpu=a100-80gb"
            )
        lines.append(line)
    return lines


def apply_change(base: dict, text: str) -> dict:
    """The baseline document with a change's overrides applied, checked to be a valid
    scenario; the error names the lines when the result is not."""
    lines = override_lines(text)
    try:
        data = apply_overrides(base, lines)
        parse_scenario(data, where="the changed scenario")
    except ScenarioError as exc:
        raise ScenarioError(f"{exc} (overrides: {'; '.join(lines) or 'none'})") from None
    return data


# Settings that hold only for the GPU they were written for.
GPU_BOUND = (("hardware", "price_usd_per_hour"), ("engine", "num_gpu_blocks"))


def kept_for_another_gpu(base: dict, changed: dict) -> list[str]:
    """Keys a change carries over from the baseline although it moves to another GPU: a
    pinned price or KV block count then describes the old card, not the new one."""
    def value(doc: dict, section: str, key: str):
        return (doc.get(section) or {}).get(key)

    if value(base, "hardware", "gpu") == value(changed, "hardware", "gpu"):
        return []
    return [f"{section}.{key}" for section, key in GPU_BOUND
            if value(base, section, key) is not None
            and value(changed, section, key) == value(base, section, key)]


def canonical_yaml(data: dict, name: str | None = None) -> str:
    """The full YAML of a document (every default written out), the exact text simulated and
    offered for download; ``name`` renames the scenario."""
    if name is not None:
        data = {**data, "name": name}
    return scenario_yaml(parse_scenario(data))
