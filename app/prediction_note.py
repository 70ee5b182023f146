"""How far to trust a run's latencies, in the app's words.

Every run summary carries ``summary["prediction"]`` (``sim.results.summary.prediction_summary``):
the latency profile behind the figures, whether the model, the GPU and the TP degree were in the
data that profile was trained on (``in_training_data``: one dict, a list of them for a fleet's
pools, or None for a profile not trained on runs), and the range each latency figure may really
fall in (``band``, from the profile's errors on runs it was not trained on), or why there is
none (``band_basis``). Pure functions of a summary, so every page and the before/after report
word and round them the same way. A summary without the section (an older one, or one made by
hand) gives no range and no note.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

METRIC_LABELS = {"ttft_ms": "TTFT", "tpot_ms": "TPOT", "itl_ms": "ITL", "e2e_ms": "E2E"}
COVERAGE_LABELS = {"model": "model", "gpu": "GPU", "tensor_parallel": "TP"}
# what the CDF charts mark with the band: the mean and the p95 (share of requests below it)
CDF_STATS = ("mean", "p95")


def prediction(summary: dict | None) -> dict | None:
    """The summary's prediction section, or None when it has none."""
    section = (summary or {}).get("prediction")
    return section if isinstance(section, dict) else None


def band_range(summary: dict | None, metric: str, stat: str) -> tuple[float, float] | None:
    """(low, high) in ms the real ``metric`` (``"ttft_ms"``…) ``stat`` (``"p95"``…) may fall
    in, or None where the summary has no band for it."""
    band = (prediction(summary) or {}).get("band") or {}
    pair = (band.get(metric) or {}).get(stat)
    if not pair or pair.get("low") is None or pair.get("high") is None:
        return None
    return float(pair["low"]), float(pair["high"])


def range_text(low: float, high: float) -> str:
    """``"160–230 ms"``: both ends in one unit, as precise as the figures beside them."""
    if high >= 10_000:
        return f"{low / 1e3:,.1f}–{high / 1e3:,.1f} s"
    if high >= 100:
        return f"{low:,.0f}–{high:,.0f} ms"
    return f"{low:.1f}–{high:.1f} ms"


def band_text(summary: dict | None, metric: str, stat: str) -> str | None:
    """``"range 160–230 ms"`` for one figure, or None where there is no band for it."""
    pair = band_range(summary, metric, stat)
    return None if pair is None else f"range {range_text(*pair)}"


def figure_text(summary: dict, metric: str, stat: str) -> str:
    """``"p95 TTFT 182 ms (range 160–230 ms)"``; without a band just ``"p95 TTFT 182 ms"``."""
    value = (summary.get(metric) or {}).get(stat)
    text = f"{stat} {METRIC_LABELS.get(metric, metric)} {_ms(value)}"
    band = band_text(summary, metric, stat)
    return f"{text} ({band})" if band else text


def _ms(value: float | None) -> str:
    if value is None:
        return "–"
    if value >= 10_000:
        return f"{value / 1e3:,.1f} s"
    return f"{value:,.0f} ms" if value >= 100 else f"{value:.1f} ms"


def coverage_text(summary: dict | None) -> str:
    """Which of model, GPU and TP degree the latency profile was trained on, e.g. "model ✓ in
    training data, GPU ✗ not in training data → wider range, TP ✓"; one clause per pool of a
    fleet; "not trained on measured runs" for a hand-set or per-configuration profile; "" for a
    summary without a prediction section."""
    section = prediction(summary)
    if section is None:
        return ""
    seen = section.get("in_training_data")
    has_band = section.get("band") is not None
    if isinstance(seen, list):
        names = _pool_names(summary, len(seen))
        return "; ".join(f"pool {name}: {_coverage_of(entry, has_band)}"
                         for name, entry in zip(names, seen))
    return _coverage_of(seen, has_band)


def _pool_names(summary: dict, count: int) -> list[str]:
    names = list((summary.get("fleet") or {}).get("pools") or summary.get("pools") or [])
    return names if len(names) == count else [str(i + 1) for i in range(count)]


def _coverage_of(seen: dict | None, has_band: bool) -> str:
    if not seen:
        return "not trained on measured runs"
    parts, said_in, said_out = [], False, False
    for key, label in COVERAGE_LABELS.items():
        if key not in seen:
            continue
        if seen[key]:
            parts.append(f"{label} ✓" + ("" if said_in else " in training data"))
            said_in = True
            continue
        text = f"{label} ✗" + ("" if said_out else " not in training data")
        said_out = True
        if key == "gpu" and has_band:
            text += " → wider range"
        elif key == "tensor_parallel" and has_band:
            text += " (range not measured at this TP)"
        parts.append(text)
    return ", ".join(parts)


def trust_line(summary: dict | None) -> str | None:
    """One line on how far to trust the latencies: the profile, its training coverage and, with
    no band, why there is none. None for a summary without a prediction section."""
    section = prediction(summary)
    if section is None:
        return None
    line = f"Latency model: {section.get('profile') or '?'} ({coverage_text(summary)})"
    if section.get("band") is None:
        reason = section.get("band_basis") or "the latency profile gives none"
        line += f" · no range for the latencies: {reason}"
    return line


def band_basis(summary: dict | None) -> str:
    """What the range rests on (or why there is none); "" without a prediction section."""
    return str((prediction(summary) or {}).get("band_basis") or "")


def band_width(summary: dict | None, metric: str, stat: str) -> float | None:
    pair = band_range(summary, metric, stat)
    return None if pair is None else pair[1] - pair[0]


def within_uncertainty(before: dict, after: dict, metric: str, stat: str) -> bool | None:
    """Whether the change of one figure from ``before`` to ``after`` is smaller than the width
    of the band (the wider of the two runs' bands): a difference the latency model cannot tell
    apart from its own error. None where neither run has a band or a figure is missing."""
    old = (before.get(metric) or {}).get(stat)
    new = (after.get(metric) or {}).get(stat)
    widths = [w for w in (band_width(before, metric, stat), band_width(after, metric, stat))
              if w is not None]
    if old is None or new is None or not widths:
        return None
    return abs(new - old) < max(widths)


def uncertainty_sentence(name: str, before: dict, after: dict,
                         figures: list[tuple[str, str]]) -> str | None:
    """One sentence for a report naming the ``figures`` ((metric, stat) pairs) in which
    ``after`` (named ``name``) differs from ``before``, but by less than the band's width;
    None when there is no such figure. Figures that did not change are left out."""
    parts = []
    for metric, stat in figures:
        old = (before.get(metric) or {}).get(stat)
        new = (after.get(metric) or {}).get(stat)
        if old is None or new is None or old == new:
            continue
        if not within_uncertainty(before, after, metric, stat):
            continue
        widths = [w for w in (band_width(before, metric, stat), band_width(after, metric, stat))
                  if w is not None]
        parts.append(f"{stat} {METRIC_LABELS.get(metric, metric)} {_ms(old)} → {_ms(new)} "
                     f"(range {_ms(max(widths))} wide)")
    if not parts:
        return None
    several = len(parts) > 1
    listed = ", ".join(parts[:-1]) + " and " + parts[-1] if several else parts[0]
    return (f"{name}: the change{'s' if several else ''} in {listed} "
            f"{'are' if several else 'is'} smaller than the latency model's range: within the "
            "model's uncertainty.")


def cdf_band_frame(summary: dict | None, metric: str, cdf: pd.DataFrame) -> pd.DataFrame:
    """The band of one CDF chart's metric ("TTFT", "TPOT" or "E2E") at its mean and p95: rows
    of (stat, value, low, high, share), share being where the figure sits on the CDF's y axis.
    Empty when there is no band."""
    key = f"{metric.lower()}_ms"
    values = (summary or {}).get(key) or {}
    part = cdf[cdf["metric"] == metric] if len(cdf) else cdf
    rows = []
    for stat in CDF_STATS:
        pair, value = band_range(summary, key, stat), values.get(stat)
        if pair is None or value is None:
            continue
        if stat == "mean":
            if part.empty:
                continue
            share = float(np.interp(value, part["latency_ms"], part["share"]))
        else:
            share = float(stat[1:]) / 100
        rows.append({"stat": stat, "value": float(value), "low": pair[0], "high": pair[1],
                     "share": share, "label": f"{stat} {range_text(*pair)}"})
    return pd.DataFrame(rows, columns=["stat", "value", "low", "high", "share", "label"])
