"""How far the latency profiles are from real GPU step times, and a fit that closes part of the gap.

Run from the repository root:

    python benchmarks/default_profile_check.py [--write-profile PATH]

It prints markdown tables of the percentage error of ``LatencyModel.step_time`` against two
bundled real datasets (``calibrate/data/*/PROVENANCE.md``), first under the shipped ``default``
profile, then under coefficients fitted here (in-sample and held out). ``--write-profile``
writes the coefficients fitted on all the data as a profile YAML file.

Datasets and what each measured point becomes (readers in ``calibrate/sources/``)
-------------------------------------------------------------------------------
``vllm-h100``: sampled engine steps of vLLM v0.15 on H100 (Llama-2-70B TP4, two workloads;
CodeLlama-34B TP2). Two measurements of a step's time are checked:

* ``vllm-h100`` (the step's time): the step-to-step wall time, ``step.ts_start_ns`` of step ``id + 1`` minus that of step
  ``id``, for the ~2,000 sampled steps whose successor was sampled too. This is what the fit uses.
* ``vllm-h100 cycle``: the ``cycle_time_us`` column (median inter-token interval of the requests in the
  step) that the calibration notes name. Values under 1 ms (a third of them; ~30 us) are two
  tokens streamed together, not steps, and are dropped. The rest cluster at about *half* the
  ``ts`` interval (median ratio 2.0) and below the bf16 weight-streaming bound of these models
  (column ``< floor``), so the column cannot be a whole step's time; it is reported, not fitted.

The Batch of a step: ``prefill_tokens``, ``prefill_seqs`` (``batch.num_prefill_reqs``) and
``decode_seqs`` are exact. Approximated, because the data has no per-request lengths:

* ``decode_context_tokens`` = KV tokens in use, ``(blocks_total - blocks_free) * 16``, less the
  step's prefill tokens and half a block per scheduled sequence (the average unfilled tail).
  With prefix caching a block shared by several requests is counted once but read by each, so
  this undercounts the attention reads of requests with a shared prefix.
* Each prefill chunk is taken as the first chunk of its prompt (no computed context) and the
  prefill tokens as split evenly over the prefill requests; attention pairs follow from that.
  Most mixed steps carry a few dozen prefill tokens, so this barely matters.
* The wall interval is charged to the step that starts it. If vLLM schedules one step ahead,
  the interval holds the previous step's GPU work; decode batches change slowly, so decode steps
  are hardly affected, but single mixed steps can be off by their prefill.

``splitwise``: static-batch microbenchmarks of Llama-2-70B (TP2/4/8) on DGX-A100-80GB and
DGX-H100; the median of the repeated runs of a configuration is one point.

* prefill: ``prompt_time`` is one step prefilling ``batch_size`` prompts of ``prompt_size``
  tokens each, from an empty cache.
* decode: ``token_time`` is the mean decode step of ``batch_size`` sequences over
  ``token_size`` generated tokens, so the context per sequence is taken as its mean,
  ``prompt_size + token_size / 2``.
* Left out: BLOOM-176B (not in the model catalog) and ``h100-80gb-pcap`` (its ``token_time`` is
  identical to ``h100-80gb`` and its ``prompt_time`` exactly 1.3x it: derived, not measured).

Points measured faster than the roofline at 100 % efficiency with no overhead are physically
impossible for the model as described (e.g. Splitwise's TP2 batch-64 prefill: 32k tokens in
0.36 s); the ``< floor`` column counts them and the fit skips them.

Fit: ``scipy.optimize.least_squares`` over the seven profile coefficients (bounds: overheads
>= 0, efficiencies in (0, 1]), residual ``log(predicted / measured)``, soft-L1 loss (robust to
the odd idle gap), each (dataset, step kind) group weighted equally. Fit A frees all seven on
all the data (it is what ``--write-profile`` writes); fit B uses the vLLM steps alone, which
cannot tell the efficiencies from the fixed costs (two configurations, hardly any prefill), so
it frees only the overheads and the all-reduce latency. Held-out tables refit without the named
slice and predict it. GPUs and weight format (bf16) are the catalog's ``h100-sxm`` and
``a100-80gb``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from calibrate.sources import h100_vllm_steps, splitwise
from calibrate.step_fit import (FLOOR, OVERHEADS, PARAMS, fit, physically_possible, predict,
                                profile_coefficients)
from calibrate.step_sample import StepSample
from sim.engine.latency_profile import Coefficients, load_profile

Point = StepSample
GROUP = ["source", "model", "gpu", "tensor_parallel", "kind"]


def cycle_points() -> list[Point]:
    """The ``cycle_time_us`` column as step times (over 1 ms only), to show it is not one."""
    df = h100_vllm_steps.step_intervals()
    rows = df[df["cycle_time_us"] > 1000].itertuples()
    return [h100_vllm_steps.sample(r, float(r.cycle_time_us) * 1e-6, "vllm-h100 cycle")
            for r in rows]


def table(points: list[Point], predicted: np.ndarray, title: str) -> str:
    measured = np.array([p.measured_s for p in points])
    below = measured < predict(points, lambda p: FLOOR)
    frame = pd.DataFrame([p[:6] for p in points], columns=list(Point._fields[:6]))
    frame["err"] = (predicted - measured) / measured * 100
    frame["below"] = below
    frame["ms"] = measured * 1e3
    lines = [f"### {title}", "",
             "| dataset | model | GPU | TP | step | n | measured ms (median) | median APE | "
             "mean APE | bias (mean signed) | < floor |", "|" + "---|" * 11]
    for key, g in frame.groupby(GROUP, sort=True):
        e = g["err"]
        lines.append("| " + " | ".join(map(str, key)) + f" | {len(g)} | {g['ms'].median():.1f} | "
                     f"{e.abs().median():.1f} % | {e.abs().mean():.1f} % | {e.mean():+.1f} % | "
                     f"{g['below'].mean() * 100:.0f} % |")
    for dataset, g in frame.groupby("source"):
        e = g["err"]
        lines.append(f"| **{dataset}** | all | | | all | {len(g)} | | {e.abs().median():.1f} % | "
                     f"{e.abs().mean():.1f} % | {e.mean():+.1f} % | "
                     f"{g['below'].mean() * 100:.0f} % |")
    return "\n".join(lines) + "\n"


def number(value: float) -> str:
    """Four significant digits; values at a zero bound (1e-17 and the like) print as 0."""
    return "0" if abs(value) < 1e-6 else f"{value:.4g}"


def coefficient_table(named: dict[str, Coefficients]) -> str:
    lines = ["| coefficient | " + " | ".join(named) + " |", "|" + "---|" * (len(named) + 1)]
    for n in PARAMS:
        lines.append(f"| {n} | " + " | ".join(number(getattr(c, n)) for c in named.values()) + " |")
    return "\n".join(lines) + "\n"


def profile_yaml(c: Coefficients, n_points: int) -> str:
    values = "\n".join(f"  {n}: {number(getattr(c, n))}" for n in PARAMS)
    return f"""# Written by benchmarks/default_profile_check.py --write-profile (format of default.yaml).
name: h100-a100-fit
source: >-
  Least-squares fit (scipy least_squares, log-ratio residuals, soft-L1 loss, each dataset and
  step kind weighted equally) of the roofline coefficients to {n_points} measured step times:
  real vLLM v0.15 steps on H100 SXM (Llama-2-70B TP4, CodeLlama-34B TP2; step time = start of
  step id+1 minus start of step id, calibrate/data/h100_vllm_steps) and Splitwise static-batch
  prefill and decode medians of Llama-2-70B TP2/4/8 on DGX-A100-80GB and DGX-H100
  (calibrate/data/splitwise_static_batches), bf16, NVLink. Not fitted to other GPUs, models,
  weight formats or PCIe; the two datasets come from different engine generations, so this is a
  compromise between them (see the benchmark's tables).
coefficients:
{values}
overrides: []  # no PCIe or other-GPU data behind any override
"""


def report(points: list[Point], start: Coefficients, free: tuple[str, ...], title: str,
           holdouts: dict[str, Callable[[Point], bool]]) -> dict[str, Coefficients]:
    """Fit on ``points``, print in-sample and held-out tables; return the fitted coefficients."""
    fitted = {title: fit(points, start, free)}
    print(table(points, predict(points, lambda p: fitted[title]), f"{title}: in-sample"))
    for name, held in holdouts.items():
        c = fit([p for p in points if not held(p)], start, free)
        fitted[f"{title[0]} w/o {name}"] = c
        test = [p for p in points if held(p)]
        print(table(test, predict(test, lambda p: c), f"{title}: {name} held out"))
    return fitted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write-profile", type=Path, help="write the all-data fit as a profile")
    args = parser.parse_args()
    fitted_sources = h100_vllm_steps.read() + splitwise.read()
    points = fitted_sources + cycle_points()
    default_profile = profile_coefficients(load_profile("default"))
    print(table(points, predict(points, default_profile), "Default profile"))

    data = physically_possible(fitted_sources)
    default = default_profile(data[0])  # no default override matches NVLink
    named = {"default": default}
    named |= report(data, default, PARAMS, "A (all data, 7 free)", {
        "codellama-34b": lambda p: p.model == "codellama-34b",
        "a100-80gb": lambda p: p.gpu == "a100-80gb",
        "TP2": lambda p: p.tensor_parallel == 2,
        "splitwise": lambda p: p.source == "splitwise",
        "vllm-h100": lambda p: p.source != "splitwise",
    })
    # vLLM steps alone cannot separate the efficiencies from the fixed costs (two configurations,
    # almost no prefill), so they keep their default values here.
    vllm = [p for p in data if p.source != "splitwise"]
    named |= report(vllm, default, OVERHEADS, "B (vllm-h100 only, overheads free)", {
        "codellama-34b": lambda p: p.model == "codellama-34b",
        "llama-2-70b": lambda p: p.model == "llama-2-70b",
    })
    print("### Coefficients\n")
    print(coefficient_table(named))
    if args.write_profile:
        args.write_profile.write_text(profile_yaml(named["A (all data, 7 free)"], len(data)))
        print(f"wrote {args.write_profile}")


if __name__ == "__main__":
    main()
