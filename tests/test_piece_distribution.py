"""Inter-token latency figures from linear pieces equal those of listing every step."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.engine.step_log import expand_pieces
from sim.results import piece_distribution
from sim.results.metrics import QUANTILES, weighted_distribution_ms
from sim.results.piece_distribution import piece_distribution_ms

QS = {**QUANTILES, "p1": 1, "p999": 99.9, "p100": 100}

piece = st.tuples(
    st.floats(1e-4, 0.2),  # first duration
    st.one_of(st.just(0.0), st.floats(1e-9, 1e-4), st.floats(-1e-5, -1e-9)),  # slope
    st.integers(1, 400),  # steps
    st.integers(0, 300),  # sequences decoding (0: a step that gave nobody a token)
)


def _check(pieces: np.ndarray) -> None:
    durations, weights = expand_pieces(pieces)
    expected = weighted_distribution_ms(durations, weights)
    for name, q in QS.items():  # the metrics' own quantiles and the extremes
        if name not in expected:
            expected |= {name: _expected_quantile(durations, weights, q)}
    got = piece_distribution_ms(pieces, QS)
    for name in QS:
        assert got[name] == expected[name], name  # exactly: the same float64 durations
    if expected["mean"] is not None:
        assert got["mean"] == pytest.approx(expected["mean"], rel=1e-12)


def _expected_quantile(durations: np.ndarray, weights: np.ndarray, q: float) -> float | None:
    if weights.sum() == 0:
        return None
    order = np.argsort(durations, kind="stable")
    cumulative = np.cumsum(weights[order])
    index = int(np.searchsorted(cumulative, q / 100 * cumulative[-1], side="left"))
    return float(durations[order][min(index, len(order) - 1)] * 1e3)


@settings(max_examples=200, deadline=None)
@given(st.lists(piece, min_size=0, max_size=40))
def test_figures_equal_listing_every_step(rows) -> None:
    _check(np.array(rows, dtype=np.float64).reshape(-1, 4))


@settings(max_examples=20, deadline=None)
@given(st.lists(piece, min_size=1, max_size=40))
def test_bisection_path_equals_listing_too(rows) -> None:
    """With a tiny listing threshold every percentile goes through the bisection."""
    original = piece_distribution.LIST_AT_MOST
    piece_distribution.LIST_AT_MOST = 3
    try:
        _check(np.array(rows, dtype=np.float64).reshape(-1, 4))
    finally:
        piece_distribution.LIST_AT_MOST = original


def test_a_long_run_is_summarised_without_listing_its_steps() -> None:
    rng = np.random.default_rng(1)
    n = 5_000
    pieces = np.column_stack([rng.uniform(0.005, 0.02, n), rng.uniform(0, 2e-6, n),
                              rng.integers(1, 400, n), rng.integers(1, 256, n)]).astype(float)
    _check(pieces)
