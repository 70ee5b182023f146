"""Held-out accuracy of calibration on the bundled GPU measurements.

    python benchmarks/held_out_check.py

Two ways a fitted profile can meet data it was not fitted on:

1. **Same configuration, other traffic** (what `servesim calibrate` is for: profile your
   deployment, then ask about new traffic). The H100 vLLM v0.15 steps of Llama-2-70B at TP 4
   come from two workloads (general chat and code generation): the per-configuration
   coefficients (overheads and all-reduce latency, as the shipped profile fits them) are fitted
   on one workload's steps and predict the other's.
2. **Other configuration** (a GPU/model/TP without data of its own). The three end-to-end vLLM
   0.19 runs (RTX 4090 Llama-3.1-8B, RTX PRO 6000 Llama-3.1-8B and Qwen3-32B TP 2), one left
   out at a time: the run fit (memory efficiency and step overhead, by replay) on the other two
   predicts the left-out run's mean TTFT, TPOT and E2E.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from calibrate.profile_fit import median_ape  # noqa: E402
from calibrate.replay import comparison, deployment_for, with_coefficients  # noqa: E402
from calibrate.run_fit import fit_to_runs  # noqa: E402
from calibrate.sources import h100_vllm_steps, llmservingsim  # noqa: E402
from calibrate.step_fit import OVERHEADS, fit, physically_possible  # noqa: E402
from sim.engine.gpu import load_gpu
from sim.engine.latency_profile import load_profile


def _start(model: str, gpu: str, tp: int, dtype: str):
    return load_profile("default").resolve(gpu=gpu, model=model, tensor_parallel=tp,
                                           weight_dtype=dtype,
                                           interconnect=load_gpu(gpu).interconnect)


def workload_steps() -> dict[str, list]:
    """Llama-2-70B TP 4 step samples per workload."""
    df = h100_vllm_steps.step_intervals()
    df = df[df["interval_s"].notna() & (df["tp"] == 4)]
    return {workload: physically_possible([h100_vllm_steps.sample(r, float(r.interval_s))
                                           for r in group.itertuples()])
            for workload, group in df.groupby("workload")}


def other_traffic() -> pd.DataFrame:
    by_workload = workload_steps()
    rows = []
    for fitted_on, train in by_workload.items():
        start = _start(*train[0].config)
        coefficients = fit(train, start, OVERHEADS)
        for predicted, test in by_workload.items():
            if predicted == fitted_on:
                continue
            rows.append({"fitted on": f"{fitted_on} ({len(train):,} steps)",
                         "predicts": f"{predicted} ({len(test):,} steps)",
                         "median APE fitted": median_ape(test, lambda s: coefficients),
                         "median APE default": median_ape(test, lambda s: start),
                         "in-sample": median_ape(train, lambda s: coefficients)})
    return pd.DataFrame(rows)


def other_configuration() -> pd.DataFrame:
    runs = llmservingsim.read()
    rows = []
    for held in runs:
        train = [r for r in runs if r is not held]
        start = _start(*held.config.key)
        coefficients = fit_to_runs(train, start)
        deployment = deployment_for(held)
        fitted = comparison(held, with_coefficients(deployment, coefficients))
        default = comparison(held, deployment)
        row = {"held out": held.name}
        for name, frame in (("fitted on the others", fitted), ("default", default)):
            means = frame[frame["stat"] == "mean"].set_index("metric")["ape_pct"]
            for metric in ("TTFT", "TPOT", "E2E"):
                row[f"{metric} {name}"] = means[metric]
        rows.append(row)
    return pd.DataFrame(rows)


def markdown() -> str:
    traffic, configs = other_traffic(), other_configuration()
    lines = ["Same configuration, other traffic (H100, Llama-2-70B TP 4, vLLM v0.15 step times):",
             "", "| fitted on | predicts | median APE, fitted | median APE, default | in-sample |",
             "|---|---|---|---|---|"]
    for r in traffic.itertuples(index=False):
        lines.append(f"| {r[0]} | {r[1]} | {r[2]:.1f} % | {r[3]:.1f} % | {r[4]:.1f} % |")
    lines += ["", "Other configuration (end-to-end runs, vLLM 0.19, one left out at a time; APE "
              "of the mean):", "",
              "| held out | TTFT fitted on the others | TPOT | E2E | TTFT default | TPOT | E2E |",
              "|---|---|---|---|---|---|---|"]
    for r in configs.itertuples(index=False):
        lines.append(f"| {r[0]} | " + " | ".join(f"{v:.1f} %" for v in r[1:]) + " |")
    medians = configs.drop(columns="held out").median()
    lines.append("| **median** | " + " | ".join(f"**{v:.1f} %**" for v in medians) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    print(markdown())
