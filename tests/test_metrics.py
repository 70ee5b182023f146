"""Percentiles and summaries."""

from __future__ import annotations

import numpy as np
import pytest

from sim.config.price import FleetPrice
from sim.results.cost import cost_summary
from sim.results.metrics import distribution_ms, weighted_distribution_ms


def test_distribution_in_ms_ignores_nan() -> None:
    d = distribution_ms(np.array([0.001, 0.002, np.nan, 0.003]))
    assert d["mean"] == pytest.approx(2.0)
    assert d["p50"] == pytest.approx(2.0)
    assert distribution_ms(np.array([]))["p99"] is None


def test_weighted_percentiles_equal_repeating_the_samples() -> None:
    rng = np.random.default_rng(0)
    values = rng.uniform(0, 1, 200)
    weights = rng.integers(1, 6, 200)
    repeated = np.repeat(values, weights)
    w = weighted_distribution_ms(values, weights.astype(float))
    assert w["mean"] == pytest.approx(repeated.mean() * 1e3)
    for q, name in ((50, "p50"), (90, "p90"), (99, "p99")):
        assert w[name] == pytest.approx(np.percentile(repeated, q, method="inverted_cdf") * 1e3)


def test_cost_per_token_and_monthly_bill() -> None:
    price = FleetPrice(gpus=4, usd_per_gpu_hour=2.5, tier="on_demand", source="t", as_of="2026")
    cost = cost_summary(price, (1800.0, "arrival window"), output_tokens=2_000_000,
                        total_tokens=5_000_000, busy_usd=3.0)
    assert cost["busy_usd"] == 3.0 and cost["billed_s"] == 1800.0
    assert cost["usd_per_hour"] == 10.0
    assert cost["usd_total"] == pytest.approx(5.0)
    assert cost["gpu_hours"] == pytest.approx(2.0)
    assert cost["usd_per_million_output_tokens"] == pytest.approx(2.5)
    assert cost["output_tokens_per_usd"] == pytest.approx(400_000)
    assert cost["monthly_usd"] == pytest.approx(7300)
