"""Charts of one run (Altair): latency, batch size and KV use over time, latency CDFs.

Each takes the frames of an ``AppRun`` and returns a chart with a title and units, so the
Explore page and the reports draw the same pictures.
"""

from __future__ import annotations

import altair as alt
import pandas as pd

TIME_AXIS = alt.X("time_s:Q", title="time since start (s)")


def latency_over_time(timeline: pd.DataFrame, metric: str, slo_ms: float | None = None) -> alt.Chart:
    """p50 and p95 of ``metric`` ("ttft" or "e2e") for requests arriving in each time bucket."""
    label = metric.upper()
    long = timeline.melt(id_vars="time_s", value_vars=[f"{metric}_p50_ms", f"{metric}_p95_ms"],
                         var_name="quantile", value_name="ms").dropna()
    long["quantile"] = long["quantile"].str.extract(r"_(p\d+)_")[0]
    # a queue that grows (an overloaded run) spans milliseconds to hours: on a log scale the
    # early, served part stays readable instead of a flat line under the growth
    log = _spread(long["ms"]) > LOG_SPREAD
    lines = alt.Chart(long).mark_line(point=False).encode(
        TIME_AXIS,
        alt.Y("ms:Q", title=f"{label} (ms{', log scale' if log else ''})",
              scale=alt.Scale(type="log") if log else alt.Undefined),
        alt.Color("quantile:N", title="quantile"),
        tooltip=[alt.Tooltip("time_s:Q", title="time (s)", format=".0f"),
                 "quantile:N", alt.Tooltip("ms:Q", title=f"{label} (ms)", format=",.1f")],
    )
    chart = lines if slo_ms is None else lines + _rule(slo_ms, f"SLO p95 {slo_ms:,.0f} ms")
    return chart.properties(title=f"{label} over time (by arrival time)")


LOG_SPREAD = 100.0  # largest / smallest positive value above which a latency axis is logarithmic


def _spread(values: pd.Series) -> float:
    positive = values[values > 0]
    return float(positive.max() / positive.min()) if len(positive) else 1.0


def batch_size_over_time(timeline: pd.DataFrame, max_num_seqs: int | None) -> alt.Chart:
    chart = alt.Chart(timeline.dropna(subset=["batch_size"])).mark_line().encode(
        TIME_AXIS,
        alt.Y("batch_size:Q", title="sequences per step"),
        tooltip=[alt.Tooltip("time_s:Q", title="time (s)", format=".0f"),
                 alt.Tooltip("batch_size:Q", title="sequences per step", format=".1f")],
    )
    if max_num_seqs:
        chart = chart + _rule(max_num_seqs, f"max_num_seqs {max_num_seqs}")
    return chart.properties(title="Batch size over time (mean per step while stepping)")


def kv_usage_over_time(timeline: pd.DataFrame) -> alt.Chart:
    frame = timeline.assign(kv_percent=timeline["kv_used_share"] * 100)
    return alt.Chart(frame).mark_area(opacity=0.6).encode(
        TIME_AXIS,
        alt.Y("kv_percent:Q", title="KV blocks in use (%)", scale=alt.Scale(domain=[0, 100])),
        tooltip=[alt.Tooltip("time_s:Q", title="time (s)", format=".0f"),
                 alt.Tooltip("kv_percent:Q", title="KV in use (%)", format=".1f")],
    ).properties(title="KV cache use over time (all replicas)")


def arrivals_over_time(timeline: pd.DataFrame) -> alt.Chart:
    return alt.Chart(timeline).mark_bar().encode(
        TIME_AXIS,
        alt.Y("arrivals_per_s:Q", title="arrivals (requests/s)"),
        tooltip=[alt.Tooltip("time_s:Q", title="time (s)", format=".0f"),
                 alt.Tooltip("arrivals_per_s:Q", title="requests/s", format=".2f")],
    ).properties(title="Arrival rate over time")


def latency_cdf(cdf: pd.DataFrame, metric: str, band: pd.DataFrame | None = None) -> alt.Chart:
    """The CDF of one metric ("TTFT", "TPOT" or "E2E") on a log latency axis; with ``band``
    (rows of stat, value, low, high, share: ``app.prediction_note.cdf_band_frame``) each
    figure's range as a horizontal error bar at its height on the curve."""
    frame = cdf[(cdf["metric"] == metric) & (cdf["latency_ms"] > 0)]
    line = alt.Chart(frame).mark_line().encode(
        alt.X("latency_ms:Q", title=f"{metric} (ms, log scale)", scale=alt.Scale(type="log")),
        alt.Y("share:Q", title="share of requests", axis=alt.Axis(format="%")),
        tooltip=[alt.Tooltip("latency_ms:Q", title=f"{metric} (ms)", format=",.1f"),
                 alt.Tooltip("share:Q", title="share", format=".1%")],
    )
    title = f"{metric} distribution (CDF)"
    if band is None or band.empty:
        return line.properties(title=title)
    band = band[(band["low"] > 0) & (band["high"] > 0)]
    tooltip = [alt.Tooltip("stat:N", title="figure"),
               alt.Tooltip("value:Q", title="predicted (ms)", format=",.1f"),
               alt.Tooltip("low:Q", title="range from (ms)", format=",.1f"),
               alt.Tooltip("high:Q", title="range to (ms)", format=",.1f")]
    base = alt.Chart(band)
    bars = base.mark_rule(color="darkorange", strokeWidth=3, opacity=0.7).encode(
        x="low:Q", x2="high:Q", y="share:Q", tooltip=tooltip)
    ends = base.transform_fold(["low", "high"], as_=["end", "ms"]).mark_tick(
        color="darkorange", orient="vertical", size=10, thickness=2).encode(
        x="ms:Q", y="share:Q", tooltip=tooltip)
    dots = base.mark_point(color="darkorange", filled=True, size=40).encode(
        x="value:Q", y="share:Q", tooltip=tooltip)
    labels = base.mark_text(align="left", dx=6, dy=-8, color="darkorange", fontSize=10).encode(
        x="high:Q", y="share:Q", text="label:N")
    return alt.layer(line, bars, ends, dots, labels).properties(
        title=alt.TitleParams(title, subtitle="orange: the range the real mean and p95 may "
                                              "fall in"))


def _rule(value: float, label: str) -> alt.LayerChart:
    frame = pd.DataFrame({"y": [value], "label": [label]})
    rule = alt.Chart(frame).mark_rule(color="firebrick", strokeDash=[6, 4]).encode(y="y:Q")
    text = alt.Chart(frame).mark_text(align="left", dx=4, dy=-6, color="firebrick").encode(
        y="y:Q", text="label:N", x=alt.value(0))
    return rule + text
