"""Latency against load: each scenario run at a range of arrival rates, and the cost of a
million tokens at the highest rate that still meets the SLO.

A point is the column's scenario with only its load changed, so its YAML (and so the cached
run behind it) is the same every time the same sweep is asked for.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from sim.config.scenario import parse_scenario

from app.compare_inputs import (LoadKnob, SloTarget, canonical_yaml, meets_slo, nominal_rate,
                                with_load)
from app.prediction_note import band_range

CURVE_COLUMNS = ["scenario", "multiplier", "level", "offered_rps", "served_rps",
                 "output_tokens_per_s", "ttft_p95_ms", "tpot_p95_ms", "e2e_p95_ms", "slo_met",
                 "kept_up", "usd_per_million_tokens", "output_tokens_per_usd", "usd_per_hour",
                 "ttft_p95_low_ms", "ttft_p95_high_ms", "tpot_p95_low_ms", "tpot_p95_high_ms"]


@dataclass(frozen=True)
class PlannedPoint:
    """One run of a sweep: the column it belongs to, its load and the YAML to simulate.
    ``offered_rps`` is the rate the scenario asks for, or None when only a run can tell
    (a trace scaled, a closed loop)."""

    scenario: str
    multiplier: float
    level: float
    scenario_yaml: str
    offered_rps: float | None


def sweep_multipliers(low: float, high: float, points: int) -> list[float]:
    """``points`` evenly spaced loads from ``low`` to ``high`` times the baseline's."""
    if not 0 < low < high:
        raise ValueError(f"the sweep needs 0 < low < high, got {low} and {high}")
    if points < 2:
        raise ValueError(f"a curve needs at least 2 points, got {points}")
    return [round(float(m), 6) for m in np.linspace(low, high, points)]


def plan_sweep(name: str, data: dict, knob: LoadKnob,
               multipliers: list[float]) -> list[PlannedPoint]:
    """The runs of one column's curve: its document at ``knob.value`` × each multiplier.
    Counts of users are whole numbers, so repeats after rounding are dropped."""
    planned: list[PlannedPoint] = []
    seen: set[float] = set()
    for multiplier in multipliers:
        level = knob.value * multiplier
        if knob.integer:
            level = float(max(1, round(level)))
        if level in seen:
            continue
        seen.add(level)
        doc = with_load(data, knob.kind, level)
        planned.append(PlannedPoint(name, multiplier, level, canonical_yaml(doc),
                                    nominal_rate(parse_scenario(doc))))
    return planned


def measured_rate(arrivals_s: pd.Series) -> float | None:
    """Requests per second over the span of the arrivals (for loads with no nominal rate)."""
    times = arrivals_s.dropna()
    if len(times) < 2 or times.max() <= times.min():
        return None
    return (len(times) - 1) / float(times.max() - times.min())


def point_row(point: PlannedPoint, summary: dict, offered_rps: float | None,
              slo: SloTarget) -> dict:
    """A curve row from a run's summary; ``offered_rps`` stands in when the point has none."""
    cost = summary.get("cost") or {}
    throughput = summary.get("throughput") or {}
    return {
        "scenario": point.scenario,
        "multiplier": point.multiplier,
        "level": point.level,
        "offered_rps": point.offered_rps if point.offered_rps is not None else offered_rps,
        "served_rps": throughput.get("requests_per_s"),
        "output_tokens_per_s": throughput.get("output_tokens_per_s"),
        "ttft_p95_ms": (summary.get("ttft_ms") or {}).get("p95"),
        "tpot_p95_ms": (summary.get("tpot_ms") or {}).get("p95"),
        "e2e_p95_ms": (summary.get("e2e_ms") or {}).get("p95"),
        "slo_met": meets_slo(summary, slo),
        # False: the fleet fell behind (sim.results.saturation); None: nothing to keep up with
        "kept_up": (summary.get("saturation") or {}).get("kept_up"),
        "usd_per_million_tokens": cost.get("usd_per_million_tokens"),
        "output_tokens_per_usd": cost.get("output_tokens_per_usd"),
        "usd_per_hour": cost.get("usd_per_hour"),
        **_band_columns(summary),
    }


def _band_columns(summary: dict) -> dict:
    """The range the point's real p95 TTFT and TPOT may fall in (None: no band)."""
    out = {}
    for metric in ("ttft", "tpot"):
        pair = band_range(summary, f"{metric}_ms", "p95") or (None, None)
        out[f"{metric}_p95_low_ms"], out[f"{metric}_p95_high_ms"] = pair
    return out


def _fell_behind(kept_up: object) -> bool:
    """A curve's ``kept_up`` is False (a numpy bool too), True, or None/NaN (nothing to
    keep up with, or not known)."""
    return kept_up is not None and kept_up == kept_up and not bool(kept_up)


def curve_frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=CURVE_COLUMNS)


def best_at_slo(curve: pd.DataFrame, order: list[str] | None = None) -> pd.DataFrame:
    """Per scenario: the highest swept load before the SLO first fails, and its cost.

    Points are taken from the lowest load up; the first miss, or the first load the fleet
    does not keep up with, ends the search, so a lucky point past saturation is not read as
    capacity. A scenario that misses at every load has
    NaN figures. ``order`` sets the order of the rows (scenarios not swept are left out);
    ``change_pct`` compares $ per 1M tokens with the first scenario's.
    """
    swept = list(dict.fromkeys(curve["scenario"]))
    names = [name for name in order if name in swept] if order else swept
    rows = []
    for name in names:
        points = curve[curve["scenario"] == name].sort_values("level")
        held = None
        for _, point in points.iterrows():
            if not point["slo_met"] or _fell_behind(point["kept_up"]):
                break
            held = point
        row = {"scenario": name, "points": len(points), "holds_at_lowest": held is not None,
               "past_sweep": held is not None and held["level"] == points["level"].max()}
        for column in ("level", "offered_rps", "served_rps", "ttft_p95_ms", "tpot_p95_ms",
                       "usd_per_million_tokens", "output_tokens_per_usd", "usd_per_hour"):
            value = None if held is None else held[column]
            row[column] = np.nan if value is None else float(value)
        rows.append(row)
    out = pd.DataFrame(rows)
    if len(out):
        base = out["usd_per_million_tokens"].iloc[0]
        usable = bool(base == base and base)  # base == base: not NaN
        out["change_pct"] = (out["usd_per_million_tokens"] - base) / abs(base) * 100 \
            if usable else np.nan
    return out
