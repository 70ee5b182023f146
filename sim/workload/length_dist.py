"""Sampling token counts from a `LengthSpec`, including the bundled empirical datasets.

Every sample is an integer of at least 1 token, capped at the spec's `max` when it has one.
Continuous distributions are rounded to the nearest token, which keeps their mean (a ceiling
would add half a token to every request).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

import numpy as np
import pandas as pd

from sim.workload.workload_spec import Dataset, LengthsSpec, LengthSpec
from traces.bundled import length_table_path

Role = Literal["input", "output"]

# The dataset column each role reads (see traces/bundled/PROVENANCE.md).
_COLUMNS: dict[Role, str] = {"input": "num_prefill_tokens", "output": "num_decode_tokens"}
_LARGEST_TOKENS = 2.0**53


def sample_lengths(spec: LengthSpec, n: int, rng: np.random.Generator, *, role: Role) -> np.ndarray:
    """`n` token counts (int64, each >= 1 and <= spec.max) drawn from `spec`.

    `role` picks the dataset column for an empirical spec (prompt or response lengths).
    """
    if spec.dist == "empirical":
        rows = _dataset_rows(spec, n, rng)
        return _cap(dataset_table(spec.dataset)[_COLUMNS[role]].to_numpy()[rows], spec.max)
    return _cap(_draw(spec, n, rng), spec.max)


def sample_input_output(
    spec: LengthsSpec, n: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Input and output token counts for `n` independent requests.

    When both sides come from the same empirical dataset, whole rows are drawn: long prompts
    tend to get long answers, and sampling the columns separately would lose that.
    """
    if _same_dataset(spec.input, spec.output):
        rows = _dataset_rows(spec.input, n, rng)
        table = dataset_table(spec.input.dataset)  # type: ignore[arg-type]
        return (
            _cap(table[_COLUMNS["input"]].to_numpy()[rows], spec.input.max),
            _cap(table[_COLUMNS["output"]].to_numpy()[rows], spec.output.max),
        )
    return (
        sample_lengths(spec.input, n, rng, role="input"),
        sample_lengths(spec.output, n, rng, role="output"),
    )


@lru_cache(maxsize=None)
def dataset_table(name: Dataset) -> pd.DataFrame:
    """The bundled length table `name`: one row per real request, int64 token counts.

    Cached and shared between callers: read it, never modify it.
    """
    path = length_table_path(name)
    return pd.read_csv(path, usecols=list(_COLUMNS.values()), dtype="int64")


def _same_dataset(first: LengthSpec, second: LengthSpec) -> bool:
    return first.dist == second.dist == "empirical" and first.dataset == second.dataset


def _dataset_rows(spec: LengthSpec, n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, len(dataset_table(spec.dataset)), size=n)  # type: ignore[arg-type]


def _draw(spec: LengthSpec, n: int, rng: np.random.Generator) -> np.ndarray:
    """Raw samples of a parametric distribution, before rounding and capping."""
    if spec.dist == "fixed":
        return np.full(n, spec.value, dtype=np.int64)
    if spec.dist == "uniform":
        return rng.integers(spec.min, spec.max, size=n, endpoint=True)  # type: ignore[arg-type]
    if spec.dist == "exponential":
        return rng.exponential(spec.mean, size=n)
    if spec.dist == "lognormal":
        # `mean` is E[X] = exp(mu + sigma^2 / 2), so mu is derived from it.
        mu = np.log(spec.mean) - spec.sigma**2 / 2  # type: ignore[operator]
        return rng.lognormal(mu, spec.sigma, size=n)
    raise ValueError(f"no parametric sampler for dist {spec.dist!r}")


def _cap(samples: np.ndarray, max_tokens: int | None) -> np.ndarray:
    # A heavy lognormal tail can overflow to inf, which int64 would turn into a negative number.
    tokens = np.rint(np.minimum(samples, _LARGEST_TOKENS)).astype(np.int64)
    return np.clip(tokens, 1, max_tokens)
