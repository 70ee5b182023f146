"""The Plan page's Pareto chart: fleet cost against a latency (or tokens per $) for every
candidate that holds the SLOs, the front joined, the winner ringed, the SLO target drawn."""

from __future__ import annotations

import altair as alt
import pandas as pd

from app.plan_view import METRICS

_FRONT_COLOR = "#1f77b4"
_OTHER_COLOR = "#9e9e9e"
_SLO_COLOR = "#d62728"


def pareto_chart(points: pd.DataFrame, metric: str, target: float | None = None,
                 title: str = "") -> alt.LayerChart:
    """``points`` as made by ``app.plan_view.chart_points``; ``target`` is the SLO line."""
    axis_title, _ = METRICS[metric]
    data = points.assign(
        front=points["pareto"].map({True: "on the Pareto front", False: "dominated"}),
        label=[f"cheapest: {c}" if w else c for c, w in zip(points["candidate"], points["winner"])])
    x = alt.X("usd_per_hour:Q", title="fleet cost ($/hour)", scale=alt.Scale(zero=False))
    y = alt.Y("value:Q", title=axis_title, scale=alt.Scale(zero=False))
    tooltip = [
        alt.Tooltip("candidate:N", title="fleet"),
        alt.Tooltip("usd_per_hour:Q", title="$/hour", format="$,.2f"),
        alt.Tooltip("monthly_usd:Q", title="$/month", format="$,.0f"),
        alt.Tooltip("ttft_ms:Q", title="p95 TTFT (ms)", format=",.0f"),
        alt.Tooltip("tpot_ms:Q", title="p95 TPOT (ms)", format=",.1f"),
        alt.Tooltip("tokens_per_usd:Q", title="output tokens/$", format=",.0f"),
        alt.Tooltip("front:N", title="Pareto"),
    ]
    color = alt.Color("front:N", title=None,
                      scale=alt.Scale(domain=["on the Pareto front", "dominated"],
                                      range=[_FRONT_COLOR, _OTHER_COLOR]),
                      legend=alt.Legend(orient="top"))
    base = alt.Chart(data).encode(x=x, y=y)
    layers = [
        base.transform_filter(alt.datum.pareto)
        .mark_line(color=_FRONT_COLOR, strokeWidth=1.5)
        .encode(order="usd_per_hour:Q"),
        base.mark_circle(size=90, opacity=0.9).encode(color=color, tooltip=tooltip),
        base.transform_filter(alt.datum.winner)
        .mark_point(shape="circle", size=420, strokeWidth=2.5, color="#2ca02c", filled=False)
        .encode(tooltip=tooltip),
        # only the front is labelled: the dominated points crowd each other, and their
        # tooltips name them
        base.transform_filter(alt.datum.pareto)
        .mark_text(align="left", dx=10, dy=-10, fontSize=11).encode(text="label:N"),
    ]
    if target is not None:
        rule = pd.DataFrame({"value": [target], "label": [f"SLO {target:,.0f} ms"]})
        line = alt.Chart(rule).encode(y="value:Q")
        layers += [
            line.mark_rule(color=_SLO_COLOR, strokeDash=[6, 4]),
            line.mark_text(color=_SLO_COLOR, align="left", dy=-6, x=4).encode(text="label:N"),
        ]
    return alt.layer(*layers).properties(
        title=title or "Cheapest fleet per candidate that holds the SLOs", height=380)
