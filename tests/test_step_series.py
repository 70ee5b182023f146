"""Closed-form decode runs against brute force."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.batch import Batch
from sim.step_log import StepLog
from sim.step_series import StepSeries

coef = st.floats(0, 0.01, allow_nan=False)
slope = st.floats(0, 1e-4, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(coef, coef, slope, coef, slope, st.integers(1, 400), st.floats(0, 1.2))
def test_pieces_totals_and_cuts_match_brute_force(fixed, a1, b1, a2, b2, count, share) -> None:
    series = StepSeries.of_lines(fixed + 1e-4, a1, b1, a2, b2, count)
    i = np.arange(count)
    brute = fixed + 1e-4 + np.maximum(a1 + b1 * i, a2 + b2 * i)
    np.testing.assert_allclose(series.durations(), brute, rtol=1e-9, atol=1e-15)
    assert series.num_steps == count
    assert abs(series.total - brute.sum()) <= 1e-9 * brute.sum()
    ends = np.cumsum(brute)
    starts = ends - brute
    elapsed = share * ends[-1]
    if np.min(np.abs(ends - elapsed)) > 1e-9 and np.min(np.abs(starts - elapsed)) > 1e-9:
        assert series.steps_started_before(elapsed) == int((starts < elapsed).sum())
    cut, total = series.prefix(max(1, count // 2))
    assert cut.num_steps == max(1, count // 2)
    assert abs(total - brute[: cut.num_steps].sum()) <= 1e-9 * brute.sum()


def test_step_log_expands_decode_runs_into_weighted_itl_samples() -> None:
    log = StepLog()
    series = StepSeries.of_lines(0.001, 0.002, 0.0001, 0.0, 0.0, 3)
    log.add(0.0, series, 3, Batch(decode_seqs=4, decode_context_tokens=40), 0,
            (0, 0, 0, 0, 0))
    log.add(1.0, 0.05, 1, Batch(prefill_tokens=100, prefill_seqs=1), 0, (0, 0, 0, 0, 0))
    log.add(2.0, 0.02, 1, Batch(prefill_tokens=10, prefill_seqs=1, decode_seqs=2), 0,
            (0, 0, 0, 0, 0))
    durations, weights = log.itl_samples()
    np.testing.assert_allclose(durations, [0.003, 0.0031, 0.0032, 0.02])
    np.testing.assert_array_equal(weights, [4, 4, 4, 2])
    frame = log.frame()
    assert frame["num_steps"].tolist() == [3, 1, 1]
    assert frame["duration_s"].iloc[0] == series.total
