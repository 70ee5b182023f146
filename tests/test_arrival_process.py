"""Arrival processes: exact where the process is deterministic, close to theory where random."""

from __future__ import annotations


import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.workload.arrival_process import arrival_times, staged_arrival_times
from sim.workload.workload_spec import ArrivalsSpec, StageSpec

N = 100_000


def rng(seed: int = 7) -> np.random.Generator:
    return np.random.default_rng(seed)


def cv(values: np.ndarray) -> float:
    return float(np.std(values) / np.mean(values))


@pytest.mark.parametrize(
    "arrivals",
    [
        ArrivalsSpec(process="poisson", rate_per_s=3),
        ArrivalsSpec(process="gamma", rate_per_s=3, cv=2),
    ],
)
def test_same_seed_same_times(arrivals: ArrivalsSpec) -> None:
    first = arrival_times(arrivals, rng(1), duration_s=100)
    np.testing.assert_array_equal(first, arrival_times(arrivals, rng(1), duration_s=100))
    assert not np.array_equal(first, arrival_times(arrivals, rng(2), duration_s=100))


def test_poisson_gaps_are_exponential_with_mean_one_over_rate() -> None:
    times = arrival_times(ArrivalsSpec(rate_per_s=4.0), rng(), num_requests=N)
    gaps = np.diff(times, prepend=0.0)
    # Standard errors over 100k gaps: ~0.3% for the mean, ~0.5% for the CV.
    assert np.mean(gaps) == pytest.approx(0.25, rel=0.015)
    assert cv(gaps) == pytest.approx(1.0, rel=0.025)


@pytest.mark.parametrize("target_cv", [0.5, 2.0, 4.0])
def test_gamma_gaps_have_the_requested_cv(target_cv: float) -> None:
    arrivals = ArrivalsSpec(process="gamma", rate_per_s=2.0, cv=target_cv)
    gaps = np.diff(arrival_times(arrivals, rng(), num_requests=N), prepend=0.0)
    assert np.mean(gaps) == pytest.approx(0.5, rel=0.05)
    assert cv(gaps) == pytest.approx(target_cv, rel=0.06)


def test_constant_arrivals_are_exactly_one_over_rate_apart_from_zero() -> None:
    times = arrival_times(ArrivalsSpec(process="constant", rate_per_s=4), rng(), num_requests=5)
    assert times.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    within = arrival_times(ArrivalsSpec(process="constant", rate_per_s=2), rng(), duration_s=3)
    assert within.tolist() == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]


def test_all_at_once_puts_every_request_at_zero() -> None:
    times = arrival_times(ArrivalsSpec(process="all_at_once"), rng(), num_requests=7)
    assert times.dtype == np.float64
    assert times.tolist() == [0.0] * 7


def test_duration_bounds_time_and_num_requests_caps_count() -> None:
    poisson = ArrivalsSpec(rate_per_s=10)
    assert len(arrival_times(poisson, rng(), duration_s=1000, num_requests=25)) == 25
    times = arrival_times(poisson, rng(), duration_s=1000)
    assert times.max() < 1000
    assert len(times) == pytest.approx(10_000, abs=5 * np.sqrt(10_000))


def test_stages_run_each_rate_for_its_duration() -> None:
    stages = [
        StageSpec(rate_per_s=2, duration_s=2000),
        StageSpec(rate_per_s=0, duration_s=500),
        StageSpec(rate_per_s=8, duration_s=1000),
    ]
    times = staged_arrival_times(stages, rng())
    counts, _ = np.histogram(times, bins=[0, 2000, 2500, 3500])
    assert counts[0] == pytest.approx(4000, abs=5 * np.sqrt(4000))
    assert counts[1] == 0
    assert counts[2] == pytest.approx(8000, abs=5 * np.sqrt(8000))
    assert np.all(np.diff(times) >= 0)


def test_stages_use_the_chosen_process_and_stop_at_num_requests() -> None:
    stages = [StageSpec(rate_per_s=1, duration_s=3), StageSpec(rate_per_s=2, duration_s=2)]
    constant = ArrivalsSpec(process="constant")
    times = staged_arrival_times(stages, rng(), arrivals=constant)
    assert times.tolist() == [0.0, 1.0, 2.0, 3.0, 3.5, 4.0, 4.5]
    capped = staged_arrival_times(stages, rng(), arrivals=constant, num_requests=4)
    assert capped.tolist() == [0.0, 1.0, 2.0, 3.0]


def test_an_hour_at_5_5_per_s_has_about_19800_arrivals() -> None:
    times = arrival_times(ArrivalsSpec(rate_per_s=5.5), rng(), duration_s=3600)
    assert len(times) == pytest.approx(19_800, abs=5 * np.sqrt(19_800))


@settings(max_examples=60, deadline=None)
@given(
    process=st.sampled_from(["poisson", "constant", "gamma"]),
    rate=st.floats(0.01, 200),
    duration=st.floats(0.1, 500),
    seed=st.integers(0, 2**32 - 1),
)
def test_times_are_sorted_and_inside_the_duration(
    process: str, rate: float, duration: float, seed: int
) -> None:
    arrivals = ArrivalsSpec(
        process=process, rate_per_s=rate, cv=1.5 if process == "gamma" else None  # type: ignore[arg-type]
    )
    times = arrival_times(arrivals, rng(seed), duration_s=duration)
    assert times.dtype == np.float64
    assert np.all(np.diff(times) >= 0)
    assert np.all((times >= 0) & (times < duration))
