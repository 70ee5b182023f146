"""What a trace looks like, in one streaming pass: size, rate over time, burstiness, lengths and
how much of the prompts a prefix cache could reuse.

Memory: lengths are kept as int32 arrays (8 bytes a request, fine up to tens of millions of
rows) for exact percentiles; prefix ids seen so far as one sorted int64 array.

Prefix reuse assumes an unbounded cache and counts tokens. Prompt blocks are
``prefix_block_tokens`` long; the last id of a prompt may cover a partial block:

    input_tokens = 1,300, block = 512     ids [a, b, c]
    tokens:        a: 512   b: 512   c: 276 (the prompt's share only)

A block is reusable when its id appeared in an earlier request; the reuse ratio is reusable
tokens over all input tokens (prompts without ids count as not reusable).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from traces.errors import TraceError

DEFAULT_BUCKET_S = 60.0
PERCENTILES = (50, 90, 99)
_RAMP = " .:-=+*#%@"  # sparkline levels, low to high
_SPARK_WIDTH = 60


def trace_stats(chunks: Iterable[pa.Table], prefix_block_tokens: int = 0, *,
                bucket_s: float = DEFAULT_BUCKET_S) -> dict:
    """Figures of a stream of normalized chunks, as a JSON-ready dict (see ``format_stats``)."""
    if not (isinstance(bucket_s, (int, float)) and math.isfinite(bucket_s) and bucket_s > 0):
        raise TraceError(f"bucket_s must be a number of seconds > 0 (60 counts per minute), "
                         f"got {bucket_s!r}")
    totals = _Totals(bucket_s)
    reuse = _PrefixReuse(prefix_block_tokens)
    for table in chunks:
        if table.num_rows == 0:
            continue
        totals.add(table)
        if "prefix_ids" in table.column_names:
            reuse.add(table)
    stats = totals.result()
    stats["prefix"] = reuse.result(stats["input_tokens"]["total"]) if reuse.used else None
    return stats


class _Totals:
    """Counts, arrival buckets, gap moments and lengths, accumulated chunk by chunk."""

    def __init__(self, bucket_s: float) -> None:
        self.bucket_s = bucket_s
        self.rows = 0
        self.first_s = math.nan
        self.last_s = math.nan
        self.buckets = np.zeros(0, dtype=np.int64)
        self.gaps = _Moments()
        self.inputs: list[np.ndarray] = []
        self.outputs: list[np.ndarray] = []
        self.sessions: set[str] = set()
        self.has_sessions = False
        self.labels: dict[str, dict[str, int]] = {}  # model / endpoint -> value -> requests

    def add(self, table: pa.Table) -> None:
        arrival = table["arrival_s"].to_numpy(zero_copy_only=False)
        if self.rows == 0:
            self.first_s = float(arrival[0])
        else:
            self.gaps.add(np.array([arrival[0] - self.last_s]))
        self.gaps.add(np.diff(arrival))
        self.last_s = float(arrival[-1])
        self.rows += len(arrival)
        counts = np.bincount(np.floor(np.maximum(arrival, 0) / self.bucket_s).astype(np.int64))
        if len(counts) > len(self.buckets):
            self.buckets = np.concatenate([self.buckets, np.zeros(len(counts) - len(self.buckets),
                                                                  dtype=np.int64)])
        self.buckets[: len(counts)] += counts
        for column, kept in (("input_tokens", self.inputs), ("output_tokens", self.outputs)):
            kept.append(table[column].to_numpy(zero_copy_only=False).astype(np.int32))
        if "session_id" in table.column_names:
            self.has_sessions = True
            self.sessions.update(pc.unique(table["session_id"].drop_null()).to_pylist())
        for column in ("model", "endpoint"):
            if column in table.column_names:
                counts_of = self.labels.setdefault(column, {})
                for item in pc.value_counts(table[column].drop_null()).to_pylist():
                    counts_of[item["values"]] = counts_of.get(item["values"], 0) + item["counts"]

    def result(self) -> dict:
        if self.rows == 0:
            raise TraceError("the trace has no rows to describe (all were dropped or filtered)")
        span = self.last_s - self.first_s
        return {
            "rows": self.rows,
            "first_arrival_s": self.first_s,
            "span_s": span,
            "mean_rate_per_s": self.rows / span if span > 0 else None,
            "burstiness_cv": self.gaps.cv,
            "inter_arrival_s": {"mean": self.gaps.mean, "cv": self.gaps.cv},
            "rate_over_time": {
                "bucket_s": self.bucket_s,
                "counts": self.buckets.tolist(),
                "peak_per_s": float(self.buckets.max()) / self.bucket_s,
            },
            "input_tokens": _lengths(self.inputs),
            "output_tokens": _lengths(self.outputs),
            "sessions": len(self.sessions) if self.has_sessions else None,
            "models": _by_count(self.labels.get("model")),
            "endpoints": _by_count(self.labels.get("endpoint")),
        }


class _Moments:
    """Count, mean and sum of squared deviations, merged chunk by chunk (Chan et al.)."""

    def __init__(self) -> None:
        self.n, self.mean_, self.m2 = 0, 0.0, 0.0

    def add(self, values: np.ndarray) -> None:
        if len(values) == 0:
            return
        n, mean = len(values), float(values.mean())
        m2 = float(((values - mean) ** 2).sum())
        total = self.n + n
        delta = mean - self.mean_
        self.m2 += m2 + delta * delta * self.n * n / total
        self.mean_ += delta * n / total
        self.n = total

    @property
    def mean(self) -> float | None:
        return self.mean_ if self.n else None

    @property
    def cv(self) -> float | None:
        """Standard deviation over mean: 1 for Poisson arrivals, above 1 for bursty ones."""
        if self.n < 2 or self.mean_ <= 0:
            return None
        return math.sqrt(self.m2 / self.n) / self.mean_


class _PrefixReuse:
    """Tokens whose prefix block id an earlier request already had (an unbounded cache)."""

    def __init__(self, block_tokens: int) -> None:
        self.block_tokens = block_tokens
        self.seen = np.zeros(0, dtype=np.int64)  # sorted ids of every block seen so far
        self.reusable_tokens = 0
        self.used = False

    def add(self, table: pa.Table) -> None:
        if self.block_tokens < 1:
            raise TraceError(
                "the trace has prefix_ids but prefix_block_tokens is "
                f"{self.block_tokens!r}: give the number of prompt tokens each id covers "
                "(Mooncake: 512)"
            )
        self.used = True
        ids = table["prefix_ids"].combine_chunks()
        lengths = pc.fill_null(pc.list_value_length(ids), 0).to_numpy(zero_copy_only=False)
        values = pc.list_flatten(ids).to_numpy(zero_copy_only=False).astype(np.int64)
        if len(values) == 0:
            return
        row = np.repeat(np.arange(len(lengths)), lengths)
        position = np.arange(len(values)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        prompt = table["input_tokens"].to_numpy(zero_copy_only=False)[row]
        tokens = np.clip(prompt - position * self.block_tokens, 0, self.block_tokens)
        codes, unique = pd.factorize(values)  # distinct ids, numbered by first appearance
        first_row = row[_first_positions(codes)]
        reusable = self._seen_before(unique)[codes] | (first_row[codes] < row)
        self.reusable_tokens += int(tokens[reusable].sum())

    def _seen_before(self, unique: np.ndarray) -> np.ndarray:
        """Whether each of these distinct ids was in an earlier chunk; then remembers them."""
        by_value = np.argsort(unique)
        ordered = unique[by_value]
        at = np.searchsorted(self.seen, ordered)  # sorted queries: cache-friendly
        found = np.zeros(len(ordered), dtype=bool)
        inside = at < len(self.seen)
        found[inside] = self.seen[at[inside]] == ordered[inside]
        self.seen = np.insert(self.seen, at[~found], ordered[~found])  # stays sorted
        known = np.empty_like(found)
        known[by_value] = found
        return known

    def result(self, input_tokens: int) -> dict:
        return {
            "block_tokens": self.block_tokens,
            "unique_blocks": len(self.seen),
            "reusable_tokens": self.reusable_tokens,
            "input_tokens": input_tokens,
            "reuse_ratio": self.reusable_tokens / input_tokens if input_tokens else 0.0,
        }


def _first_positions(codes: np.ndarray) -> np.ndarray:
    """Where each code first occurs, for codes numbered 0, 1, 2... by first appearance."""
    return np.flatnonzero(np.r_[True, codes[1:] > np.maximum.accumulate(codes)[:-1]])


def _lengths(parts: list[np.ndarray]) -> dict:
    values = np.concatenate(parts)
    points = np.percentile(values, PERCENTILES)
    return {
        "mean": float(values.mean()),
        **{f"p{p}": float(v) for p, v in zip(PERCENTILES, points)},
        "min": int(values.min()),
        "max": int(values.max()),
        "total": int(values.sum(dtype=np.int64)),
    }


def _by_count(counts: dict[str, int] | None) -> dict[str, int] | None:
    if counts is None:
        return None
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def format_stats(stats: dict) -> str:
    """A readable report of ``trace_stats``' figures, with a sparkline of the rate."""
    lines = [
        ("requests", f"{stats['rows']:,}"),
        ("span", f"{stats['span_s']:,.1f} s ({stats['span_s'] / 3600:,.2f} h)"),
        ("mean rate", _optional(stats["mean_rate_per_s"], "{:,.2f} requests/s")),
        ("burstiness", _optional(stats["burstiness_cv"], "CV of gaps {:.2f} (1 = Poisson)")),
        ("input tokens", _length_line(stats["input_tokens"])),
        ("output tokens", _length_line(stats["output_tokens"])),
    ]
    prefix = stats.get("prefix")
    if prefix is not None:
        lines.append(("prefix reuse", (
            f"{prefix['reuse_ratio']:.1%} of input tokens ({prefix['reusable_tokens']:,} of "
            f"{prefix['input_tokens']:,}; blocks of {prefix['block_tokens']} tokens, "
            f"unbounded cache)")))
    if stats.get("sessions") is not None:
        lines.append(("sessions", f"{stats['sessions']:,}"))
    for key in ("models", "endpoints"):
        if stats.get(key):
            lines.append((key, ", ".join(f"{k} {v:,}" for k, v in list(stats[key].items())[:8])))
    width = max(len("rate over time"), *(len(label) for label, _ in lines))
    text = [f"{label.ljust(width)}  {value}" for label, value in lines]
    return "\n".join(text + _rate_plot(stats, width))


def _optional(value: float | None, pattern: str) -> str:
    return "-" if value is None else pattern.format(value)


def _length_line(figures: dict) -> str:
    return (f"mean {figures['mean']:,.0f}  p50 {figures['p50']:,.0f}  p90 {figures['p90']:,.0f}"
            f"  p99 {figures['p99']:,.0f}  max {figures['max']:,}")


def _rate_plot(stats: dict, indent: int) -> list[str]:
    """Requests/s in at most _SPARK_WIDTH columns; a last column less than half covered by the
    trace is left out (its rate would look low only because the trace ended)."""
    rate = stats["rate_over_time"]
    counts = np.asarray(rate["counts"], dtype=np.float64)
    per_column = max(1, math.ceil(len(counts) / _SPARK_WIDTH))
    column_s = rate["bucket_s"] * per_column
    padded = np.concatenate([counts, np.zeros(-len(counts) % per_column)])
    per_s = padded.reshape(-1, per_column).sum(axis=1) / column_s
    end_s = stats["first_arrival_s"] + stats["span_s"]
    if len(per_s) > 1 and end_s - (len(per_s) - 1) * column_s < column_s / 2:
        per_s = per_s[:-1]
    top = float(per_s.max())
    levels = np.ceil(per_s / top * (len(_RAMP) - 1)).astype(int) if top > 0 else 0 * per_s
    spark = "".join(_RAMP[int(level)] for level in levels)
    end = _duration(column_s * len(per_s))
    return [
        f"{'rate over time'.ljust(indent)}  requests/s per {_duration(column_s)}: "
        f"min {per_s.min():,.2f}, max {top:,.2f}",
        f"{' ' * indent}  |{spark}|",
        f"{' ' * indent}   0{end.rjust(max(len(spark) - 1, len(end) + 1))}",
    ]


def _duration(seconds: float) -> str:
    if seconds >= 7200:
        return f"{seconds / 3600:,.3g} h"
    if seconds >= 60:
        return f"{seconds / 60:,.3g} min"
    return f"{seconds:,.3g} s"
