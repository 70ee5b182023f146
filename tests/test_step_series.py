"""Closed-form decode runs against brute force."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.engine.batch import Batch
from sim.engine.step_log import StepLog
from sim.engine.step_series import StepSeries

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
    _check_steps_started(series, brute, share)
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


lines = st.lists(st.tuples(coef, slope), min_size=1, max_size=4)


@settings(max_examples=400, deadline=None)
@given(coef, lines, st.integers(0, 400), st.floats(0, 1.2), st.floats(0, 1))
def test_upper_envelope_of_any_lines_matches_brute_force(offset, lines, count, share,
                                                         cut_share) -> None:
    series = StepSeries.upper_envelope(offset + 1e-4, lines, count)
    i = np.arange(count)
    brute = offset + 1e-4 + np.max([a + b * i for a, b in lines], axis=0, initial=-np.inf)
    assert len(series.pieces) <= len(lines)
    assert series.num_steps == count == sum(p.count for p in series.pieces)
    if count == 0:
        assert series.total == 0
        return
    np.testing.assert_allclose(series.durations(), brute, rtol=1e-9, atol=1e-15)
    assert abs(series.total - brute.sum()) <= 1e-9 * brute.sum()
    _check_steps_started(series, brute, share)
    steps = int(cut_share * count)
    cut, total = series.prefix(steps)
    assert cut.num_steps == steps
    assert abs(total - brute[:steps].sum()) <= 1e-9 * brute.sum()
    np.testing.assert_allclose(cut.durations() if steps else [], brute[:steps], rtol=1e-9,
                               atol=1e-15)


@settings(max_examples=200, deadline=None)
@given(coef, coef, slope, coef, slope, st.integers(1, 400))
def test_of_lines_is_the_upper_envelope_of_its_two_lines(fixed, a1, b1, a2, b2, count) -> None:
    two = StepSeries.of_lines(fixed, a1, b1, a2, b2, count)
    general = StepSeries.upper_envelope(fixed, ((a1, b1), (a2, b2)), count)
    np.testing.assert_allclose(two.durations(), general.durations(), rtol=1e-12, atol=1e-18)
    assert two.total == general.total or abs(two.total - general.total) <= 1e-12 * two.total


def test_a_constant_line_between_two_rising_ones_gives_three_pieces() -> None:
    #   i          0  1  2  3  4  5  6  7  8  9 10 11
    #   host       5  5  5  5  5  5  5  5  5  5  5  5
    #   memory     2  3  4  5  6  7  8  9 10 11 12 13
    #   compute   -6 -4 -2  0  2  4  6  8 10 12 14 16
    # a tie goes to the steeper line: memory from i = 3, compute from i = 8; offset 1
    series = StepSeries.upper_envelope(1.0, [(5.0, 0.0), (2.0, 1.0), (-6.0, 2.0)], 12)
    assert series.pieces == (
        (6.0, 0.0, 3), (1.0 + 2.0 + 3.0, 1.0, 5), (1.0 - 6.0 + 16.0, 2.0, 4))
    assert series.durations().tolist() == [6, 6, 6, 6, 7, 8, 9, 10, 11, 13, 15, 17]


def test_a_step_then_a_series_adds_up() -> None:
    rest = StepSeries.of_lines(0.001, 0.002, 1e-5, 0.0, 0.0, 5)
    series = StepSeries.after_step(0.004, rest)
    assert series.num_steps == 6
    assert series.durations().tolist() == pytest.approx([0.004, *rest.durations().tolist()])
    assert series.total == pytest.approx(float(series.durations().sum()))


def _check_steps_started(series: StepSeries, brute: np.ndarray, share: float) -> None:
    """``steps_started_before`` at a share of the run counts the steps begun by then (points
    within float noise of a step boundary are skipped: either answer is right there)."""
    ends = np.cumsum(brute)
    starts = ends - brute
    elapsed = share * ends[-1]
    if np.min(np.abs(ends - elapsed)) > 1e-9 and np.min(np.abs(starts - elapsed)) > 1e-9:
        assert series.steps_started_before(elapsed) == int((starts < elapsed).sum())
