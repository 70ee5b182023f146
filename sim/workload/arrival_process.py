"""Arrival times of requests, in seconds from the start of the run, sorted.

    poisson      exponential gaps, mean 1/rate (the first arrival is one gap after 0)
    gamma        gamma gaps, mean 1/rate, coefficient of variation cv (cv > 1 is bursty)
    constant     gaps of exactly 1/rate, the first arrival at 0
    all_at_once  every request at 0
    closed_loop  0 here: the engine sends each request when a client's previous reply ends

Times are drawn as whole numpy arrays, never one request at a time: an hour of traffic is a
few vectorized calls.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sim.workload.workload_spec import ArrivalProcess, ArrivalsSpec, StageSpec


def arrival_times(
    arrivals: ArrivalsSpec,
    rng: np.random.Generator,
    *,
    num_requests: int | None = None,
    duration_s: float | None = None,
) -> np.ndarray:
    """`num_requests` arrival times, or all those before `duration_s` (at most `num_requests`)."""
    if duration_s is None and num_requests is None:
        raise ValueError("arrival_times needs num_requests or duration_s")
    if arrivals.process in ("all_at_once", "closed_loop"):
        if num_requests is None:
            raise ValueError(f"process {arrivals.process!r} needs num_requests")
        return np.zeros(num_requests)
    rate, cv = arrivals.rate_per_s, arrivals.cv
    if rate is None:
        raise ValueError(f"process {arrivals.process!r} needs arrivals.rate_per_s")
    if duration_s is None:
        return _first_n(arrivals.process, rate, cv, num_requests or 0, rng)
    return _before(arrivals.process, rate, cv, duration_s, rng)[:num_requests]


def staged_arrival_times(
    stages: Sequence[StageSpec],
    rng: np.random.Generator,
    *,
    arrivals: ArrivalsSpec | None = None,
    num_requests: int | None = None,
) -> np.ndarray:
    """Arrivals at each stage's rate during that stage, one stage after another.

    `arrivals` supplies the process (and cv) used inside every stage; Poisson when None. Each
    stage starts its own process at its start time, so a constant-rate stage has an arrival
    exactly at its start.
    """
    process = arrivals.process if arrivals is not None else "poisson"
    cv = arrivals.cv if arrivals is not None else None
    if process in ("all_at_once", "closed_loop"):
        raise ValueError(f"process {process!r} cannot be staged")
    pieces: list[np.ndarray] = []
    start_s, count = 0.0, 0
    for stage in stages:
        if num_requests is not None and count >= num_requests:
            break
        times = start_s + _before(process, stage.rate_per_s, cv, stage.duration_s, rng)
        pieces.append(times)
        start_s += stage.duration_s
        count += len(times)
    return np.concatenate(pieces or [np.zeros(0)])[:num_requests]


def _first_n(
    process: ArrivalProcess, rate_per_s: float, cv: float | None, n: int, rng: np.random.Generator
) -> np.ndarray:
    if process == "constant":
        # Multiplying rather than summing gaps keeps the k-th arrival exactly at k / rate.
        return np.arange(n) / rate_per_s
    return np.cumsum(_random_gaps(process, rate_per_s, cv, n, rng))


def _before(
    process: ArrivalProcess,
    rate_per_s: float,
    cv: float | None,
    duration_s: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """All arrivals in [0, duration_s)."""
    if rate_per_s == 0:
        return np.zeros(0)
    if process == "constant":
        times = np.arange(int(np.ceil(duration_s * rate_per_s))) / rate_per_s
        return times[times < duration_s]
    expected = duration_s * rate_per_s
    # Draw a little more than expected so one batch almost always reaches the end.
    batch = int(expected + 6 * np.sqrt(expected) * max(cv or 1.0, 1.0)) + 16
    pieces = [np.cumsum(_random_gaps(process, rate_per_s, cv, batch, rng))]
    while pieces[-1][-1] < duration_s:
        pieces.append(pieces[-1][-1] + np.cumsum(_random_gaps(process, rate_per_s, cv, batch, rng)))
    times = np.concatenate(pieces)
    return times[times < duration_s]


def _random_gaps(
    process: ArrivalProcess, rate_per_s: float, cv: float | None, n: int, rng: np.random.Generator
) -> np.ndarray:
    if process == "poisson":
        return rng.exponential(1 / rate_per_s, size=n)
    if process == "gamma" and cv is not None:
        # Gamma(shape k, scale s) has mean k*s and CV 1/sqrt(k): k = 1/cv^2, s = cv^2/rate.
        return rng.gamma(1 / cv**2, cv**2 / rate_per_s, size=n)
    raise ValueError(f"no random gaps for process {process!r} with cv={cv}")
