"""A whole profile from step samples: one fit across every configuration, then per-configuration
refits of what a configuration's own data can tell apart, and the errors of both.

The cross-configuration fit is what a model, GPU or parallelism without data of its own gets:
its coefficients multiply roofline terms computed from the model's and GPU's specifications, so
they carry over. A configuration with enough samples of its own then gets its overheads (and its
efficiencies, when it has both prefill and decode steps) refitted as an override.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from calibrate.step_fit import OVERHEADS, PARAMS, fit, predict
from calibrate.step_sample import StepSample
from sim.engine.latency_profile import Coefficients

MIN_SAMPLES_PER_CONFIG = 20  # fewer and a per-configuration refit would chase noise


@dataclass
class ProfileFit:
    base: Coefficients
    per_config: dict[tuple, Coefficients] = field(default_factory=dict)

    def coefficients(self, sample: StepSample) -> Coefficients:
        return self.per_config.get(sample.config, self.base)

    def overrides(self) -> list[tuple[dict, Coefficients]]:
        keys = ("model", "gpu", "tensor_parallel", "weight_dtype")
        return [(dict(zip(keys, config)), c) for config, c in sorted(self.per_config.items())]


def fit_profile(samples: list[StepSample], start: Coefficients,
                per_config: bool = True) -> ProfileFit:
    result = ProfileFit(fit(samples, start))
    if not per_config:
        return result
    by_config: dict[tuple, list[StepSample]] = defaultdict(list)
    for s in samples:
        by_config[s.config].append(s)
    for config, own in by_config.items():
        if len(own) < MIN_SAMPLES_PER_CONFIG:
            continue
        kinds = {s.kind for s in own}
        # without both prefill work and decode steps, compute and memory efficiency cannot be
        # told from the fixed costs: keep the cross-configuration values for them
        free = PARAMS if "decode" in kinds and kinds & {"prefill", "mixed"} and len(kinds) > 1 \
            and any(s.batch.prefill_tokens > 512 for s in own) else OVERHEADS
        result.per_config[config] = fit(own, result.base, free)
    return result


def median_ape(samples: list[StepSample], coefficients) -> float:
    measured = np.array([s.measured_s for s in samples])
    return float(np.median(np.abs(predict(samples, coefficients) / measured - 1)) * 100)


def held_out_errors(samples: list[StepSample], start: Coefficients) -> dict[tuple, float]:
    """Median APE on each configuration when the cross-configuration fit never saw it."""
    configs = sorted({s.config for s in samples})
    out = {}
    if len(configs) < 2:
        return out
    for config in configs:
        train = [s for s in samples if s.config != config]
        test = [s for s in samples if s.config == config]
        base = fit(train, start)
        out[config] = median_ape(test, lambda s: base)
    return out
