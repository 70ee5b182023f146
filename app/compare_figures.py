"""The key figures of a comparison: one row per figure, one column per scenario, each change
against the baseline with a verdict (better, worse, no change), plus the assumptions and sources
each column rests on.

Rows come from ``sim.results.comparison.compare`` where it has the figure, so the app and
``servesim compare`` agree; the few figures it lacks are read here the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import yaml

from sim.results.comparison import change_pct, compare, lookup

from app.compare_inputs import SloTarget, meets_slo
from app.prediction_note import (band_basis, band_range, coverage_text, prediction, range_text,
                                 trust_line, uncertainty_sentence)

NO_CHANGE_PCT = 0.05  # changes smaller than this (in %) are noise in the last digit


@dataclass(frozen=True)
class Column:
    """One scenario of a comparison: its name, the exact YAML it ran, its run summary, and the
    summaries of the same scenario on other seeds (its spread; the first is ``summary``)."""

    name: str
    scenario_yaml: str
    summary: dict
    seeds: tuple[dict, ...] = ()

    @property
    def runs(self) -> tuple[dict, ...]:
        return self.seeds or (self.summary,)


# The figures whose spread across seeds is shown: (label, summary metric, stat, unit).
SEED_FIGURES = (("p95 TTFT", "ttft_ms", "p95", "ms"), ("p95 TPOT", "tpot_ms", "p95", "ms"),
                ("$ per 1M tokens", "cost", "usd_per_million_tokens", "$"))


def seed_lines(columns: list[Column]) -> list[str]:
    """Per column: how many requests and seeds its figures rest on, and the spread of the key
    figures across the seeds (lowest to highest), so a difference smaller than that spread is
    read as noise."""
    lines = []
    for column in columns:
        runs = column.runs
        requests = (runs[0].get("requests") or {}).get("arrived", 0)
        text = f"{column.name}: {len(runs)} seed{'s' if len(runs) > 1 else ''} × {requests:,} requests"
        if len(runs) > 1:
            spreads = []
            for label, metric, stat, unit in SEED_FIGURES:
                values = [(run.get(metric) or {}).get(stat) for run in runs]
                values = [v for v in values if v is not None and v == v]
                if values:
                    spreads.append(f"{label} {format_value(min(values), unit)}–"
                                   f"{format_value(max(values), unit)}")
            text += "; across seeds " + ", ".join(spreads)
        lines.append(text)
    return lines


# (label, row of sim.results.comparison.compare to take, or a path into the summary, unit, better)
FIGURES: list[tuple[str, str | tuple[str, ...], str, str]] = [
    ("p50 TTFT", "TTFT p50", "ms", "lower"),
    ("p95 TTFT", "TTFT p95", "ms", "lower"),
    ("p95 TPOT", "TPOT p95", "ms", "lower"),
    ("p95 E2E", "E2E p95", "ms", "lower"),
    ("p99 E2E", ("e2e_ms", "p99"), "ms", "lower"),
    ("output throughput", "output tokens/s", "tok/s", "higher"),
    ("throughput, all tokens", ("throughput", "*tokens_per_s"), "tok/s", "higher"),
    ("fleet $/hour", "fleet $/hour", "$", "lower"),
    ("$ per 1M tokens", ("cost", "usd_per_million_tokens"), "$", "lower"),
    ("$ per 1M output tokens", "$ per 1M output tokens", "$", "lower"),
    ("output tokens per $", "output tokens per $", "tok", "higher"),
    ("monthly bill", "monthly bill", "$", "lower"),
    ("quality kept", "quality kept", "%", "higher"),
]


# The latency rows the run's prediction gives a range for: label -> (summary metric, stat).
BANDED = {"p95 TTFT": ("ttft_ms", "p95"), "p95 TPOT": ("tpot_ms", "p95"),
          "p95 E2E": ("e2e_ms", "p95"), "p99 E2E": ("e2e_ms", "p99")}
# What the per-setup latency bars show, in this order.
BAR_FIGURES = ("p95 TTFT", "p95 TPOT", "p99 E2E")


def _lookup(summary: dict, path: tuple[str, ...]) -> float | None:
    if path == ("throughput", "*tokens_per_s"):
        throughput = summary.get("throughput") or {}
        parts = [throughput.get("input_tokens_per_s"), throughput.get("output_tokens_per_s")]
        return None if None in parts else float(sum(parts))
    return lookup(summary, path)


def verdict(change: float | None, better: str) -> str:
    """"better", "worse" or "" (no change, no baseline, or no preferred direction)."""
    if change is None or better == "neither" or abs(change) < NO_CHANGE_PCT:
        return ""
    return "better" if (change < 0) == (better == "lower") else "worse"


def figure_rows(columns: list[Column], slo: SloTarget) -> list[dict]:
    """One row per figure: label, unit, better, values (one per column), change_pct and
    verdict (None and "" for the baseline), then a last row saying whether the SLO holds."""
    summaries = [column.summary for column in columns]
    shared = {row["metric"]: row for row in compare(summaries)}
    rows = []
    for label, source, unit, better in FIGURES:
        if isinstance(source, str):
            values = list(shared[source]["values"])
            changes = list(shared[source]["change_pct"])
        else:
            values = [_lookup(summary, source) for summary in summaries]
            changes = [None] + [change_pct(values[0], v) for v in values[1:]]
        rows.append({"figure": label, "unit": unit, "better": better, "values": values,
                     "change_pct": changes,
                     "verdict": [""] + [verdict(c, better) for c in changes[1:]]})
    # a setup holds only if it holds on every seed, and keeps up only if it does on every one
    met = [all(meets_slo(run, slo) for run in column.runs) for column in columns]
    kept_up = [_kept_up(column) for column in columns]
    for row in rows:  # a setup that misses the SLO or falls behind saves nothing: no green
        row["verdict"] = [v if v != "better" or (met[i] and kept_up[i] is not False) else ""
                          for i, v in enumerate(row["verdict"])]
    rows.append({"figure": "meets the SLO", "unit": "", "better": "higher", "values": met,
                 "change_pct": [None] * len(met),
                 "verdict": [""] + [_slo_verdict(met[0], m) for m in met[1:]]})
    rows.append({"figure": "keeps up with the load", "unit": "", "better": "higher",
                 "values": kept_up, "change_pct": [None] * len(kept_up),
                 "verdict": [""] + [_slo_verdict(kept_up[0] is not False, k is not False)
                                    for k in kept_up[1:]]})
    return rows


def _kept_up(column: Column) -> bool | None:
    seen = [(run.get("saturation") or {}).get("kept_up") for run in column.runs]
    return False if False in seen else seen[0]


def recommendation(columns: list[Column], rows: list[dict],
                   best: pd.DataFrame | None = None) -> str:
    """The decision in one sentence. At equal SLO (``best``, the highest load each setup
    sustains within it) when the sweep found one, else at the compared load among the setups
    that meet the SLO and keep up; a setup that misses is never a saving."""
    names = [column.name for column in columns]
    if best is not None and len(best) and best["usd_per_million_tokens"].notna().any():
        costs = dict(zip(best["scenario"], best["usd_per_million_tokens"]))
        return _cheapest_sentence(names, costs, "at equal SLO (each at the highest load it "
                                  "sustains within it)")
    by_label = {row["figure"]: row for row in rows}
    ok = [m and k is not False for m, k in zip(by_label["meets the SLO"]["values"],
                                               by_label["keeps up with the load"]["values"])]
    costs = {name: value if good else float("nan") for name, value, good
             in zip(names, by_label["$ per 1M tokens"]["values"], ok)}
    return _cheapest_sentence(names, costs, "at this load")


def _cheapest_sentence(names: list[str], costs: dict, basis: str) -> str:
    usable = {n: c for n, c in costs.items() if c is not None and c == c}  # c == c: not NaN
    if not usable:
        return (f"No setup serves this load within the SLO ({basis}): raise the replicas or "
                "pick a faster GPU tier, or loosen the SLO.")
    cheapest = min(usable, key=usable.get)
    base = costs.get(names[0])
    price = format_value(usable[cheapest], "$")
    if cheapest == names[0]:
        return (f"Keep {names[0]}: no change serves the load within the SLO for less "
                f"({price} per 1M tokens, {basis}).")
    if base is None or base != base:
        return (f"{cheapest} serves the load within the SLO for {price} per 1M tokens "
                f"({basis}); {names[0]} does not hold the SLO.")
    saving = (base - usable[cheapest]) / base * 100
    return (f"{cheapest} serves the same load within the SLO for {saving:.0f} % less per "
            f"1M tokens than {names[0]} ({price} against {format_value(base, '$')}, {basis}).")


def figure_range(column: Column, label: str) -> tuple[float, float] | None:
    """(low, high) ms the real figure ``label`` (a BANDED row) of a column may fall in."""
    if label not in BANDED:
        return None
    return band_range(column.summary, *BANDED[label])


def latency_bar_frame(columns: list[Column]) -> pd.DataFrame:
    """One row per setup and latency figure of BAR_FIGURES: scenario, figure, value (ms) and
    the range low/high (NaN where the run has no band), for the bars with error bars."""
    rows = []
    for column in columns:
        for label in BAR_FIGURES:
            metric, stat = BANDED[label]
            value = (column.summary.get(metric) or {}).get(stat)
            if value is None:
                continue
            pair = figure_range(column, label) or (float("nan"), float("nan"))
            rows.append({"scenario": column.name, "figure": label, "value": float(value),
                         "low": pair[0], "high": pair[1]})
    return pd.DataFrame(rows, columns=["scenario", "figure", "value", "low", "high"])


def uncertainty_lines(columns: list[Column]) -> list[str]:
    """For each change: a sentence naming the banded latency figures whose change from the
    baseline is smaller than the width of the latency model's range (none: no sentence)."""
    base = columns[0].summary
    lines = [uncertainty_sentence(column.name, base, column.summary, list(BANDED.values()))
             for column in columns[1:]]
    return [line for line in lines if line]


def coverage_note(column: Column) -> str:
    """"name: Latency model: trained (model ✓ …)"; "" for a summary without a prediction."""
    line = trust_line(column.summary)
    return f"{column.name}: {line}" if line else ""


def _slo_verdict(base: bool, value: bool) -> str:
    if base == value:
        return ""
    return "better" if value else "worse"


def format_value(value: float | bool | None, unit: str) -> str:
    """A figure as people read it: money with a $, latencies to the millisecond, big counts
    with thousands separators."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if unit == "$":
        if abs(value) >= 100:
            return f"${value:,.0f}"
        return f"${value:,.2f}" if abs(value) >= 1 else f"${value:,.4f}"
    if unit == "%":
        return f"{value:.2f} %"
    if unit == "ms":
        return f"{value:,.0f} ms" if abs(value) >= 10 else f"{value:,.1f} ms"
    suffix = f" {unit}" if unit else ""
    return f"{value:,.0f}{suffix}" if abs(value) >= 100 else f"{value:,.1f}{suffix}"


def change_text(row: dict, i: int) -> str:
    """What column ``i`` changes in a row, in words: "-12.3 %", or "now met" for the SLO."""
    if row["figure"] == "meets the SLO":
        return {"better": "now met", "worse": "now missed"}.get(row["verdict"][i], "")
    if row["figure"] == "keeps up with the load":
        return {"better": "now keeps up", "worse": "falls behind"}.get(row["verdict"][i], "")
    return format_change(row["change_pct"][i])


def format_change(change: float | None) -> str:
    if change is None:
        return ""
    if abs(change) < NO_CHANGE_PCT:
        return "±0 %"
    return f"{change:+,.1f} %"


def figure_frame(columns: list[Column], rows: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The table as shown: a figure column, then each scenario's value, each change followed
    by its change in % ("Δ name"); and a frame of the same shape holding each cell's verdict,
    "better", "worse" or "" (for colouring; the figure column keeps the labels)."""
    names = [column.name for column in columns]
    table: dict[str, list[str]] = {"figure": [row["figure"] for row in rows]}
    marks: dict[str, list[str]] = {"figure": list(table["figure"])}
    for i, name in enumerate(names):
        table[name] = [format_value(row["values"][i], row["unit"]) for row in rows]
        marks[name] = [_slo_mark(row, i) for row in rows]
        if i:
            table[f"Δ {name}"] = [change_text(row, i) for row in rows]
            marks[f"Δ {name}"] = [row["verdict"][i] for row in rows]
    return pd.DataFrame(table), pd.DataFrame(marks)


def _slo_mark(row: dict, i: int) -> str:
    """Values are not coloured, except whether the SLO holds and the fleet keeps up: those
    matter on their own."""
    if row["figure"] not in ("meets the SLO", "keeps up with the load"):
        return ""
    return "" if row["values"][i] is None else "better" if row["values"][i] else "worse"


def headline(columns: list[Column], rows: list[dict]) -> list[str]:
    """One sentence per change: what it does to cost, p95 TTFT and quality."""
    by_label = {row["figure"]: row for row in rows}
    lines = []
    for i, column in enumerate(columns[1:], start=1):
        parts = []
        for label in ("$ per 1M tokens", "p95 TTFT", "monthly bill"):
            row = by_label[label]
            old, new = row["values"][0], row["values"][i]
            if old is None or new is None:
                continue
            change = format_change(row["change_pct"][i])
            ranges = [figure_range(columns[0], label), figure_range(column, label)]
            if any(ranges):
                change += "; ranges " + " and ".join(
                    range_text(*pair) if pair else "none" for pair in ranges)
            parts.append(f"{label} {format_value(old, row['unit'])} → "
                         f"{format_value(new, row['unit'])} ({change})")
        quality = by_label["quality kept"]["values"][i]
        if quality is not None:
            parts.append(f"quality kept {quality:.2f} %")
        slo = by_label["meets the SLO"]["values"][i]
        parts.append("meets the SLO" if slo else "misses the SLO")
        lines.append(f"{column.name}: " + "; ".join(parts))
    return lines


def assumptions(column: Column) -> dict[str, str]:
    """What a column's figures assume, in a reader's words."""
    s = column.summary
    cost = s.get("cost") or {}
    engine = s.get("engine") or {}
    scheduler = engine.get("scheduler")
    if scheduler is None and s.get("pools"):
        scheduler = "+".join(sorted({(pool.get("engine") or {}).get("scheduler", "?")
                                     for pool in s["pools"].values()}))
    throughput = s.get("throughput") or {}
    requests = s.get("requests") or {}
    return {
        "scenario": column.name,
        "model": str(s.get("model", "–")),
        "GPU": str(s.get("gpu", "–")),
        "tensor parallel": "–" if s.get("tensor_parallel") is None else str(s["tensor_parallel"]),
        "replicas": str(s.get("replicas", "–")),
        "GPUs": str(cost.get("gpus", "–")),
        "weight format": str(s.get("weight_dtype", "–")),
        "scheduler": str(scheduler or "–"),
        "workload": _workload_words(column.scenario_yaml),
        "requests simulated": f"{requests.get('arrived', 0):,}",
        "served rate": f"{throughput.get('requests_per_s', 0):.2f} req/s",
        "price tier": str(cost.get("price_tier", "–")).replace("_", "-"),
        "$/GPU-hour": format_value(cost.get("usd_per_gpu_hour"), "$"),
    }


def _workload_words(text: str) -> str:
    """The workload's load in a few words, read from the scenario's YAML."""
    workload = (yaml.safe_load(text) or {}).get("workload") or {}
    arrivals = workload.get("arrivals") or {}
    if "trace" in workload:
        trace = workload["trace"]
        return f"trace {trace.get('path')} × {trace.get('rate_scale', 1.0):g} rate"
    if "stages" in workload:
        rates = ", ".join(f"{stage['rate_per_s']:g}" for stage in workload["stages"])
        return f"{arrivals.get('process', 'poisson')} stages of {rates} req/s"
    process = arrivals.get("process", "poisson")
    if process == "closed_loop":
        return f"closed loop, {arrivals.get('concurrency')} users"
    if process == "all_at_once":
        return f"{workload.get('num_requests')} requests at once"
    rate, seconds = arrivals.get("rate_per_s", 0), workload.get("duration_s", 0)
    return f"{process} {rate:g} req/s for {seconds:g} s"


def sources(column: Column) -> dict[str, str]:
    """Where a column's prices, latencies and quality figures come from."""
    s = column.summary
    cost = s.get("cost") or {}
    profiles = _profiles(s)
    quality = s.get("quality") or {}
    quality_text = "; ".join(
        f"{entry.get('model')} {entry.get('weight_dtype')}: {entry.get('percent')} % "
        f"({entry.get('basis')}{', ' + entry['source'] if entry.get('source') else ''})"
        for entry in quality.values() if isinstance(entry, dict)
    )
    return {
        "scenario": column.name,
        "prices": f"{cost.get('price_source', '–')} (as of {cost.get('price_as_of', '–')})",
        "latency profile": "; ".join(
            f"{profile.get('name')}: {profile.get('source')}" for profile in profiles) or "–",
        **_prediction_sources(s),
        "quality": quality_text or "–",
    }


def _prediction_sources(summary: dict) -> dict[str, str]:
    """What the latency model was trained on and what its ranges rest on (why none)."""
    section = prediction(summary)
    if section is None:
        return {"latency model's training data": "–", "latency ranges": "–"}
    return {"latency model's training data":
            f"{section.get('profile')}: {coverage_text(summary)}",
            "latency ranges": (band_basis(summary) if section.get("band") is not None
                               else f"none: {band_basis(summary)}")}


def _profiles(summary: dict) -> list[dict]:
    if summary.get("latency_profile"):
        return [summary["latency_profile"]]
    seen, out = set(), []
    for pool in (summary.get("pools") or {}).values():
        profile = pool.get("latency_profile") or {}
        if profile.get("name") not in seen:
            seen.add(profile.get("name"))
            out.append(profile)
    return out
