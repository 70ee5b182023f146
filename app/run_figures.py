"""The figures of one run as labelled numbers, with units and which way is better.

Pure functions of a run summary (the dict ``servesim run --format json`` prints), so the
formatting is tested without a browser and every page rounds the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Better = Literal["lower", "higher", ""]


@dataclass(frozen=True)
class Figure:
    label: str
    value: float | None
    unit: str  # "ms", "usd", "usd_month", "tok/s", "tok/usd", "percent", "count", "seqs"
    better: Better = ""
    help: str = ""
    # the (metric, stat) of the summary this figure is, where the run's prediction may give a
    # range for it (``app.prediction_note.band_text``)
    source: tuple[str, str] | None = None

    def text(self) -> str:
        return format_value(self.value, self.unit)

    def change_text(self, previous: float | None) -> str | None:
        """The change from ``previous`` as the page's delta label, or None if not comparable."""
        if previous is None or self.value is None or previous == self.value:
            return None
        if self.unit == "percent":
            points = (self.value - previous) * 100
            return None if abs(points) < 0.05 else f"{points:+.1f} pts"
        if previous == 0:
            return None
        return f"{(self.value - previous) / abs(previous) * 100:+.1f} %"


def format_value(value: float | None, unit: str) -> str:
    if value is None:
        return "–"
    if unit == "ms":
        if value >= 10_000:  # long waits read better in seconds (and fit a narrow column)
            return f"{value / 1e3:,.1f} s"
        return f"{value:,.0f} ms" if value >= 100 else f"{value:.1f} ms"
    if unit == "usd":
        return f"${value:,.2f}" if value >= 0.1 else f"${value:.4f}"
    if unit == "usd_month":
        return f"${value:,.0f}"
    if unit == "percent":
        return f"{value * 100:.1f} %"
    if unit in ("tok/s", "tok/usd"):  # the label names the unit: a metric column is narrow
        return _short(value)
    if unit == "seqs":
        return f"{value:.1f}"
    return f"{value:,.0f}"


def _short(value: float) -> str:
    """A large count in three significant figures: 7.06k, 18.4k, 4.55M."""
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g}{suffix}"
    return f"{value:,.0f}"


def latency_figures(summary: dict) -> list[Figure]:
    ttft, tpot, e2e = summary["ttft_ms"], summary["tpot_ms"], summary["e2e_ms"]
    return [
        Figure("TTFT p50", ttft["p50"], "ms", "lower", "time to first token, median",
               ("ttft_ms", "p50")),
        Figure("TTFT p95", ttft["p95"], "ms", "lower", "time to first token, 95th percentile",
               ("ttft_ms", "p95")),
        Figure("TPOT p50", tpot["p50"], "ms", "lower", "time per output token after the first",
               ("tpot_ms", "p50")),
        Figure("TPOT p95", tpot["p95"], "ms", "lower", "", ("tpot_ms", "p95")),
        Figure("E2E p95", e2e["p95"], "ms", "lower", "whole reply, arrival to last token",
               ("e2e_ms", "p95")),
        Figure("E2E p99", e2e["p99"], "ms", "lower", "", ("e2e_ms", "p99")),
    ]


def cost_figures(summary: dict) -> list[Figure]:
    cost, throughput = summary["cost"], summary["throughput"]
    tokens_per_s = throughput["input_tokens_per_s"] + throughput["output_tokens_per_s"]
    return [
        Figure("Throughput (tok/s)", tokens_per_s, "tok/s", "higher", "prompt + output tokens per second"),
        Figure("Fleet $/hour", cost["usd_per_hour"], "usd", "lower",
               f"{cost['gpus']} GPU(s) at ${cost['usd_per_gpu_hour']:.2f}/GPU-hour "
               f"({cost['price_tier']}, {cost['price_as_of']})"),
        Figure("$ per 1M tokens", cost["usd_per_million_tokens"], "usd", "lower",
               "prompt + output tokens served per million, at this load"),
        Figure("$ per 1M output tokens", cost["usd_per_million_output_tokens"], "usd", "lower"),
        Figure("Output tokens per $", cost["output_tokens_per_usd"], "tok/usd", "higher"),
        Figure("Monthly bill", cost["monthly_usd"], "usd_month", "lower",
               "the fleet running all month (730 hours)"),
    ]


def engine_figures(summary: dict) -> list[Figure]:
    kv, requests = summary["kv"], summary["requests"]
    waste = kv.get("waste") or {}
    wasted = sum(v for k, v in waste.items() if k != "token_states") if waste else None
    return [
        Figure("KV in use (mean)", kv["mean_utilization"], "percent", "",
               f"of {kv['num_gpu_blocks']:,} KV blocks"),
        Figure("KV waste", wasted, "percent", "lower",
               "held blocks not storing tokens: reservation and fragmentation"),
        Figure("Prefix cache hits", kv["prefix_cache_hit_rate"], "percent", "higher",
               "share of prompt tokens found in the cache"),
        Figure("Preemptions", kv["preemptions"], "count", "lower"),
        Figure("Batch size (mean)", summary["batch_size"]["mean"], "seqs", "",
               "sequences per engine step"),
        Figure("Rejected requests", requests["rejected"], "count", "lower",
               ", ".join(f"{k}: {v}" for k, v in requests["rejected_reasons"].items())
               or "none"),
    ]


def slo_lines(summary: dict) -> list[tuple[str, bool | None]]:
    """One (text, met) per SLO target the scenario sets, then the rejections against their
    limit (``sim.results.slo_verdict``: the same verdict as the CLI's)."""
    slo, lines = summary["slo"], []
    for key, label, figure in (("ttft_p95", "p95 TTFT", summary["ttft_ms"]["p95"]),
                               ("tpot_p95", "p95 TPOT", summary["tpot_ms"]["p95"]),
                               ("e2e_p99", "p99 E2E", summary["e2e_ms"]["p99"])):
        target = slo.get(f"{key}_ms")
        if target is not None:
            lines.append((f"{label} {format_value(figure, 'ms')} vs target "
                          f"{format_value(target, 'ms')}", slo.get(f"{key}_met")))
    if lines and "rejected_share" in slo:
        lines.append((f"{100 * slo['rejected_share']:.1f} % of requests rejected or unfinished "
                       f"vs at most {100 * slo['max_rejected_share']:g} %",
                       slo["rejections_met"]))
    return lines


def slo_banner(summary: dict) -> tuple[bool, str] | None:
    """(met, sentence) of the whole verdict, None when the scenario sets no SLO. A missed SLO
    names every miss, rejections included: fast replies to the few requests served are not a
    met SLO."""
    slo = summary["slo"]
    if slo.get("met") is None:
        return None
    if slo["met"]:
        return True, "SLO met: every target holds and at most " \
            f"{100 * slo['max_rejected_share']:g} % of requests were rejected."
    return False, "SLO missed: " + "; ".join(slo["reasons"]) + "."


def saturation_banner(summary: dict) -> str | None:
    """The warning for a run whose fleet fell behind its load, None when it kept up."""
    saturation = summary.get("saturation") or {}
    if saturation.get("kept_up") is not False:
        return None
    return (f"Overloaded: the fleet did not keep up with this load. When the last request "
            f"arrived, {100 * saturation['backlog_share']:.0f} % of the requests were still "
            f"waiting to start, and the queue took {format_value(1e3 * saturation['drain_s'], 'ms')}"
            " more to drain. Its latencies grow with the length of the window and say nothing "
            "about this rate; cost is billed until the queue drained. Lower the rate or add "
            "replicas, or find the highest sustainable rate below.")


def overloaded(summary: dict | None) -> bool:
    return bool(summary) and (summary.get("saturation") or {}).get("kept_up") is False


def price_note(summary: dict) -> str:
    """Where the price came from: "Price: $2.64 per GPU-hour, on-demand, from <source> (as of
    2026-11)", or your own figure from the scenario."""
    cost = summary["cost"]
    per_gpu = format_value(cost["usd_per_gpu_hour"], "usd")
    if cost["price_tier"] == "scenario":
        return f"Price: {per_gpu} per GPU-hour, your own (hardware.price_usd_per_hour)."
    tier = str(cost["price_tier"]).replace("_", "-")
    return (f"Price: {per_gpu} per GPU-hour, {tier}, from {cost['price_source']} "
            f"(as of {cost['price_as_of']}).")


def billing_note(summary: dict) -> str:
    """What the cost figures cover: the billed span and its basis, the drain as lag, and the
    share of the bill with GPUs stepping."""
    cost, saturation = summary["cost"], summary.get("saturation") or {}
    drain = saturation.get("drain_s")
    lag = (f"; the queue drained {format_value(1e3 * drain, 'ms')} after the last arrival "
           "(lag, not billed)" if drain and cost["billed_basis"] == "arrival window" else "")
    busy = cost.get("busy_usd")
    stepping = (f" · {format_value(busy, 'usd')} of {format_value(cost['usd_total'], 'usd')} "
                "with GPUs stepping" if busy is not None and cost["usd_total"] else "")
    return (f"Billed for {format_value(1e3 * cost['billed_s'], 'ms')} "
            f"({cost['billed_basis']}){lag}{stepping}.")


def profile_lines(summary: dict) -> list[str]:
    """Which latency profile produced the step times, and whether it was fitted to this setup:
    one line, or one per pool of a fleet."""
    if "pools" in summary:
        return [f"Pool **{name}**: " + _profile_text(pool["latency_profile"])
                for name, pool in summary["pools"].items()]
    return [_profile_text(summary["latency_profile"])]


def _profile_text(profile: dict) -> str:
    if profile["calibrated_for_this_configuration"]:
        match = ", ".join(f"{k}={v}" for k, v in profile["matched"].items())
        how = f"calibrated for this configuration ({match})"
    else:
        how = ("not calibrated for this configuration (no override fitted to it), so the "
               "profile's base coefficients apply")
    return f"step times from latency profile `{profile['name']}`, {how}."
