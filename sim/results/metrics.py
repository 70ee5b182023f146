"""Latency, throughput and utilisation figures computed from a run's records and step log."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sim.fleet.simulation import SimulationResult

QUANTILES = {"p50": 50, "p90": 90, "p95": 95, "p99": 99}


def distribution_ms(values_s: np.ndarray | pd.Series) -> dict[str, float | None]:
    """Mean and percentiles, in milliseconds, of values given in seconds (NaN ignored)."""
    values = np.asarray(values_s, dtype=np.float64)
    values = values[~np.isnan(values)]
    if values.size == 0:
        return {"mean": None, **{k: None for k in QUANTILES}}
    points = np.percentile(values, list(QUANTILES.values()))
    return {"mean": float(values.mean() * 1e3)} | {
        k: float(v * 1e3) for k, v in zip(QUANTILES, points)
    }


def weighted_distribution_ms(values_s: np.ndarray, weights: np.ndarray) -> dict[str, float | None]:
    """Like ``distribution_ms`` for samples that stand for ``weights`` observations each."""
    if values_s.size == 0 or weights.sum() == 0:
        return {"mean": None, **{k: None for k in QUANTILES}}
    order = np.argsort(values_s, kind="stable")
    values, w = values_s[order], weights[order]
    cumulative = np.cumsum(w)
    total = cumulative[-1]
    out = {"mean": float(np.dot(values, w) / total * 1e3)}
    for name, q in QUANTILES.items():
        index = int(np.searchsorted(cumulative, q / 100 * total, side="left"))
        out[name] = float(values[min(index, len(values) - 1)] * 1e3)
    return out


def makespan_s(records: pd.DataFrame) -> float:
    """Simulated span from t=0 to the last finish."""
    finished = records["finish_s"].dropna()
    return float(finished.max()) if len(finished) else 0.0


def throughput(completed: pd.DataFrame, duration_s: float) -> dict[str, float]:
    if duration_s <= 0:
        return {"requests_per_s": 0.0, "input_tokens_per_s": 0.0, "output_tokens_per_s": 0.0}
    return {
        "requests_per_s": len(completed) / duration_s,
        "input_tokens_per_s": float(completed["prompt_tokens"].sum()) / duration_s,
        "output_tokens_per_s": float(completed["output_tokens"].sum()) / duration_s,
    }


def goodput(completed: pd.DataFrame, arrived: int, duration_s: float, ttft_ms: float | None,
            tpot_ms: float | None) -> dict[str, float | None]:
    """Requests per second that met every per-request SLO given (DistServe's goodput).

    The fraction is of all arrived requests: a rejected request did not meet its SLO.
    """
    if ttft_ms is None and tpot_ms is None:
        return {"requests_per_s": None, "fraction_meeting_slo": None}
    ok = np.ones(len(completed), dtype=bool)
    if ttft_ms is not None:
        ok &= completed["ttft_s"].to_numpy() * 1e3 <= ttft_ms
    if tpot_ms is not None:
        tpot = completed["tpot_s"].to_numpy() * 1e3
        ok &= np.isnan(tpot) | (tpot <= tpot_ms)  # single-token outputs have no TPOT
    count = int(ok.sum())
    return {
        "requests_per_s": count / duration_s if duration_s > 0 else 0.0,
        "fraction_meeting_slo": count / arrived if arrived else None,
    }


def kv_mean_utilization(result: SimulationResult, duration_s: float) -> float:
    """Time-weighted share of KV blocks in use, over all replicas and the whole run."""
    steps = result.steps
    if duration_s <= 0 or steps.empty:
        return 0.0
    used = (steps["kv_used_start"] + steps["kv_used_end"]) / 2
    block_seconds = float((used * steps["duration_s"]).sum())
    return block_seconds / (result.num_gpu_blocks * result.replicas * duration_s)


def batch_size_distribution(steps: pd.DataFrame) -> dict[str, float | None]:
    """Sequences per step (prefilling and decoding), over every step."""
    if steps.empty:
        return {"mean": None, **{k: None for k in QUANTILES}}
    sizes = (steps["decode_seqs"] + steps["prefill_seqs"]).to_numpy(dtype=np.float64)
    counts = steps["num_steps"].to_numpy(dtype=np.float64)
    dist = weighted_distribution_ms(sizes, counts)
    return {k: (v / 1e3 if v is not None else None) for k, v in dist.items()}


MAX_ENDPOINTS_REPORTED = 50  # beyond this the split would drown the summary


def by_endpoint(records: pd.DataFrame) -> dict[str, dict] | None:
    """Latency and volume per endpoint (request class), when the workload has them.

    None when no request carries an endpoint, or when there are more than
    ``MAX_ENDPOINTS_REPORTED`` distinct ones.
    """
    if "endpoint" not in records or records["endpoint"].isna().all():
        return None
    groups = records.groupby(records["endpoint"].fillna("(none)"), sort=True)
    if groups.ngroups > MAX_ENDPOINTS_REPORTED:
        return None
    out = {}
    for name, group in groups:
        completed = group[group["status"] == "completed"]
        out[str(name)] = {
            "arrived": len(group),
            "completed": len(completed),
            "output_tokens": int(completed["output_tokens"].sum()),
            "ttft_ms": distribution_ms(completed["ttft_s"]),
            "tpot_ms": distribution_ms(completed["tpot_s"]),
            "e2e_ms": distribution_ms(completed["e2e_s"]),
        }
    return out


def hit_rate_by_turn(records: pd.DataFrame) -> dict[str, float] | None:
    """Per conversation turn ("1", "2", ...), the share of its completed requests' prompt
    tokens served from the prefix cache at first admission; None without conversations.

    Keys are strings so that the summary reads back the same from JSON.
    """
    if "turn" not in records:
        return None
    turns = records[(records["turn"] >= 1) & (records["status"] == "completed")]
    if turns.empty:
        return None
    sums = turns.groupby("turn")[["cached_tokens", "prompt_tokens"]].sum()
    return {str(turn): float(row.cached_tokens / row.prompt_tokens)
            for turn, row in sums.iterrows()}
