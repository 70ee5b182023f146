"""Fitting the latency model's coefficients to measured step times.

The model (``sim.engine.latency_model``) is a roofline whose terms carry the physics (weight and KV
bytes over bandwidth, FLOPs over peak, all-reduce bytes over link bandwidth) and whose few
coefficients (efficiencies and overheads, ``sim.engine.latency_profile.Coefficients``) are what a
fit sets. Residuals are ``log(predicted / measured)``, so a 10 % miss weighs the same on a 5 ms
decode step as on a 2 s prefill; a soft-L1 loss keeps the odd idle gap in a measurement from
pulling the fit; each (source, step kind) group weighs the same in total, so ten thousand
decode steps do not drown a few dozen prefills.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

from calibrate.step_sample import StepSample
from sim.config.memory_plan import kv_bytes_per_token_per_gpu
from sim.config.model_catalog import load_model
from sim.engine.dtypes import resolve_kv_dtype
from sim.engine.gpu import load_gpu
from sim.engine.latency_model import LatencyModel
from sim.engine.latency_profile import Coefficients, LatencyProfile

# the fixed GPU launch costs (graph replay, eager) are not fitted yet: with the step samples'
# model (no CUDA graphs, synchronous) the eager one is indistinguishable from step_overhead_ms
NOT_FITTED = ("graph_step_overhead_ms", "eager_step_overhead_ms")
PARAMS = tuple(f.name for f in dataclasses.fields(Coefficients) if f.name not in NOT_FITTED)
OVERHEADS = ("step_overhead_ms", "per_seq_overhead_ms", "per_prefill_seq_overhead_ms",
             "allreduce_latency_us")
_LOWER = {"compute_efficiency": 0.01, "memory_efficiency": 0.01, "allreduce_efficiency": 0.01}
_UPPER = {"compute_efficiency": 1.0, "memory_efficiency": 1.0, "allreduce_efficiency": 1.0}
# the roofline at peak with no overheads: no real step can be faster
FLOOR = Coefficients(0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0)

CoefficientsFor = Callable[[StepSample], Coefficients]


def predict(samples: list[StepSample], coefficients: CoefficientsFor) -> np.ndarray:
    """Predicted step times, one latency model per configuration."""
    models: dict[tuple, LatencyModel] = {}
    out = np.empty(len(samples))
    for i, s in enumerate(samples):
        c = coefficients(s)
        key = (s.config, c)
        if key not in models:
            spec = load_model(s.model)
            # samples do not record the KV dtype; the engines they come from ran "auto", which
            # is the weight dtype's width (fp32 for an fp32 model), as
            # ``sim.config.deployment.resolve`` has it
            models[key] = LatencyModel(
                spec, load_gpu(s.gpu), c, tensor_parallel=s.tensor_parallel,
                weight_dtype=s.weight_dtype,
                kv_bytes_per_token_per_gpu=kv_bytes_per_token_per_gpu(
                    spec, s.tensor_parallel, resolve_kv_dtype("auto", s.weight_dtype)),
            )
        out[i] = models[key].step_time(s.batch)
    return out


def profile_coefficients(profile: LatencyProfile) -> CoefficientsFor:
    """The coefficients a profile gives each sample's configuration."""
    return lambda s: profile.resolve(gpu=s.gpu, model=s.model, tensor_parallel=s.tensor_parallel,
                                     weight_dtype=s.weight_dtype,
                                     interconnect=load_gpu(s.gpu).interconnect)


def physically_possible(samples: Iterable[StepSample]) -> list[StepSample]:
    """Samples no faster than the roofline at peak with no overheads.

    A faster measurement means the model as described cannot have run that step (a mislabelled
    configuration, a step cut short); it would drag any fit, so it is left out.
    """
    kept = list(samples)
    floor = predict(kept, lambda s: FLOOR)
    return [s for s, f in zip(kept, floor) if s.measured_s >= f]


F_SCALE = 0.05  # log-ratio residuals beyond ~5 % weigh in linearly (soft L1), not squared


def fit_cost(samples: list[StepSample], coefficients: Coefficients) -> float:
    """The objective ``fit`` minimizes, for given coefficients: a robust (soft L1) sum over the
    samples of their log measured/predicted ratios, each (source, kind) group weighing alike.
    A fit never ends above its start's cost, whatever the samples' noise."""
    z = (_residuals(samples, coefficients) / F_SCALE) ** 2
    return float(0.5 * F_SCALE**2 * np.sum(2 * (np.sqrt(1 + z) - 1)))


def _weights(samples: list[StepSample]) -> np.ndarray:
    groups = pd.Series([(s.source, s.kind) for s in samples])
    return 1 / np.sqrt(groups.map(groups.value_counts()).to_numpy(float))


def _residuals(samples: list[StepSample], c: Coefficients) -> np.ndarray:
    measured = np.array([s.measured_s for s in samples])
    return _weights(samples) * np.log(predict(samples, lambda s: c) / measured)


def fit(samples: list[StepSample], start: Coefficients,
        free: tuple[str, ...] = PARAMS) -> Coefficients:
    """Least-squares fit of the ``free`` coefficients; the others stay as in ``start``."""
    if not samples:
        raise ValueError("nothing to fit: no samples")
    measured = np.array([s.measured_s for s in samples])
    weight = _weights(samples)
    lower = np.array([_LOWER.get(n, 0.0) for n in free])
    upper = np.array([_UPPER.get(n, np.inf) for n in free])

    def coefficients(theta: np.ndarray) -> Coefficients:
        return dataclasses.replace(start, **{n: float(v) for n, v in zip(free, theta)})

    def residuals(theta: np.ndarray) -> np.ndarray:
        c = coefficients(theta)
        return weight * np.log(predict(samples, lambda s: c) / measured)

    x0 = np.clip([getattr(start, n) for n in free], lower + 1e-6, upper)
    result = least_squares(residuals, x0, bounds=(lower, upper), loss="soft_l1",
                           f_scale=F_SCALE, x_scale="jac")
    return coefficients(result.x)


def errors_frame(samples: list[StepSample], predicted: np.ndarray) -> pd.DataFrame:
    """One row per sample: its configuration, measured and predicted seconds, signed % error."""
    frame = pd.DataFrame([s[:6] for s in samples], columns=list(StepSample._fields[:6]))
    frame["measured_s"] = [s.measured_s for s in samples]
    frame["predicted_s"] = predicted
    frame["error_pct"] = (frame["predicted_s"] - frame["measured_s"]) / frame["measured_s"] * 100
    return frame
