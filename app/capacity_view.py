"""Explore's "Highest sustainable rate": the capacity search (``sim.planning.capacity``) on the
page's scenario, worded and drawn.

No Streamlit here: the search takes a progress callback, and everything shown is a pure function
of the search's JSON report (``Capacity.to_json()``, the same as ``servesim capacity --format
json``), which is plain data the page keeps in its session state.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import altair as alt
import pandas as pd

from sim.config.scenario import Scenario
from sim.engine.errors import UserError
from sim.planning.capacity import (
    MAX_SCALE, OPTIMISTIC, PESSIMISTIC, PREDICTED, Check, find_capacity,
)
from traces.errors import TraceError

FIGURES = {"ttft_p95_ms": "p95 TTFT", "tpot_p95_ms": "p95 TPOT", "e2e_p99_ms": "p99 E2E"}
LIMITS = {"ttft_p95": "p95 TTFT", "tpot_p95": "p95 TPOT", "e2e_p99": "p99 E2E",
          "rejections": "rejections (over 1 % of the requests)",
          "backlog": "throughput (the queue keeps growing)",
          "search_limit": "nothing found: the top of the search"}
END_WORDS = {PREDICTED: "", PESSIMISTIC: " at the range's slow end",
             OPTIMISTIC: " at the range's fast end"}
SHORT_UNITS = {"requests/s": "req/s"}
_HOLDS, _FAILS = "holds", "fails"
_HOLD_COLOR, _FAIL_COLOR, _SLO_COLOR, _ANSWER_COLOR = "#2ca02c", "#d62728", "#d62728", "#1f77b4"


# ------------------------------------------------------------------ the search

def capacity_search(scenario_text: str, scenario: Scenario,
                    progress: Callable[[Check, str], None] | None = None) -> dict:
    """Run the capacity search on ``scenario`` (written as ``scenario_text``, the key the page
    keeps the answer under). Returns {"yaml", "report" (``Capacity.to_json()``) or None,
    "error" (why the scenario has no capacity to find) or None, "wall_s"}; never raises for a
    user's scenario."""
    start = time.perf_counter()
    try:
        report, error = find_capacity(scenario, progress=progress).to_json(), None
    except (UserError, TraceError) as exc:
        report, error = None, str(exc)
    return {"yaml": scenario_text, "report": report, "error": error,
            "wall_s": time.perf_counter() - start}


class SearchProgress:
    """How far a search has come, for a progress bar: fed each simulation as the search reports
    it (``progress(check, end)``), it gives (share done, a line about that simulation).

    The search's length is not known ahead: one search for the simulated figures (about 8-14
    simulations), then, where the latency profile has an error band, a short one at each end.
    The share is an estimate that never runs backwards and stops short of 1.
    """

    EXPECTED = {PREDICTED: 12, PESSIMISTIC: 3, OPTIMISTIC: 3}  # simulations, typically

    def __init__(self, scenario: Scenario):
        self.scenario = scenario
        self.unit = short_unit("conversations/s" if scenario.workload.sessions is not None
                               else "requests/s")
        self.done = 0
        self.per_end = {end: 0 for end in self.EXPECTED}
        self.share = 0.0

    def update(self, check: Check, end: str) -> tuple[float, str]:
        self.done += 1
        self.per_end[end] += 1
        ends = (PREDICTED, PESSIMISTIC, OPTIMISTIC) if check.has_band else (PREDICTED,)
        weights = {PREDICTED: 0.6, PESSIMISTIC: 0.2, OPTIMISTIC: 0.2} if check.has_band else {
            PREDICTED: 1.0}
        before = sum(weights[e] for e in ends[:ends.index(end)])
        within = 1 - 0.5 ** (self.per_end[end] / self.EXPECTED[end] * 3)  # ~0.88 when typical
        self.share = min(max(self.share, before + weights[end] * within), 0.99)
        return self.share, self.line(check, end)

    def line(self, check: Check, end: str) -> str:
        misses = check.misses(self.scenario, end)
        verdict = _HOLDS if not misses else _FAILS
        return (f"Simulation {self.done}: {rate_text(check.rate_per_s)} {self.unit} "
                f"{verdict}{END_WORDS[end]} ({_why(self.scenario, check, end, misses)})")


def _why(scenario: Scenario, check: Check, end: str, misses: dict[str, float]) -> str:
    """The figure that decided: the worst miss, or the target closest to being missed."""
    name = check.deciding(scenario, end, misses)
    if name == "rejections":
        return f"{100 * check.rejected_share:.1f} % rejected"
    if name == "backlog":
        return f"{100 * check.backlog_share:.0f} % still waiting at the last arrival"
    value = check.figures[end][name]
    if value is None:
        return "no request completed"
    missed = name.removesuffix("_ms") in misses
    return (f"{FIGURES[name]} {_ms(value)} {'>' if missed else '≤'} "
            f"{_ms(getattr(scenario.slo, name))} target")


# ------------------------------------------------------------------ the answer in words

def short_unit(unit: str) -> str:
    return SHORT_UNITS.get(unit, unit)


def rate_text(value: float) -> str:
    """A rate as the page shows it: one decimal from 10 up, three significant figures below."""
    return f"{value:,.1f}" if value >= 10 else f"{value:.3g}"


def answer_text(report: dict) -> str:
    """The headline: "140.0 req/s (band 130.0–148.0)", without the band where the latency
    profile has none, or that no rate holds."""
    if report["max_rate_per_s"] is None:
        return "No rate holds the SLO"
    unit = short_unit(report["rate_unit"])
    text = f"{rate_text(report['max_rate_per_s'])} {unit}"
    band = report["band"]
    if band is not None:  # an end where no load held (the slow end, say) is "none"
        low, high = ("none" if band[end] is None else rate_text(band[end])
                     for end in ("low", "high"))
        text += f" (band {low}–{high})"
    return text


def headroom_text(report: dict) -> str | None:
    """"Headroom: +35 % over the offered 5.5 req/s" (or how far the offered load is above
    what holds); None when either rate is unknown."""
    headroom, offered = report.get("headroom"), report.get("offered_rate_per_s")
    if headroom is None or not offered:
        return None
    unit = short_unit(report["rate_unit"])
    if headroom >= 0:
        return (f"Headroom: {100 * headroom:+.0f} % over the offered {rate_text(offered)} "
                f"{unit}")
    return (f"No headroom: the offered {rate_text(offered)} {unit} is "
            f"{100 * (1 / (1 + headroom) - 1):.0f} % above what this setup sustains")


def band_note(report: dict) -> str:
    """What the band is, or why there is none (the latency profile's ``band_basis``)."""
    if report["band"] is None:
        basis = report["band_basis"] or "the latency profile carries no error band"
        return f"No band: {basis}."
    return ("Band: the same search with every latency at the slow and at the fast end of the "
            f"latency model's range ({report['band_basis']}).")


def limit_text(report: dict) -> str:
    """What stops a higher rate, with what the next rate tried gave."""
    limited_by = report["limited_by"]
    name = LIMITS.get(limited_by, limited_by)
    if limited_by == "search_limit":
        return (f"Limited by {name} ({MAX_SCALE:g} × the scenario's rate): every load tried "
                "held.")
    rows = sorted(report["checked"], key=lambda r: r["rate_per_s"])
    failed = [r for r in rows if not r["holds"]]
    if report["max_rate_per_s"] is not None:
        failed = [r for r in failed if r["rate_per_s"] > report["max_rate_per_s"]]
    if not failed:
        return f"Limited by {name}."
    first = failed[0]
    at = f"{rate_text(first['rate_per_s'])} {short_unit(report['rate_unit'])}"
    lead = ("the next rate tried" if report["max_rate_per_s"] is not None
            else "the lowest rate tried")
    if limited_by == "rejections":
        detail = f"{100 * first['rejected_share']:.1f} % of the requests are rejected"
    elif limited_by == "backlog":
        detail = (f"{100 * first['backlog_share']:.0f} % of the requests still wait to start "
                  "when the last one arrives")
    else:
        figure = f"{limited_by}_ms"
        value = first.get(figure)
        shown = "no figure (no request completed)" if value is None else _ms(value)
        detail = f"{FIGURES[figure]} is {shown} against the {_ms(report['slo'][figure])} target"
    return f"Limited by {name}: at {lead}, {at}, {detail}."


def summary_lines(report: dict) -> list[str]:
    """The answer's lines under the headline: what limits it, the band, the search's note."""
    lines = [limit_text(report), band_note(report)]
    if report["message"] and report["max_rate_per_s"] is not None:
        lines.append(report["message"][0].upper() + report["message"][1:] + ".")
    return lines


# ------------------------------------------------------------------ the chart

def chart_figure(report: dict) -> str:
    """The figure the chart plots: the one that limits the rate, else the first SLO target."""
    limiting = f"{report['limited_by']}_ms"
    if limiting in report["slo"]:
        return limiting
    return next(name for name in FIGURES if name in report["slo"])


def chart_frame(report: dict) -> pd.DataFrame:
    """One row per load tried, by rate: rate_per_s, value (the chart's figure, in ms; loads
    where no request completed are left out), verdict ("holds"/"fails"), rejected and backlog
    percent."""
    figure = chart_figure(report)
    rows = [{"rate_per_s": r["rate_per_s"], "value": r[figure],
             "verdict": _HOLDS if r["holds"] else _FAILS,
             "rejected_percent": 100 * r["rejected_share"],
             "backlog_percent": 100 * r["backlog_share"], "requests": r["requests"]}
            for r in report["checked"] if r.get(figure) is not None]
    columns = ["rate_per_s", "value", "verdict", "rejected_percent", "backlog_percent",
               "requests"]
    return pd.DataFrame(rows, columns=columns).sort_values("rate_per_s", ignore_index=True)


def capacity_chart(report: dict) -> alt.LayerChart:
    """The loads tried: the figure against the rate, green where the load held and red where it
    failed, the SLO target as a dashed line and the answer (with its band) as a vertical rule."""
    figure = chart_figure(report)
    label = FIGURES[figure]
    frame = chart_frame(report)
    unit = short_unit(report["rate_unit"])
    x_log = _spread(frame["rate_per_s"]) > 8
    y_log = _spread(pd.concat([frame["value"], pd.Series([report["slo"][figure]])])) > 20
    x = alt.X("rate_per_s:Q", title=f"offered rate ({unit})",
              scale=alt.Scale(type="log") if x_log else alt.Scale(zero=False))
    y = alt.Y("value:Q", title=f"{label} (ms)",
              scale=alt.Scale(type="log") if y_log else alt.Scale(zero=True))
    tooltip = [alt.Tooltip("rate_per_s:Q", title=f"rate ({unit})", format=",.2f"),
               alt.Tooltip("value:Q", title=f"{label} (ms)", format=",.0f"),
               alt.Tooltip("verdict:N", title="SLO"),
               alt.Tooltip("rejected_percent:Q", title="rejected (%)", format=".1f"),
               alt.Tooltip("backlog_percent:Q", title="waiting at last arrival (%)",
                           format=".0f"),
               alt.Tooltip("requests:Q", title="requests", format=",")]
    base = alt.Chart(frame).encode(x=x, y=y)
    layers = [
        base.mark_line(color="#9e9e9e", strokeWidth=1).encode(order="rate_per_s:Q"),
        base.mark_circle(size=90, opacity=0.9).encode(
            color=alt.Color("verdict:N", title=None,
                            scale=alt.Scale(domain=[_HOLDS, _FAILS],
                                            range=[_HOLD_COLOR, _FAIL_COLOR]),
                            legend=alt.Legend(orient="top")),
            tooltip=tooltip),
    ]
    target = report["slo"][figure]
    rule = pd.DataFrame({"value": [target], "label": [f"SLO {label} {_ms(target)}"]})
    line = alt.Chart(rule).encode(y=alt.Y("value:Q"))
    layers += [line.mark_rule(color=_SLO_COLOR, strokeDash=[6, 4]),
               line.mark_text(color=_SLO_COLOR, align="left", dy=-6, x=4).encode(text="label:N")]
    best = report["max_rate_per_s"]
    if best is not None:
        band = report["band"] or {}
        if band.get("low") is not None and band.get("high") is not None:
            shade = pd.DataFrame({"low": [band["low"]], "high": [band["high"]]})
            layers.insert(0, alt.Chart(shade).mark_rect(color=_ANSWER_COLOR, opacity=0.12)
                          .encode(x="low:Q", x2="high:Q"))
        mark = pd.DataFrame({"rate_per_s": [best],
                             "label": [f"max {rate_text(best)} {unit}"]})
        answer = alt.Chart(mark).encode(x=alt.X("rate_per_s:Q"))
        layers += [answer.mark_rule(color=_ANSWER_COLOR, strokeDash=[2, 2]),
                   answer.mark_text(color=_ANSWER_COLOR, align="left", dx=4, y=8)
                   .encode(text="label:N")]
    return alt.layer(*layers).properties(
        title=f"Loads tried: {label} against the offered rate", height=320)


def _spread(values: pd.Series) -> float:
    """The ratio of the largest to the smallest positive value (1 for none)."""
    positive = values[values > 0]
    return float(positive.max() / positive.min()) if len(positive) else 1.0


def _ms(value: float) -> str:
    if value >= 10_000:
        return f"{value / 1e3:,.1f} s"
    return f"{value:,.0f} ms" if value >= 100 else f"{value:.1f} ms"

