"""A vLLM server's Prometheus ``/metrics`` scrape as measured aggregate figures.

A scrape holds counters since the server started, so the figures of one benchmark are the
difference between a scrape taken after it and one taken before (``before``; none = the server
served nothing else). Means come from the histograms' ``_sum`` and ``_count``: TTFT, E2E,
inter-token latency (per token) and time per output token (per request), all engine-side.
Series are added over their label sets (engines, models) unless ``model`` picks one.
"""

from __future__ import annotations

import re
from pathlib import Path

from calibrate.errors import CalibrationError

_LINE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(\{[^}]*\})?\s+(\S+)")
_MEANS = {  # figure -> histogram
    "ttft_ms": "vllm:time_to_first_token_seconds",
    "e2e_ms": "vllm:e2e_request_latency_seconds",
    "itl_ms": "vllm:inter_token_latency_seconds",
    "tpot_ms": "vllm:request_time_per_output_token_seconds",
}
_COUNTERS = {
    "prompt_tokens": "vllm:prompt_tokens_total",
    "generation_tokens": "vllm:generation_tokens_total",
    "preemptions": "vllm:num_preemptions_total",
    "prefix_cache_queries": "vllm:prefix_cache_queries_total",
    "prefix_cache_hits": "vllm:prefix_cache_hits_total",
}


def parse(text: str, model: str | None = None) -> dict[str, float]:
    """Series name -> value, summed over label sets (only ``model_name=model`` if given)."""
    totals: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            continue
        name, labels, value = match.groups()
        if model is not None and f'model_name="{model}"' not in (labels or ""):
            continue
        try:
            totals[name] = totals.get(name, 0.0) + float(value)
        except ValueError:
            continue
    return totals


def read(path: Path, before: Path | None = None, model: str | None = None) -> dict:
    """The benchmark's figures: means in ms, counts, and the prefix-cache hit rate."""
    after = _load(path, model)
    start = _load(before, model) if before is not None else {}
    delta = {name: value - start.get(name, 0.0) for name, value in after.items()}
    requests = delta.get(_MEANS["e2e_ms"] + "_count", 0.0)
    if requests <= 0:
        raise CalibrationError(
            f"{path}: no finished requests in the scrape"
            + (f" since {before}" if before else "")
            + " (is it a vLLM /metrics scrape, taken after the benchmark?)"
        )
    out: dict = {"requests": int(requests)}
    for figure, histogram in _MEANS.items():
        count = delta.get(histogram + "_count", 0.0)
        out[figure] = delta.get(histogram + "_sum", 0.0) / count * 1e3 if count else None
    for figure, counter in _COUNTERS.items():
        out[figure] = delta.get(counter, 0.0)
    queries = out["prefix_cache_queries"]
    out["prefix_cache_hit_rate"] = out["prefix_cache_hits"] / queries if queries else None
    return out


def _load(path: Path, model: str | None) -> dict[str, float]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise CalibrationError(f"cannot read the scrape {path} ({exc})") from None
    series = parse(text, model)
    if not any(name.startswith("vllm:") for name in series):
        raise CalibrationError(f"{path}: no vllm: series; scrape the server's /metrics endpoint")
    return series
