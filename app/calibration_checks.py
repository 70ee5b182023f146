"""Predicted against measured, for any latency profile: the bundled step times and the bundled
end-to-end runs, evaluated with the calibrate package's own functions.

Both are cheap enough to compute live (a vectorised step-time evaluation of ~3,300 steps and six
replays of 40-300 requests: about a second together), so every profile the user picks, shipped
or uploaded, is evaluated on the spot; results are cached on the profile's YAML text.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from calibrate.replay import deployment_for, errors_of, simulated_latencies
from calibrate.request_run import RequestRun, load_run
from calibrate.sources import h100_vllm_steps, llmservingsim, splitwise
from calibrate.step_fit import errors_frame, predict, profile_coefficients
from calibrate.step_sample import StepSample, read_samples
from sim.engine.gpu import load_gpu
from sim.engine.latency_profile import LatencyProfile

from app.calibration_view import is_calibrated_for

DATA = Path(__file__).resolve().parent.parent / "calibrate" / "data"
CPU_DATA = DATA / "vllm_cpu_tiny_llama"


def _cpu_steps() -> list[StepSample]:
    return read_samples(CPU_DATA / "steps.parquet")


# label -> (folder under calibrate/data, reader)
STEP_DATASETS: dict[str, tuple[str, Callable[[], list[StepSample]]]] = {
    "vLLM v0.15 on H100 SXM (Llama-2-70B TP 4, CodeLlama-34B TP 2)":
        ("h100_vllm_steps", h100_vllm_steps.read),
    "vLLM 0.32 CPU backend (tiny-llama, 2-core x86)": ("vllm_cpu_tiny_llama", _cpu_steps),
    "Splitwise static batches, 2023 engine (Llama-2-70B on A100/H100)":
        ("splitwise_static_batches", splitwise.read),
}
DEFAULT_STEP_DATASETS = list(STEP_DATASETS)[:2]  # current vLLM engines, what `calibrated` fits

RUN_DATASETS = {
    "llmservingsim_vllm_bench": "vLLM 0.19 bench runs, 300 ShareGPT requests at ~10 req/s",
    "vllm_cpu_tiny_llama/runs": "vLLM 0.32 CPU backend, 40 requests at 3 req/s (not fitted on)",
}
PERCENTILES = (50, 90, 99)


@lru_cache(maxsize=None)
def step_samples(dataset: str) -> tuple[StepSample, ...]:
    """One bundled dataset's measured steps (read once per process: the files never change)."""
    return tuple(STEP_DATASETS[dataset][1]())


@lru_cache(maxsize=1)
def measured_runs() -> tuple[tuple[str, RequestRun], ...]:
    """The bundled end-to-end runs, each with the label of the data set it belongs to."""
    runs = [("llmservingsim_vllm_bench", run) for run in llmservingsim.read()]
    runs += [("vllm_cpu_tiny_llama/runs", load_run(folder))
             for folder in sorted((CPU_DATA / "runs").iterdir()) if folder.is_dir()]
    return tuple(runs)


def config_label(model: str, gpu: str, tensor_parallel: int, weight_dtype: str) -> str:
    return f"{model} · {gpu} · TP {tensor_parallel} · {weight_dtype}"


def step_predictions(samples: list[StepSample], profile: LatencyProfile) -> pd.DataFrame:
    """One row per measured step: configuration, kind, measured and predicted ms, signed and
    absolute % error, and whether the profile has its own calibration for the configuration."""
    frame = errors_frame(samples, predict(samples, profile_coefficients(profile)))
    frame["measured_ms"] = frame.pop("measured_s") * 1e3
    frame["predicted_ms"] = frame.pop("predicted_s") * 1e3
    frame["abs_error_pct"] = frame["error_pct"].abs()
    keys = ["model", "gpu", "tensor_parallel", "weight_dtype"]
    configs = frame[keys].drop_duplicates()
    labels = {tuple(c): config_label(*c) for c in configs.itertuples(index=False)}
    calibrated = {tuple(c): is_calibrated_for(profile, **dict(zip(keys, c)),
                                              interconnect=load_gpu(c.gpu).interconnect)
                  for c in configs.itertuples(index=False)}
    index = list(zip(*(frame[k] for k in keys)))
    frame["configuration"] = [labels[i] for i in index]
    frame["calibrated"] = [calibrated[i] for i in index]
    return frame


def error_percentiles(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Per group: steps, median measured ms, percentiles of the absolute % error and the bias
    (mean signed % error: positive means predictions too slow)."""
    rows = []
    for key, group in frame.groupby(by, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        apes = group["abs_error_pct"].to_numpy()
        rows.append({**dict(zip(by, key)), "steps": len(group),
                     "measured ms (median)": float(np.median(group["measured_ms"])),
                     **{f"|error| p{q} (%)": float(np.percentile(apes, q)) for q in PERCENTILES},
                     "bias (%)": float(group["error_pct"].mean())})
    return pd.DataFrame(rows)


def overall_errors(frame: pd.DataFrame) -> dict[str, float]:
    """The headline figures of a set of steps: percentiles of |error| and the bias."""
    apes = frame["abs_error_pct"].to_numpy()
    if not len(apes):
        return {}
    return {**{f"p{q}": float(np.percentile(apes, q)) for q in PERCENTILES},
            "bias": float(frame["error_pct"].mean())}


def replay_errors(runs: list[tuple[str, RequestRun]], profile: LatencyProfile,
                  ref: str) -> pd.DataFrame:
    """``servesim calibrate validate --profile REF``'s table: per run, metric (TTFT, TPOT, E2E,
    ITL) and statistic, measured and simulated ms and the absolute % error. ``ref`` is the
    shipped name or file path ``profile`` was loaded from."""
    frames = []
    for dataset, run in runs:
        c = run.config
        config = dict(gpu=c.gpu, model=c.model, tensor_parallel=c.tensor_parallel,
                      weight_dtype=c.weight_dtype, interconnect=load_gpu(c.gpu).interconnect)
        errors = errors_of(run, simulated_latencies(run, deployment_for(run, ref)))
        errors.insert(1, "data", dataset)
        errors.insert(2, "configuration", config_label(c.model, c.gpu, c.tensor_parallel,
                                                       c.weight_dtype))
        errors.insert(3, "calibrated", is_calibrated_for(profile, **config))
        frames.append(errors)
    return pd.concat(frames, ignore_index=True)


def mean_errors(errors: pd.DataFrame) -> dict[str, float]:
    """Median over runs of the absolute % error of each metric's mean (as `validate` prints)."""
    means = errors[errors["stat"] == "mean"].groupby("metric", sort=False)["ape_pct"].median()
    return {m: float(v) for m, v in means.items() if np.isfinite(v)}


@st.cache_data(max_entries=32, show_spinner=False)
def cached_step_predictions(profile_text: str, datasets: tuple[str, ...],
                            _profile: LatencyProfile) -> pd.DataFrame:
    """``step_predictions`` of the chosen data sets, cached on the profile's text (the profile
    is parsed from it, so the text decides the result)."""
    frames = []
    for dataset in datasets:
        frame = step_predictions(list(step_samples(dataset)), _profile)
        frame.insert(0, "data", STEP_DATASETS[dataset][0])
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


@st.cache_data(max_entries=32, show_spinner=False)
def cached_replay_errors(profile_text: str, _profile: LatencyProfile, _ref: str) -> pd.DataFrame:
    """``replay_errors`` of every bundled run, cached on the profile's text."""
    return replay_errors(list(measured_runs()), _profile, _ref)
