"""The before/after report: a comparison written for people who sign the bill.

One self-contained HTML file (charts embedded as PNG data, no scripts, nothing fetched from the
internet) with the cost per million tokens, the monthly bill, p95 latency and quality of each
scenario, the load each sustains within the SLO, what every figure assumes and where the
prices, latencies and quality figures come from; plus each chart as a PNG and the scenario files
behind the columns, so anyone can rerun them with ``servesim run``.
"""

from __future__ import annotations

import base64
import html
import io
import zipfile
from dataclasses import dataclass, field
from datetime import date

import altair as alt
import pandas as pd

from sim.results.cost import HOURS_PER_MONTH

from app.compare_charts import cost_at_slo_chart, latency_chart
from app.compare_figures import (BANDED, Column, assumptions, change_text, figure_range,
                                 figure_rows, format_change, format_value, headline,
                                 recommendation, seed_lines, sources, uncertainty_lines)
from app.compare_inputs import SloTarget
from app.prediction_note import range_text
from app.scenario_io import file_stem

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHART_WIDTH, CHART_HEIGHT = 560, 320
# Figures a finance reader looks at first; the rest of the table follows them.
FINANCE_FIRST = ["$ per 1M tokens", "monthly bill", "fleet $/hour", "output tokens per $",
                 "p95 TTFT", "p95 TPOT", "p99 E2E", "quality kept", "meets the SLO"]


@dataclass
class ReportFiles:
    """The report's files: ``html`` (self-contained), ``charts`` (PNG name -> bytes) and
    ``scenarios`` (YAML name -> text)."""

    html: str
    charts: dict[str, bytes] = field(default_factory=dict)
    scenarios: dict[str, str] = field(default_factory=dict)

    def zip_bytes(self) -> bytes:
        """report.html, charts/*.png and scenarios/*.yaml in one ZIP archive."""
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("report.html", self.html)
            for name, png in self.charts.items():
                archive.writestr(f"charts/{name}", png)
            for name, text in self.scenarios.items():
                archive.writestr(f"scenarios/{name}", text)
        return buffer.getvalue()


def chart_png(chart: alt.TopLevelMixin) -> bytes:
    """A chart drawn to PNG offline (Altair renders through vl-convert, no browser)."""
    buffer = io.BytesIO()
    chart.properties(width=CHART_WIDTH, height=CHART_HEIGHT).save(
        buffer, format="png", scale_factor=2)
    return buffer.getvalue()


def report_charts(curve: pd.DataFrame, best: pd.DataFrame | None, slo: SloTarget,
                  order: list[str]) -> dict[str, alt.TopLevelMixin]:
    """The charts a report carries, by PNG file name (none when there was no sweep)."""
    if curve is None or curve.empty:
        return {}
    charts: dict[str, alt.TopLevelMixin] = {
        "p95-ttft-vs-load.png": latency_chart(curve, "ttft", slo.ttft_p95_ms, order=order),
        "p95-tpot-vs-load.png": latency_chart(curve, "tpot", slo.tpot_p95_ms, order=order),
    }
    if best is not None and best["usd_per_million_tokens"].notna().any():
        charts["cost-per-1m-tokens-at-slo.png"] = cost_at_slo_chart(best, order=order)
    return charts


def build_report(columns: list[Column], slo: SloTarget, curve: pd.DataFrame | None = None,
                 best: pd.DataFrame | None = None, *, title: str | None = None,
                 notes: list[str] | None = None, generated: date | None = None,
                 charts: dict[str, bytes] | None = None) -> ReportFiles:
    """Write the report of a comparison (the first column is the baseline).

    ``curve`` and ``best`` are the rate sweep and its pick at equal SLO (see app.rate_curve);
    ``notes`` are extra lines for the method section; ``charts`` PNGs already drawn, to skip
    drawing them again.
    """
    names = [column.name for column in columns]
    title = title or f"Before/after: {names[0]} against {', '.join(names[1:]) or 'itself'}"
    generated = generated or date.today()
    pngs = charts if charts is not None else {
        name: chart_png(chart) for name, chart in report_charts(curve, best, slo, names).items()}
    rows = figure_rows(columns, slo)
    scenario_files = _scenario_files(columns)
    body = [
        f"<h1>{_e(title)}</h1>",
        f"<p class='meta'>Generated {generated.isoformat()} with servesim. Baseline: "
        f"<b>{_e(names[0])}</b>. SLO for every column: {_e(slo.describe())}.</p>",
        f"<p class='decision'><b>{_e(recommendation(columns, rows, best))}</b></p>",
        _section("In short", _bullets(headline(columns, rows) + uncertainty_lines(columns)
                                      + seed_lines(columns) + _capacity_lines(best))),
        _section("Cost, latency and quality at the baseline's load", _figure_table(columns, rows)),
        _section("Cost per 1M tokens at equal SLO", _best_table(best) + _images(
            pngs, ["cost-per-1m-tokens-at-slo.png"])),
        _section("Latency against load", _images(
            pngs, ["p95-ttft-vs-load.png", "p95-tpot-vs-load.png"]) or
            "<p>No rate sweep was run for this report.</p>"),
        _section("Assumptions", _by_column([assumptions(c) for c in columns])
                 + _scenario_list(scenario_files)),
        _section("Sources", _by_column([sources(c) for c in columns])),
        _section("Method", _bullets(_method(notes))),
    ]
    document = ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
                f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
                + "\n".join(body) + "</body></html>")
    return ReportFiles(html=document, charts=pngs, scenarios=scenario_files)


def _scenario_files(columns: list[Column]) -> dict[str, str]:
    files: dict[str, str] = {}
    for column in columns:
        stem = file_stem(column.name)
        name, n = f"{stem}.yaml", 2
        while name in files:
            name, n = f"{stem}-{n}.yaml", n + 1
        files[name] = column.scenario_yaml
    return files


def _capacity_lines(best: pd.DataFrame | None) -> list[str]:
    if best is None or best.empty:
        return []
    lines = []
    for i, row in best.iterrows():
        if row["usd_per_million_tokens"] != row["usd_per_million_tokens"]:  # NaN: never held
            lines.append(f"{row['scenario']}: misses the SLO at every swept load")
            continue
        change = "" if i == 0 else f" ({format_change(row['change_pct'])} against the baseline)"
        at_least = "at least " if row["past_sweep"] else ""
        lines.append(f"{row['scenario']}: serves {at_least}{row['offered_rps']:.2f} requests/s "
                     f"within the SLO at {format_value(row['usd_per_million_tokens'], '$')} "
                     f"per 1M tokens{change}")
    return lines


def _figure_table(columns: list[Column], rows: list[dict]) -> str:
    ordered = sorted(rows, key=lambda r: (FINANCE_FIRST.index(r["figure"])
                                          if r["figure"] in FINANCE_FIRST else len(FINANCE_FIRST)))
    head = "<tr><th>figure</th>" + "".join(
        f"<th>{_e(c.name)}</th>" + ("" if i == 0 else f"<th>Δ {_e(c.name)}</th>")
        for i, c in enumerate(columns)) + "</tr>"
    lines = [head]
    for row in ordered:
        cells = [f"<td>{_e(row['figure'])}</td>"]
        for i in range(len(columns)):
            value = format_value(row["values"][i], row["unit"])
            slo_class = ""
            if row["figure"] == "meets the SLO":
                slo_class = " class='better'" if row["values"][i] else " class='worse'"
            pair = figure_range(columns[i], row["figure"]) if row["values"][i] is not None \
                else None
            band = (f"<br><span class='range'>range {_e(range_text(*pair))}</span>"
                    if pair else "")
            cells.append(f"<td{slo_class}>{_e(value)}{band}</td>")
            if i:
                verdict = row["verdict"][i]
                css = f" class='{verdict}'" if verdict else ""
                cells.append(f"<td{css}>{_e(change_text(row, i))}</td>")
        lines.append("<tr>" + "".join(cells) + "</tr>")
    return (f"<table>{''.join(lines)}</table><p class='note'>Green: better than the baseline; "
            f"red: worse. $ per 1M tokens counts input and output tokens. The monthly bill is the "
            f"fleet's hourly price × {HOURS_PER_MONTH:.0f} hours.{_range_note(columns)}</p>")


def _range_note(columns: list[Column]) -> str:
    """What the ranges under the latencies mean, where any column has one."""
    if not any(figure_range(c, label) for c in columns for label in BANDED):
        return ""
    return (" Range under a latency: where the real figure may fall, from the latency model's "
            "errors on measured runs it was not trained on (see Sources); a change smaller "
            "than the range's width is within the model's uncertainty.")


def _best_table(best: pd.DataFrame | None) -> str:
    if best is None or best.empty:
        return "<p>No rate sweep was run for this report.</p>"
    head = ("<tr><th>scenario</th><th>highest load within the SLO</th><th>$ per 1M tokens</th>"
            "<th>Δ $ per 1M tokens</th><th>output tokens per $</th><th>fleet $/hour</th></tr>")
    lines = [head]
    for i, row in best.iterrows():
        held = row["usd_per_million_tokens"] == row["usd_per_million_tokens"]
        load = (("≥ " if row["past_sweep"] else "") + f"{row['offered_rps']:.2f} req/s"
                if held else "SLO missed at every swept load")
        change = "" if i == 0 or not held else format_change(row["change_pct"])
        verdict = "" if not change else ("better" if row["change_pct"] < 0 else "worse")
        css = f" class='{verdict}'" if verdict and change != "±0 %" else ""
        lines.append(
            f"<tr><td>{_e(row['scenario'])}</td><td>{_e(load)}</td>"
            f"<td>{_e(format_value(row['usd_per_million_tokens'], '$') if held else '–')}</td>"
            f"<td{css}>{_e(change)}</td>"
            f"<td>{_e(format_value(row['output_tokens_per_usd'], 'tok') if held else '–')}</td>"
            f"<td>{_e(format_value(row['usd_per_hour'], '$') if held else '–')}</td></tr>")
    return (f"<table>{''.join(lines)}</table><p class='note'>Each scenario was run at a range of "
            "loads; this is the highest load before the SLO first fails, and the cost of a "
            "million tokens when the fleet is that busy. ≥: the SLO held at every swept load."
            "</p>")


def _by_column(records: list[dict[str, str]]) -> str:
    """Dicts that share keys as a table: one row per key, one column per dict."""
    keys = [key for key in records[0] if key != "scenario"]
    head = "<tr><th></th>" + "".join(f"<th>{_e(r['scenario'])}</th>" for r in records) + "</tr>"
    lines = [head] + [
        f"<tr><th>{_e(key)}</th>" + "".join(f"<td>{_e(r[key])}</td>" for r in records) + "</tr>"
        for key in keys]
    return f"<table class='facts'>{''.join(lines)}</table>"


def _scenario_list(files: dict[str, str]) -> str:
    items = "".join(f"<li><code>scenarios/{_e(name)}</code></li>" for name in files)
    return ("<p class='note'>The scenario files behind the columns (in the ZIP download) rerun "
            f"each column with <code>servesim run FILE</code>:</p><ul>{items}</ul>")


def _method(notes: list[str] | None) -> list[str]:
    return [
        "Every figure is simulated by servesim, a discrete-event simulation of the serving "
        "engine (batching, KV cache, scheduling) with per-step latencies from the latency "
        "profile named under Sources; the figures are estimates, not measurements. Where the "
        "profile was validated on runs it was not trained on, each latency comes with the range "
        "the real figure may fall in, and Sources says which of model, GPU and TP degree the "
        "profile saw in training.",
        "Each column is the same workload and SLO with one change: the scenario files hold "
        "exactly what was simulated.",
        "Cost is GPU time at the listed price; it leaves out storage, network, staff and "
        "idle capacity kept for peaks.",
        *(notes or []),
    ]


def _images(pngs: dict[str, bytes], names: list[str]) -> str:
    parts = []
    for name in names:
        if name in pngs:
            data = base64.b64encode(pngs[name]).decode("ascii")
            parts.append(f"<figure><img alt='{_e(name)}' src='data:image/png;base64,{data}' "
                         f"width='{CHART_WIDTH}'><figcaption>{_e(name)}</figcaption></figure>")
    return "".join(parts)


def _section(heading: str, content: str) -> str:
    return f"<section><h2>{_e(heading)}</h2>{content}</section>"


def _bullets(lines: list[str]) -> str:
    return "<ul>" + "".join(f"<li>{_e(line)}</li>" for line in lines) + "</ul>" if lines else ""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


_CSS = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1100px; color: #222; line-height: 1.4; }
.decision { font-size: 1.1em; background: #eef4fb; padding: 0.6em 0.8em; }
h1 { font-size: 1.6em; } h2 { font-size: 1.2em; margin-top: 1.8em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.92em; width: 100%;
        table-layout: fixed; }
img { max-width: 100%; height: auto; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: right; vertical-align: top;
         overflow-wrap: anywhere; }
th:first-child, td:first-child { text-align: left; }
table.facts td { text-align: left; max-width: 320px; }
td.better { background: #e3f4e3; color: #185c18; }
td.worse { background: #fbe4e4; color: #8a1c1c; }
.meta, .note { color: #555; font-size: 0.9em; }
.range { color: #777; font-size: 0.85em; white-space: nowrap; }
figure { display: inline-block; margin: 0.5em 1em 0.5em 0; }
figcaption { font-size: 0.8em; color: #777; }
"""
