"""The Compare page's charts, also drawn into the before/after report."""

from __future__ import annotations

import altair as alt
import pandas as pd

# What the latency charts can put along x: (curve column, axis title).
X_AXES = {
    "offered rate": ("offered_rps", "offered load (requests/s)"),
    "achieved throughput": ("output_tokens_per_s", "achieved throughput (output tokens/s)"),
}
LATENCIES = {
    "ttft": ("ttft_p95_ms", "p95 TTFT (ms, log scale)", "p95 time to first token against load"),
    "tpot": ("tpot_p95_ms", "p95 TPOT (ms, log scale)", "p95 time per output token against load"),
}
BAND_NOTE = "shaded: the range the real latency may fall in (the latency model's error)"
# one colour per setup by its place in the comparison (Tableau 10), whichever setups a chart
# has data for: a setup missing from one chart does not shift the others' colours
PALETTE = ["#4c78a8", "#f58518", "#e45756", "#72b7b2", "#54a24b", "#eeca3b", "#b279a2",
           "#ff9da6", "#9d755d", "#bab0ac"]


def scenario_color(order: list[str] | None, legend: bool = True) -> alt.Color:
    """The colour channel of every Compare chart: fixed per setup (see PALETTE)."""
    scale = (alt.Scale(domain=list(order), range=[PALETTE[i % len(PALETTE)]
                                                  for i in range(len(order))])
             if order else alt.Undefined)
    return alt.Color("scenario:N", sort=order, title="scenario", scale=scale,
                     legend=alt.Undefined if legend else None)


def latency_chart(curve: pd.DataFrame, metric: str, limit_ms: float | None,
                  x: str = "offered rate", order: list[str] | None = None) -> alt.LayerChart:
    """p95 latency against load, one line per scenario, the SLO as a dashed rule. The y axis is
    logarithmic: past saturation queues grow a hundredfold and would flatten the rest."""
    column, y_title, title = LATENCIES[metric]
    x_column, x_title = X_AXES[x]
    data = curve.dropna(subset=[column, x_column])
    data = data[data[column] > 0]
    color = scenario_color(order)
    lines = alt.Chart(data, title=title).mark_line(point=True).encode(
        x=alt.X(f"{x_column}:Q", title=x_title),
        y=alt.Y(f"{column}:Q", title=y_title, scale=alt.Scale(type="log")),
        color=color,
        tooltip=[alt.Tooltip("scenario:N"),
                 alt.Tooltip("offered_rps:Q", title="offered (req/s)", format=".2f"),
                 alt.Tooltip("output_tokens_per_s:Q", title="output tok/s", format=",.0f"),
                 alt.Tooltip(f"{column}:Q", title=y_title.split(" (")[0] + " (ms)", format=",.0f"),
                 alt.Tooltip("slo_met:N", title="meets SLO")],
    )
    layers = [lines]
    band = _band_area(data, column, x_column, order)
    if band is not None:
        layers = [band, lines.properties(title=alt.TitleParams(title, subtitle=BAND_NOTE))]
    if not limit_ms:
        return alt.layer(*layers)
    rule = alt.Chart(pd.DataFrame({"limit": [limit_ms], "label": [f"SLO {limit_ms:,.0f} ms"]})) \
        .mark_rule(strokeDash=[6, 4], color="#888").encode(y="limit:Q")
    label = alt.Chart(pd.DataFrame({"limit": [limit_ms], "label": [f"SLO {limit_ms:,.0f} ms"]})) \
        .mark_text(align="left", dx=4, dy=-6, color="#666").encode(
            y="limit:Q", text="label:N", x=alt.value(0))
    return alt.layer(*layers, rule, label)


def _band_area(data: pd.DataFrame, column: str, x_column: str,
               order: list[str] | None) -> alt.Chart | None:
    """Each scenario's range of the real latency along its line, shaded (None: no band)."""
    low, high = column.replace("_ms", "_low_ms"), column.replace("_ms", "_high_ms")
    if low not in data or high not in data:
        return None
    banded = data.dropna(subset=[low, high])
    banded = banded[(banded[low] > 0) & (banded[high] > 0)]
    if banded.empty:
        return None
    return alt.Chart(banded).mark_area(opacity=0.15).encode(
        x=alt.X(f"{x_column}:Q"),
        y=alt.Y(f"{low}:Q", stack=None, scale=alt.Scale(type="log")), y2=alt.Y2(f"{high}:Q"),
        color=scenario_color(order))


def cost_at_slo_chart(best: pd.DataFrame, order: list[str] | None = None) -> alt.LayerChart:
    """$ per 1M tokens at each scenario's highest load within the SLO, labelled with that load."""
    data = best.dropna(subset=["usd_per_million_tokens"]).copy()
    data["label"] = [f"${cost:.4f} @ {rate:.1f} req/s" if rate == rate else f"${cost:.4f}"
                     for cost, rate in zip(data["usd_per_million_tokens"], data["offered_rps"])]
    base = alt.Chart(data, title="Cost per 1M tokens at the highest load within the SLO")
    bars = base.mark_bar().encode(
        x=alt.X("scenario:N", sort=order, title="scenario", axis=alt.Axis(labelAngle=0)),
        y=alt.Y("usd_per_million_tokens:Q", title="$ per 1M tokens (input + output)"),
        color=scenario_color(order, legend=False),
        tooltip=[alt.Tooltip("scenario:N"),
                 alt.Tooltip("offered_rps:Q", title="load (req/s)", format=".2f"),
                 alt.Tooltip("usd_per_million_tokens:Q", title="$ per 1M tokens", format="$.4f")],
    )
    text = base.mark_text(dy=-6).encode(
        x=alt.X("scenario:N", sort=order), y="usd_per_million_tokens:Q", text="label:N")
    return alt.layer(bars, text)


def latency_bars(frame: pd.DataFrame, order: list[str] | None = None) -> alt.FacetChart:
    """Each setup's p95 TTFT, p95 TPOT and p99 E2E as bars (one panel per figure, each with
    its own scale), with the range the real figure may fall in as an error bar where the run
    has one (``app.compare_figures.latency_bar_frame``)."""
    figures = list(dict.fromkeys(frame["figure"]))
    base = alt.Chart()
    tooltip = [alt.Tooltip("scenario:N"), alt.Tooltip("figure:N"),
               alt.Tooltip("value:Q", title="predicted (ms)", format=",.1f"),
               alt.Tooltip("low:Q", title="range from (ms)", format=",.1f"),
               alt.Tooltip("high:Q", title="range to (ms)", format=",.1f")]
    x = alt.X("scenario:N", sort=order, title=None, axis=alt.Axis(labelAngle=-30))
    bars = base.mark_bar().encode(
        x=x, y=alt.Y("value:Q", title="ms"),
        color=scenario_color(order, legend=False), tooltip=tooltip)
    layers = [bars]
    if frame["low"].notna().any():
        whiskers = base.transform_filter("isValid(datum.low) && isValid(datum.high)")
        layers += [
            whiskers.mark_rule(color="black", strokeWidth=1.5).encode(
                x=x, y="low:Q", y2="high:Q", tooltip=tooltip),
            whiskers.transform_fold(["low", "high"], as_=["end", "ms"]).mark_tick(
                color="black", thickness=1.5, size=10).encode(x=x, y="ms:Q"),
        ]
    title = "Latency by setup" + (" (whiskers: the range the real figure may fall in)"
                                  if frame["low"].notna().any() else "")
    return alt.layer(*layers, data=frame).properties(width=180, height=220).facet(
        column=alt.Column("figure:N", sort=figures, title=None), title=title,
    ).resolve_scale(y="independent")
