"""Fitting coefficients to measured runs when there are no step times, only request timestamps.

Each evaluation replays the runs through the simulator, so the fit sees everything the engine
did (queueing, batching, chunked prefill) and matches what was measured: the mean TPOT, E2E
and TTFT of each run, as log ratios. Few coefficients are free by default (the memory
efficiency, which sets decode speed, and the fixed step overhead): a run gives three numbers,
and freeing more than the data can pin down only moves noise around. Even these two trade off
on decode-heavy runs (both add a constant to every decode step), so the pair found reproduces
the engine in the regime measured rather than each coefficient's true value; runs of other
shapes (long prompts, other batch sizes) are what separate them.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.optimize import least_squares

from calibrate.replay import deployment_for, latencies, simulated, summary, with_coefficients
from calibrate.request_run import RequestRun
from sim.engine.latency_profile import Coefficients

RUN_FREE = ("memory_efficiency", "step_overhead_ms")
WEIGHTS = {"TPOT": 1.0, "E2E": 1.0, "TTFT": 0.5}  # TTFT is mostly queueing: the others drive it
_BOUNDS = {"compute_efficiency": (0.01, 1.0), "memory_efficiency": (0.01, 1.0),
           "allreduce_efficiency": (0.01, 1.0)}


def fit_to_runs(runs: list[RequestRun], start: Coefficients,
                free: tuple[str, ...] = RUN_FREE) -> Coefficients:
    if not runs:
        raise ValueError("nothing to fit: no runs")
    deployments = [deployment_for(run) for run in runs]
    measured = [summary(latencies(run.requests)) for run in runs]
    lower = np.array([_BOUNDS.get(n, (0.0, np.inf))[0] for n in free])
    upper = np.array([_BOUNDS.get(n, (0.0, np.inf))[1] for n in free])

    def coefficients(theta: np.ndarray) -> Coefficients:
        return dataclasses.replace(start, **{n: float(v) for n, v in zip(free, theta)})

    def residuals(theta: np.ndarray) -> np.ndarray:
        c = coefficients(theta)
        out = []
        for run, deployment, real in zip(runs, deployments, measured):
            sim = simulated(run, with_coefficients(deployment, c))
            for metric, weight in WEIGHTS.items():
                out.append(weight * np.log(sim[metric]["mean"] / real[metric]["mean"]))
        return np.array(out)

    x0 = np.clip([getattr(start, n) for n in free], lower + 1e-6, upper)
    # the simulated means move in small steps as coefficients change (discrete events), so the
    # finite differences need a step well above that granularity
    result = least_squares(residuals, x0, bounds=(lower, upper), diff_step=0.05, x_scale="jac",
                           loss="soft_l1", f_scale=0.05)
    return coefficients(result.x)
