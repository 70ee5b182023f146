"""Human-readable rendering of a run summary (the CLI's table format)."""

from __future__ import annotations


def _fmt(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "-"
    if abs(value) >= 1e6:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


def _latency(ms: float | None) -> str:
    """Milliseconds, switching to seconds or hours where milliseconds get unreadable."""
    if ms is None:
        return "-"
    if ms >= 3.6e7:
        return f"{ms / 3.6e6:,.1f} h"
    if ms >= 1e5:
        return f"{ms / 1e3:,.1f} s"
    return f"{ms:,.1f}"


def _latency_rows(summary: dict) -> list[str]:
    head = f"  {'':<8}{'mean':>12}{'p50':>12}{'p90':>12}{'p95':>12}{'p99':>12}"
    rows = [head]
    for key, label in (("ttft_ms", "TTFT"), ("tpot_ms", "TPOT"), ("itl_ms", "ITL"),
                       ("e2e_ms", "E2E"), ("queue_ms", "queue")):
        d = summary[key]
        cells = "".join(f"{_latency(d[q]):>12}" for q in ("mean", "p50", "p90", "p95", "p99"))
        rows.append(f"  {label:<8}{cells}")
    return rows


def _profile_line(profile: dict) -> str:
    if profile.get("calibrated_for_this_configuration"):
        return f"{profile['name']} (fitted to measurements of this model, GPU and TP)"
    if profile.get("form") == "operators":
        return f"{profile['name']} (per-operator model trained across models)"
    return f"{profile['name']} (roofline, uncalibrated for this configuration)"


def _capacity_lines(capacity: dict | None) -> list[str]:
    """``servesim run --capacity``: the highest rate within the SLO, with its band."""
    if not capacity:
        return []
    rate = capacity["max_rate_per_s"]
    if rate is None:
        return [f"capacity   {capacity['message']}"]
    band = capacity["band"]
    ranged = (f" (band {band['low']:,.2f}-{band['high']:,.2f})" if band and band["low"]
              is not None and band["high"] is not None else " (no band)")
    return [f"capacity   {rate:,.2f} {capacity['rate_unit']} within the SLO{ranged}, limited "
            f"by {capacity['limited_by'].replace('_', ' ')}"]


def _prediction_lines(prediction: dict | None) -> list[str]:
    """Whether the configuration was in the latency model's training data, and the range the
    headline latencies may really fall in."""
    if not prediction:
        return []
    seen = prediction["in_training_data"]
    if isinstance(seen, dict):
        marks = ", ".join(f"{label} {'yes' if seen[key] else 'NO'}" for key, label in
                          (("model", "model"), ("gpu", "GPU"), ("tensor_parallel", "TP")))
        lines = [f"trust      in the latency model's training data: {marks}"]
    else:
        lines = []
    band = prediction["band"]
    if band is None:
        return lines + [f"           no error band: {prediction['band_basis']}"]
    ranges = []
    for metric, stat, label in (("ttft_ms", "p95", "p95 TTFT"), ("tpot_ms", "p95", "p95 TPOT"),
                                ("e2e_ms", "mean", "mean E2E")):
        r = band.get(metric, {}).get(stat)
        if r is not None:
            ranges.append(f"{label} {_range(r['low'], r['high'])}")
    return lines + [f"range      {'; '.join(ranges)} (from errors on runs the model was not "
                    "trained on)"]


def _range(low: float, high: float) -> str:
    """Both ends in the unit ``_latency`` picks for the larger one."""
    for scale, unit, above in ((3.6e6, "h", 3.6e7), (1e3, "s", 1e5)):
        if high >= above:
            return f"{low / scale:,.1f}-{high / scale:,.1f} {unit}"
    return f"{low:,.1f}-{high:,.1f} ms"


def _engine_line(engine: dict) -> str:
    parts = [engine["scheduler"], f"{engine['kv_allocation']} KV"]
    if "batch_size" in engine:
        parts.append(f"batches of {engine['batch_size']}, timeout {_fmt(engine['batch_timeout_ms'])} ms")
        if engine["preferred_batch_sizes"]:
            parts.append("preferred " + "/".join(map(str, engine["preferred_batch_sizes"])))
    else:
        parts.append(f"{engine['max_num_seqs']} seqs, {engine['max_num_batched_tokens']:,} "
                     "tokens per step")
    parts.append("prefix caching" if engine["prefix_caching"] else "no prefix caching")
    if "vllm_version" in engine:
        mode = "async" if engine["async_scheduling"] else "sync"
        graphs = f"CUDA graphs {engine['cuda_graphs']}" if engine["cuda_graphs"] else "eager"
        parts.append(f"as vLLM {engine['vllm_version']} ({mode}, {graphs})")
    return ", ".join(parts)


def _gateway_lines(gateway: dict | None) -> list[str]:
    if gateway is None:
        return []
    return [f"gateway    window {_fmt(gateway['window_ms'])} ms, groups of up to "
            f"{gateway['max_batch']} (mean {_fmt(gateway['mean_group_size'])}), "
            f"held {_fmt(gateway['hold_ms']['mean'])} ms on average, "
            f"at most {_fmt(gateway['max_hold_ms'])} ms"]


def _endpoint_rows(by_endpoint: dict | None) -> list[str]:
    if not by_endpoint:
        return []
    rows = [f"  {'by endpoint':<16}{'completed':>12}{'TTFT p95':>12}{'TPOT p95':>12}"
                f"{'E2E p95':>12}"]
    for name, e in by_endpoint.items():
        cells = "".join(f"{_latency(e[key]['p95']):>12}" for key in ("ttft_ms", "tpot_ms", "e2e_ms"))
        rows.append(f"  {name[:16]:<16}{e['completed']:>12,}{cells}")
    return rows


def _turn_lines(by_turn: dict | None, shown: int = 6) -> list[str]:
    """Prefix hit rate per conversation turn, the first few and the last (long talks)."""
    if not by_turn:
        return []
    turns = list(by_turn)
    picked = turns if len(turns) <= shown else [*turns[:shown - 1], turns[-1]]
    cells = [f"{turn}: {100 * by_turn[turn]:.0f} %" for turn in picked]
    if len(picked) < len(turns):
        cells.insert(shown - 1, "...")
    return ["           hit rate by turn " + ", ".join(cells)]


def _waste_line(waste: dict) -> str:
    if waste["token_states"] is None:
        return "no memory held at a step's end"
    labels = {"token_states": "token states", "reservation": "reserved ahead",
              "internal_fragmentation": "internal frag.", "external_fragmentation": "external frag."}
    return ", ".join(f"{labels[k]} {100 * v:.1f} %" for k, v in waste.items())


def _slo_lines(slo: dict, good: dict) -> list[str]:
    """The verdict (met or MISSED, with each miss), and goodput; nothing without an SLO."""
    if slo.get("met") is None:
        return []
    verdict = "met" if slo["met"] else "MISSED: " + "; ".join(slo["reasons"])
    targets = [f"p95 TTFT <= {_fmt(slo['ttft_p95_ms'], 0)} ms" if slo["ttft_p95_ms"] else None,
               f"p95 TPOT <= {_fmt(slo['tpot_p95_ms'], 0)} ms" if slo["tpot_p95_ms"] else None,
               f"p99 E2E <= {_fmt(slo['e2e_p99_ms'], 0)} ms" if slo.get("e2e_p99_ms") else None,
               f"<= {100 * slo['max_rejected_share']:g} % rejected"]
    return [f"SLO        {', '.join(t for t in targets if t)}: {verdict}",
            f"goodput    {_fmt(good['requests_per_s'], 2)} req/s "
            f"({_fmt(100 * (good['fraction_meeting_slo'] or 0), 1)} % of requests served "
            "within the SLO)"]


def _saturation_lines(saturation: dict | None) -> list[str]:
    """OVERLOADED when the fleet fell behind; how long its queue took to drain."""
    if saturation is None or saturation["kept_up"] is None:
        return []
    drain = f"queue drained {_fmt(saturation['drain_s'])} s after the last arrival"
    if saturation["kept_up"]:
        return [f"load       kept up: {drain}"]
    return [f"load       OVERLOADED: {100 * saturation['backlog_share']:.0f} % of the requests "
            f"were still waiting to start at the last arrival (above "
            f"{100 * saturation['max_backlog_share']:.0f} %); latencies grow with the window "
            f"and say nothing about this rate; {drain}"]


def format_table(summary: dict) -> str:
    req, thr, kv, cost = summary["requests"], summary["throughput"], summary["kv"], summary["cost"]
    slo, good = summary["slo"], summary["goodput"]
    lines = [
        *(_fleet_head(summary) if "pools" in summary else _pool_head(summary)),
        "",
        f"requests   {req['completed']:,} completed of {req['arrived']:,} arrived, "
        f"{req['rejected']:,} rejected{_reasons(req['rejected_reasons'])}, "
        f"{req['truncated_outputs']:,} outputs truncated",
        f"simulated  {_fmt(summary['duration_s'])} s in {summary['wall_s']:.2f} s wall",
        "",
        "latency (ms unless marked)" + (", streamed: percentiles within 0.05 %"
                                        if "percentiles" in summary else ""),
        *_latency_rows(summary),
        *_prediction_lines(summary.get("prediction")),
        "",
        *_endpoint_rows(summary.get("by_endpoint")),
        "",
        f"throughput {_fmt(thr['requests_per_s'], 2)} req/s, "
        f"{_fmt(thr['input_tokens_per_s'], 0)} input tok/s, "
        f"{_fmt(thr['output_tokens_per_s'], 0)} output tok/s",
    ]
    lines += _slo_lines(slo, good)
    lines += _saturation_lines(summary.get("saturation"))
    lines += _capacity_lines(summary.get("capacity"))
    batch = summary["batch_size"]
    blocks = (f"{kv['num_gpu_blocks']:,} blocks x {kv['block_size']} tokens"
              if "block_size" in kv else f"{kv['num_gpu_blocks']:,} blocks in all pools")
    lines += [
        f"KV cache   {blocks}, "
        f"mean use {100 * kv['mean_utilization']:.1f} %, {kv['preemptions']:,} preemptions, "
        f"prefix hit rate {100 * kv['prefix_cache_hit_rate']:.1f} %",
        *_turn_lines(kv.get("prefix_cache_hit_rate_by_turn")),
        f"KV waste   {_waste_line(kv['waste'])}",
        f"batch      mean {_fmt(batch['mean'])} sequences, p99 {_fmt(batch['p99'], 0)}; "
        f"replicas busy {100 * summary['replica_busy_fraction']:.1f} % of the time",
        "",
        f"cost       {cost['gpus']} GPU(s) x ${cost['usd_per_gpu_hour']:.2f}/h = "
        f"${cost['usd_per_hour']:.2f}/h ({cost['price_tier']}, {cost['price_as_of'] or 'scenario'})",
        f"           ${_fmt(cost['usd_total'], 2)} for {_fmt(cost['billed_s'])} s billed "
        f"({cost['billed_basis']}), ${_fmt(cost['busy_usd'], 2)} of it with GPUs stepping",
        f"           "
        f"${_fmt(cost['usd_per_million_output_tokens'], 3)} per 1M output tokens, "
        f"{_fmt(cost['output_tokens_per_usd'], 0)} output tokens per $",
        f"           ${_fmt(cost['monthly_usd'], 0)} per month for this fleet",
        *_quality_lines(summary.get("quality")),
    ]
    return "\n".join(lines)


def _pool_head(summary: dict) -> list[str]:
    return [
        f"{summary['scenario']}: {summary['model']} on {summary['replicas']} x "
        f"{summary['gpu']} (TP {summary['tensor_parallel']}, {summary['weight_dtype']}), "
        f"seed {summary['seed']}",
        f"latency profile: {_profile_line(summary['latency_profile'])}",
        f"engine     {_engine_line(summary['engine'])}",
        *_gateway_lines(summary.get("gateway")),
    ]


def _fleet_head(summary: dict) -> list[str]:
    """The fleet in one line, then a line per pool with its share, latency, cost and profile."""
    pools = summary["pools"]
    lines = [f"{summary['scenario']}: a fleet of {len(pools)} pools, {summary['replicas']} "
             f"replicas, {summary['cost']['gpus']} GPUs, seed {summary['seed']}",
             f"  {'pool':<12}{'serves':>8}  {'replicas x GPU (TP, weights)':<36}{'TTFT p95':>10}"
             f"{'TPOT p95':>10}{'$/hour':>10}  model, latency profile"]
    for name, pool in pools.items():
        hardware = (f"{pool['replicas']} x {pool['gpu']} (TP {pool['tensor_parallel']}, "
                    f"{pool['weight_dtype']})")
        lines.append(
            f"  {name[:12]:<12}{100 * pool['share_of_requests']:>7.1f}%  {hardware:<36}"
            f"{_latency(pool['ttft_ms']['p95']):>10}{_latency(pool['tpot_ms']['p95']):>10}"
            f"{pool['cost']['usd_per_hour']:>10.2f}  {pool['model']}, "
            f"{_profile_line(pool['latency_profile'])}"
        )
    return lines


def _reasons(reasons: dict) -> str:
    if not reasons:
        return ""
    return " (" + ", ".join(f"{count:,} {reason.replace('_', ' ')}"
                            for reason, count in reasons.items()) + ")"


def _quality_lines(quality: dict | None) -> list[str]:
    """The accuracy the weight format keeps, beside the cost, so cheaper never hides worse."""
    if not quality:
        return []
    lines = []
    for entry in quality.values():
        if entry["percent"] is None:
            figure = "no published accuracy figure"
        else:
            figure = f"{entry['percent']:.1f} % of the unquantized model's score"
        lines.append(f"quality    {entry['model']} {entry['weight_dtype']}: {figure} "
                     f"({entry['basis']}{'' if entry['exact_model'] else ', borrowed'})")
    return lines
