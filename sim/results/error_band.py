"""The range a prediction's latencies may really fall in, from how far off the model was on
runs it was not trained on.

A trained latency profile carries, per latency figure, a low and a high factor: the spread of
measured / predicted over its leave-one-model-out predictions (``benchmarks/leave_one_model_out.py``
writes them). A prediction of 120 ms with factors (0.9, 1.2) is reported as 108-144 ms. A GPU
that was not in the training data gets the wider ``unseen_gpu`` factors. Profiles without the
section (hand-set, or fitted to one configuration) have no band, and the summary says why.

    error_band:
      basis: what the factors were measured on
      seen_gpu:   {ttft_ms: {mean: [low, high], p95: [...], p99: [...]}, tpot_ms: ..., ...}
      unseen_gpu: {...}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sim.engine.errors import ScenarioError

METRICS = ("ttft_ms", "tpot_ms", "itl_ms", "e2e_ms")
STATS = ("mean", "p95", "p99")
ENDS = ("predicted", "pessimistic", "optimistic")


@dataclass(frozen=True, slots=True)
class ErrorBand:
    """Multiplicative low/high factors per latency figure, and what they rest on."""

    basis: str
    factors: Mapping[str, Mapping[str, tuple[float, float]]]  # metric -> stat -> (low, high)

    def ranges(self, figures: Mapping[str, Mapping[str, float | None]]) -> dict:
        """``{metric: {stat: {"low": ms, "high": ms}}}`` for the figures a summary has."""
        out: dict = {}
        for metric, stats in self.factors.items():
            values = figures.get(metric) or {}
            for stat, (low, high) in stats.items():
                value = values.get(stat)
                if value is not None:
                    out.setdefault(metric, {})[stat] = {"low": value * low, "high": value * high}
        return out

    @classmethod
    def widest(cls, bands: list[ErrorBand]) -> ErrorBand:
        """One band covering several (a fleet's pools): the widest factors of each figure."""
        factors: dict[str, dict[str, tuple[float, float]]] = {}
        for band in bands:
            for metric, stats in band.factors.items():
                for stat, (low, high) in stats.items():
                    old_low, old_high = factors.setdefault(metric, {}).get(stat, (1.0, 1.0))
                    factors[metric][stat] = (min(low, old_low), max(high, old_high))
        return cls("; ".join(dict.fromkeys(b.basis for b in bands)), factors)

    def at_end(self, metric: str, stat: str, value: float | None, end: str) -> float | None:
        """``value`` moved to one end of the band: ``pessimistic`` is the slow end (the
        larger latency), ``optimistic`` the fast end, ``predicted`` the value itself."""
        if value is None or end == "predicted":
            return value
        low, high = self.factors.get(metric, {}).get(stat, (1.0, 1.0))
        return value * (high if end == "pessimistic" else low)


def band_from_section(section: Mapping, gpu_seen: bool, where: str) -> ErrorBand | None:
    """The band a profile's ``error_band`` section gives for a GPU seen in training or not."""
    if not section:
        return None
    key = "seen_gpu" if gpu_seen else "unseen_gpu"
    table = section.get(key)
    if not isinstance(table, Mapping):
        raise ScenarioError(f"{where}: error_band needs a {key} mapping of metric -> stat -> "
                            f"[low, high]")
    factors: dict[str, dict[str, tuple[float, float]]] = {}
    for metric, stats in table.items():
        if metric not in METRICS or not isinstance(stats, Mapping):
            raise ScenarioError(f"{where}: error_band.{key}.{metric}: expected one of "
                                f"{list(METRICS)} with a mapping of {list(STATS)}")
        for stat, pair in stats.items():
            factors.setdefault(metric, {})[stat] = _factor_pair(pair, f"{where}: error_band."
                                                                      f"{key}.{metric}.{stat}")
    basis = str(section.get("basis", ""))
    if not gpu_seen:
        basis += " (widened: this GPU was not in the training data)"
    return ErrorBand(basis, factors)


def _factor_pair(pair: object, where: str) -> tuple[float, float]:
    ok = (isinstance(pair, (list, tuple)) and len(pair) == 2
          and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in pair))
    if not ok or not 0 < pair[0] <= 1 <= pair[1] < float("inf"):
        raise ScenarioError(f"{where}: expected [low, high] with 0 < low <= 1 <= high, "
                            f"got {str(pair)[:60]}")
    return float(pair[0]), float(pair[1])
