"""What the Traces page shows of a trace: its figures, rate over time and length histograms.

One pass over the trace feeds ``traces.stats.trace_stats`` (counts, percentiles, prefix reuse)
and keeps the arrival times and lengths on the side for the charts; only small binned tables
leave this module, so a cached entry stays small even for a trace of millions of rows.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import altair as alt
import numpy as np
import pandas as pd
import pyarrow as pa
import streamlit as st

from traces.errors import TraceError
from traces.stats import trace_stats
from traces.trace import open_trace

RATE_POINTS = 200  # at most this many buckets on the rate chart
HISTOGRAM_BINS = 40
# Bucket widths the rate chart may use, in seconds: round numbers a reader can take in.
_NICE_BUCKETS_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800,
                   21600, 43200, 86400)
_SKIP_HINT = "pass --on-bad-rows skip (scenario: on_bad_rows: skip)"
_LONG = 120  # characters of a quoted value worth showing; the rest is usually binary noise
_HEADER = re.compile(r"the header has (\[.*\])(?=\. )", re.DOTALL)
_GOT = re.compile(r"\(got (.*)\)(?=; |$)", re.DOTALL)
_MARKDOWN = re.compile(r"[\\`*_\[\]<>#|~$]")


@dataclass(frozen=True)
class TraceFigures:
    """Figures of one trace as read with one format and bad-rows policy."""

    format: str
    stats: dict  # traces.stats.trace_stats' figures
    bad_rows: dict | None  # the bad-row report under "skip", else None
    rate: pd.DataFrame  # time_s, requests_per_s (bucket starts)
    rate_bucket_s: float
    input_hist: dict[bool, pd.DataFrame]  # log bins? -> tokens_from, tokens_to, requests
    output_hist: dict[bool, pd.DataFrame]


def file_fingerprint(path: Path) -> str:
    """Size and modification time: a cache key part that changes when the file does."""
    info = path.stat()
    return f"{info.st_size}:{info.st_mtime_ns}"


def read_figures(source: str, format: str | None = None, on_bad_rows: str = "error",
                 options: dict | None = None) -> TraceFigures:
    """Read a trace (bundled name or path) once and compute everything the page draws.
    Raises TraceError."""
    trace = open_trace(source, format, on_bad_rows=on_bad_rows, options=options)
    arrivals: list[np.ndarray] = []
    inputs: list[np.ndarray] = []
    outputs: list[np.ndarray] = []
    stats = trace_stats(_keeping(trace.chunks(), arrivals, inputs, outputs),
                        trace.prefix_block_tokens)
    rate, bucket_s = rate_series(np.concatenate(arrivals))
    input_tokens, output_tokens = np.concatenate(inputs), np.concatenate(outputs)
    return TraceFigures(
        format=trace.format,
        stats=stats,
        bad_rows=trace.report.summary() if on_bad_rows == "skip" else None,
        rate=rate,
        rate_bucket_s=bucket_s,
        input_hist={log: length_histogram(input_tokens, log=log) for log in (False, True)},
        output_hist={log: length_histogram(output_tokens, log=log) for log in (False, True)},
    )


def _keeping(chunks: Iterable[pa.Table], arrivals: list, inputs: list,
             outputs: list) -> Iterator[pa.Table]:
    """Pass the chunks on, keeping the columns the charts need."""
    for table in chunks:
        arrivals.append(table["arrival_s"].to_numpy(zero_copy_only=False))
        inputs.append(table["input_tokens"].to_numpy(zero_copy_only=False).astype(np.int32))
        outputs.append(table["output_tokens"].to_numpy(zero_copy_only=False).astype(np.int32))
        yield table


@st.cache_data(max_entries=32, show_spinner=False)
def load_figures(source: str, format: str | None, on_bad_rows: str,
                 options: tuple[tuple[str, str], ...], fingerprint: str
                 ) -> tuple[TraceFigures | None, str | None]:
    """``read_figures`` cached on (path, format, policy, reader options, file size and time),
    with a failure as ``(None, message)`` so a bad file is not read again on every rerun.
    Under the ``error`` policy a bad row's message also counts how many rows are bad."""
    try:
        return read_figures(source, format, on_bad_rows, dict(options)), None
    except TraceError as exc:
        message = str(exc)
    if on_bad_rows == "error" and "fix the row" in message:
        message += bad_row_count_note(source, format, dict(options))
    return None, message


def bad_row_count_note(source: str, format: str | None, options: dict) -> str:
    """How many rows a skip would drop, as a sentence to add to the first bad row's message."""
    try:
        trace = open_trace(source, format, on_bad_rows="skip", options=options)
        for _ in trace.chunks():
            pass
    except TraceError:
        return ""
    report = trace.report
    if report.rows_kept == 0:
        return (f". None of the file's {report.rows_read:,} rows can be read as {trace.format}: "
                "it is probably in another format.")
    return (f". The file has {report.rows_dropped:,} bad rows of {report.rows_read:,}; "
            f"skipping them keeps {report.rows_kept:,}.")


def readable_error(message: str, path: str | Path | None = None, shown_name: str = "",
                   markdown: bool = True) -> str:
    """A reader's message in the app's words: the file's own name instead of its temporary
    path, the page's control instead of the command-line flag, and no screenful of bytes.
    ``markdown``: for st.error (values from the file escaped), else plain text for a table."""
    if path is not None and shown_name:
        message = message.replace(str(path), shown_name)
    message = message.replace(_SKIP_HINT, "choose **Bad rows: skip**" if markdown
                              else "choose Bad rows: skip")
    message = message.replace("Give the right --format", "Choose the right format")
    for pattern, lead in ((_HEADER, "the header has "), (_GOT, "(got ")):
        message = pattern.sub(lambda m: lead + _shorten(m.group(1), markdown)
                              + (")" if lead == "(got " else ""), message)
    return message


def _shorten(value: str, markdown: bool) -> str:
    """A value from the file, cut to a readable length (and escaped so Markdown shows it as
    it is)."""
    value = value if len(value) <= _LONG else value[:_LONG] + " …"
    return _MARKDOWN.sub(r"\\\g<0>", value) if markdown else value


def nice_bucket_s(span_s: float, max_points: int = RATE_POINTS) -> float:
    """The smallest round bucket width that draws the span in at most ``max_points`` buckets."""
    for width in _NICE_BUCKETS_S:
        if span_s / width <= max_points:
            return float(width)
    return float(math.ceil(span_s / max_points / 86400) * 86400)


def rate_series(arrival_s: np.ndarray, max_points: int = RATE_POINTS
                ) -> tuple[pd.DataFrame, float]:
    """Requests/s per bucket from the first arrival (time_s = the bucket's middle), and the
    bucket width. The last bucket's rate is over the part the trace covers, and a last bucket
    less than half covered is left out: either would otherwise look low only because the
    trace ended there."""
    start = float(arrival_s.min())
    span = float(arrival_s.max()) - start
    width = nice_bucket_s(span, max_points)
    counts = np.bincount(((arrival_s - start) // width).astype(np.int64)).astype(np.float64)
    widths = np.full(len(counts), width)
    if len(counts) > 1:
        covered = span - (len(counts) - 1) * width
        if covered < width / 2:
            counts, widths = counts[:-1], widths[:-1]
        else:
            widths[-1] = covered
    middles = np.arange(len(counts)) * width + widths / 2
    return pd.DataFrame({"time_s": middles, "requests_per_s": counts / widths}), width


def length_histogram(values: np.ndarray, bins: int = HISTOGRAM_BINS,
                     log: bool = False) -> pd.DataFrame:
    """Requests per length bin: evenly spaced bins, or evenly spaced in log scale."""
    low, high = int(values.min()), int(values.max())
    if high == low:
        edges = np.array([low, low + 1], dtype=np.float64)
    elif log:
        edges = np.geomspace(max(low, 1), high + 1, bins + 1)
    else:
        edges = np.linspace(low, high + 1, bins + 1)
    counts, edges = np.histogram(values, bins=edges)
    return pd.DataFrame({"tokens_from": edges[:-1], "tokens_to": edges[1:], "requests": counts})


def length_table(stats: dict) -> pd.DataFrame:
    """Mean and percentiles of input and output tokens, one row each."""
    rows = []
    for label, key in (("input tokens", "input_tokens"), ("output tokens", "output_tokens")):
        figures = stats[key]
        rows.append({"": label, "mean": round(figures["mean"], 1),
                     **{p: round(figures[p]) for p in ("p50", "p90", "p99")},
                     "min": figures["min"], "max": figures["max"], "total": figures["total"]})
    return pd.DataFrame(rows).set_index("")


def label_counts(counts: dict[str, int] | None, top: int = 20) -> pd.DataFrame | None:
    """Requests per model or endpoint, largest first, the rest summed as '(other)'."""
    if not counts:
        return None
    items = list(counts.items())
    rows = items[:top]
    rest = sum(count for _, count in items[top:])
    if rest:
        rows.append(("(other)", rest))
    frame = pd.DataFrame(rows, columns=["value", "requests"])
    frame["share"] = frame["requests"] / frame["requests"].sum()
    return frame


def time_unit(span_s: float) -> tuple[str, float]:
    """The unit to draw a span in: seconds up to three hours, hours beyond."""
    return ("h", 3600.0) if span_s > 3 * 3600 else ("s", 1.0)


def duration_text(seconds: float) -> str:
    """A duration in the unit a reader expects: '30 s', '58.4 min', '2 h'."""
    for unit, size, above in (("h", 3600.0, 7200.0), ("min", 60.0, 120.0)):
        if seconds >= above:
            return f"{_trim(seconds / size)} {unit}"
    return f"{_trim(seconds)} s"


def _trim(value: float) -> str:
    text = f"{value:,.1f}"
    return text[:-2] if text.endswith(".0") else text


def rate_chart(figures: TraceFigures) -> alt.Chart:
    unit, per = time_unit(float(figures.rate["time_s"].max()) if len(figures.rate) else 0.0)
    data = figures.rate.assign(time=figures.rate["time_s"] / per)
    bucket = duration_text(figures.rate_bucket_s)
    title = f"Arrival rate (requests/s per {bucket} bucket)"
    return alt.Chart(data, title=title).mark_line().encode(
        x=alt.X("time:Q", title=f"time ({unit})"),
        y=alt.Y("requests_per_s:Q", title="arrival rate (requests/s)"),
        tooltip=[alt.Tooltip("time:Q", title=f"time ({unit})", format=",.1f"),
                 alt.Tooltip("requests_per_s:Q", title="requests/s", format=",.2f")],
    )


def histogram_chart(frame: pd.DataFrame, what: str, log: bool) -> alt.Chart:
    scale = alt.Scale(type="log", nice=False) if log else alt.Scale(nice=False, zero=False)
    title = f"{what.capitalize()} length distribution{' (log-spaced bins)' if log else ''}"
    return alt.Chart(frame, title=title).mark_bar().encode(
        x=alt.X("tokens_from:Q", title=f"{what} tokens", scale=scale),
        x2="tokens_to:Q",
        y=alt.Y("requests:Q", title="requests"),
        y2=alt.datum(0),  # bars rise from zero (a ranged x leaves their base undefined)
        tooltip=[alt.Tooltip("tokens_from:Q", title="from (tokens)", format=",.0f"),
                 alt.Tooltip("tokens_to:Q", title="to (tokens)", format=",.0f"),
                 alt.Tooltip("requests:Q", title="requests", format=",")],
    )


def label_chart(frame: pd.DataFrame, what: str) -> alt.Chart:
    return alt.Chart(frame, title=f"Requests per {what}").mark_bar().encode(
        x=alt.X("requests:Q", title="requests"),
        y=alt.Y("value:N", title=what, sort="-x"),
        tooltip=[alt.Tooltip("value:N", title=what),
                 alt.Tooltip("requests:Q", title="requests", format=","),
                 alt.Tooltip("share:Q", title="share", format=".1%")],
    )
