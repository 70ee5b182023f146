"""Scenarios side by side: the figures planners compare, with changes against the first one."""

from __future__ import annotations

# (label, where in the run summary, unit, which way is better)
METRICS: list[tuple[str, tuple[str, ...], str, str]] = [
    ("TTFT p50", ("ttft_ms", "p50"), "ms", "lower"),
    ("TTFT p95", ("ttft_ms", "p95"), "ms", "lower"),
    ("TPOT p50", ("tpot_ms", "p50"), "ms", "lower"),
    ("TPOT p95", ("tpot_ms", "p95"), "ms", "lower"),
    ("ITL p95", ("itl_ms", "p95"), "ms", "lower"),
    ("E2E p95", ("e2e_ms", "p95"), "ms", "lower"),
    ("throughput", ("throughput", "requests_per_s"), "req/s", "higher"),
    ("output tokens/s", ("throughput", "output_tokens_per_s"), "tok/s", "higher"),
    ("goodput", ("goodput", "requests_per_s"), "req/s", "higher"),
    ("requests rejected", ("requests", "rejected"), "", "lower"),
    ("KV cache use", ("kv", "mean_utilization"), "share", "neither"),
    ("KV held as token states", ("kv", "waste", "token_states"), "share", "higher"),
    ("mean batch", ("batch_size", "mean"), "seqs", "neither"),
    ("preemptions", ("kv", "preemptions"), "", "lower"),
    ("prefix hit rate", ("kv", "prefix_cache_hit_rate"), "share", "higher"),
    ("GPUs", ("cost", "gpus"), "", "neither"),
    ("fleet $/hour", ("cost", "usd_per_hour"), "$", "lower"),
    ("$ per 1M output tokens", ("cost", "usd_per_million_output_tokens"), "$", "lower"),
    ("output tokens per $", ("cost", "output_tokens_per_usd"), "tok", "higher"),
    ("monthly bill", ("cost", "monthly_usd"), "$", "lower"),
    ("quality kept", ("quality_retention_percent",), "%", "higher"),
]


def lookup(summary: dict, path: tuple[str, ...]) -> float | None:
    """The number at ``path`` in a run summary, or None where the summary has none."""
    node: object = summary
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node if isinstance(node, (int, float)) else None


def change_pct(base: float | None, value: float | None) -> float | None:
    """The change from ``base`` in percent; None where there is nothing to compare."""
    if base is None or value is None or base == 0:
        return None
    return (value - base) / abs(base) * 100


def compare(summaries: list[dict]) -> list[dict]:
    """One row per metric: each scenario's value and its change against the first, in %."""
    rows = []
    for label, path, unit, better in METRICS:
        values = [lookup(s, path) for s in summaries]
        rows.append({
            "metric": label,
            "unit": unit,
            "better": better,
            "values": values,
            "change_pct": [None] + [change_pct(values[0], v) for v in values[1:]],
        })
    return rows


def format_comparison(names: list[str], rows: list[dict]) -> str:
    """A text table: scenarios as lettered columns (A is the baseline), each change in %.

    A change is marked "+" when it is good news and "-" when it is bad news.
    """
    letters = [chr(ord("A") + i) if i < 26 else f"#{i + 1}" for i in range(len(names))]
    legend = [f"{letter}: {name}" for letter, name in zip(letters, names)]
    head = f"{'':<26}{letters[0]:>12}" + "".join(f"{x:>22}" for x in letters[1:])
    lines = [*legend, "", head]
    for row in rows:
        unit = f" ({row['unit']})" if row["unit"] else ""
        cells = f"{_number(row['values'][0]):>12}"
        for value, change in zip(row["values"][1:], row["change_pct"][1:]):
            mark = "" if change is None else f"{change:+.1f}%{_verdict(change, row['better'])}"
            cells += f"{_number(value):>12}{mark:>10}"
        lines.append(f"{row['metric'] + unit:<26}{cells}")
    return "\n".join(lines)


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, int) or abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) < 1:
        return f"{value:.3f}"
    return f"{value:,.1f}"


def _verdict(change: float, better: str) -> str:
    """A marker that says whether the change is good news: + better, - worse."""
    if better == "neither" or abs(change) < 0.05:
        return "  "
    good = (change < 0) == (better == "lower")
    return " +" if good else " -"
