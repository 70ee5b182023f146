"""Charts of the Calibration page (Altair): predicted against measured step times, and measured
against simulated latency of replayed runs."""

from __future__ import annotations

import altair as alt
import pandas as pd

from calibrate.replay import STATS


def step_scatter(frame: pd.DataFrame, profile_name: str) -> alt.Chart:
    """Each measured step at (measured, predicted) ms on log axes, with the y = x line: points
    above it are predicted too slow, below too fast."""
    low = float(min(frame["measured_ms"].min(), frame["predicted_ms"].min())) * 0.9
    high = float(max(frame["measured_ms"].max(), frame["predicted_ms"].max())) * 1.1
    scale = alt.Scale(type="log", domain=[low, high], nice=False)
    points = alt.Chart(frame).mark_point(size=18, opacity=0.5, filled=True).encode(
        alt.X("measured_ms:Q", title="measured step time (ms)", scale=scale),
        alt.Y("predicted_ms:Q", title="predicted step time (ms)", scale=scale),
        alt.Color("configuration:N", title="configuration",
                  legend=alt.Legend(labelLimit=320)),
        alt.Shape("kind:N", title="step"),
        tooltip=["configuration:N", "kind:N",
                 alt.Tooltip("measured_ms:Q", title="measured (ms)", format=",.2f"),
                 alt.Tooltip("predicted_ms:Q", title="predicted (ms)", format=",.2f"),
                 alt.Tooltip("error_pct:Q", title="error (%)", format="+.1f")],
    )
    diagonal = alt.Chart(pd.DataFrame({"measured_ms": [low, high], "predicted_ms": [low, high]})
                         ).mark_line(color="gray", strokeDash=[4, 4]).encode(
        x="measured_ms:Q", y="predicted_ms:Q")
    return (diagonal + points).properties(
        title=f"Step time: predicted ({profile_name}) vs measured, log scales; dashed: y = x",
        height=420)


def run_bars(errors: pd.DataFrame, metric: str) -> alt.Chart:
    """Per run, the measured and simulated mean and percentiles of one metric, side by side.

    Each run has its own panel and y scale: the runs' latencies differ by orders of magnitude.
    """
    rows = errors[(errors["metric"] == metric) & errors["measured_ms"].notna()]
    long = rows.melt(id_vars=["run", "stat", "ape_pct"], value_vars=["measured_ms", "simulated_ms"],
                     var_name="series", value_name="ms")
    long["series"] = long["series"].str.replace("_ms", "", regex=False)
    stats = [s for s in STATS if s in set(long["stat"])]
    bars = alt.Chart(long).mark_bar().encode(
        alt.X("stat:N", title="statistic", sort=stats),
        alt.XOffset("series:N", sort=["measured", "simulated"]),
        alt.Y("ms:Q", title=f"{metric} (ms)"),
        alt.Color("series:N", title="", sort=["measured", "simulated"]),
        tooltip=["run:N", "stat:N", "series:N",
                 alt.Tooltip("ms:Q", title=f"{metric} (ms)", format=",.1f"),
                 alt.Tooltip("ape_pct:Q", title="error (%)", format=".1f")],
    ).properties(width=190, height=180)
    return bars.facet(facet=alt.Facet("run:N", title=None), columns=3).resolve_scale(
        y="independent").properties(title=f"{metric}: measured vs simulated, per run (ms)")
