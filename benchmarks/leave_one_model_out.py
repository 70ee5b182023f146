"""Leave-one-model-out validation of the trained per-operator latency model, and the shipped
trained profile with its error band.

For each of the models in the 47 real vLLM H100 runs (calibrate/data/vllm_h100_runs): fit the
global coefficients on the runs of the other models (``calibrate.operator_fit``), then predict
every run of the model left out, at the runs' full length. The hand-set roofline predicts the
same runs beside it. The spread of measured / predicted over these held-out predictions is the
error band every summary carries; a fit on all runs gives the coefficients shipped as
``sim/catalog/profiles/trained.yaml``.

The band for a GPU the data never saw is wider: the model's error on the bundled runs of other
GPUs (RTX 4090 and RTX PRO 6000, vLLM 0.19, calibrate/data/llmservingsim_vllm_bench) is added
to the held-out spread.

    python benchmarks/leave_one_model_out.py [--refit [--folds MODEL,...]] [--write-profile]
                                             [--markdown]

``--refit`` fits the ten folds and the all-models profile (written to benchmarks/results/lomo/;
about an hour on two cores, its simulated points cached in ``.cache/operator-fit.jsonl`` so a
repeated refit with the same simulator takes seconds); without it the folds last fitted are
used, and every held-out run is predicted with the current simulator.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from calibrate.deployment_runs import (METRICS, DeploymentRun, parse_stages, read_runs,  # noqa: E402
                                       scenario_for, stage_means)
from calibrate.operator_fit import fit_runs, start_coefficients, training_data  # noqa: E402
from calibrate.profile_file import trained_document, write_profile  # noqa: E402
from sim.config.scenario import parse_scenario
from sim.runner.run import run_scenario

RUNS = ROOT / "calibrate" / "data" / "vllm_h100_runs" / "runs.csv"
RESULTS = ROOT / "benchmarks" / "results"
FOLDS = RESULTS / "lomo"
CACHE = ROOT / ".cache" / "operator-fit.jsonl"
PROFILE = ROOT / "sim" / "catalog" / "profiles" / "trained.yaml"
CSV = RESULTS / "leave_one_model_out.csv"
BAND_QUANTILES = (0.1, 0.9)  # the band holds the middle 80 % of held-out errors
SATURATED_TTFT_MS = 10_000.0
MAX_EVALUATIONS = 20  # search steps per fit (each ~10 simulations of every run)
TARGETS = {"e2e": 5.0, "itl": 5.0, "ttft": 10.0}


def fold_profile(model: str) -> Path:
    return FOLDS / f"without-{model}.yaml"


def fit_fold(runs: list[DeploymentRun], held_out: str | None, start) -> Path:
    """Fit on every run but ``held_out``'s and write the profile; the path."""
    kept = [r for r in runs if r.model != held_out]
    label = f"without {held_out}" if held_out else "on every model"
    print(f"== fit {label}: {sum(not r.overloaded for r in kept)} runs", file=sys.stderr)
    fit = fit_runs(kept, start, cache=CACHE, max_evaluations=MAX_EVALUATIONS)
    fitted = [r for r in kept if r.run_id in fit.runs]
    path = fold_profile(held_out) if held_out else FOLDS / "all-models.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    source = (f"Trained on {len(fit.runs)} real vLLM v0.15.1 H100 runs"
              + (f" of every model but {held_out}" if held_out else "")
              + " (calibrate/data/vllm_h100_runs)")
    write_profile(path, trained_document("trained", source, fit.coefficients,
                                         training_data(fitted)),
                  written_by="benchmarks/leave_one_model_out.py")
    return path


# ---- predicting held-out runs ---------------------------------------------------------------

def predict(task: tuple[dict, str]) -> dict:
    """One run at full length under one profile: stage means and p90/p99 of the whole run."""
    row, profile = task
    outcome = run_scenario(parse_scenario(scenario_for(row, profile=str(profile))))
    records = outcome.result.records
    means = stage_means(records, parse_stages(str(row["stages"])))
    done = records[records["status"] == "completed"]
    e2e = (done["finish_s"] - done["arrival_s"]) * 1e3
    ttft = (done["first_token_s"] - done["arrival_s"]) * 1e3
    tails = {f"{m}_{q}": float(np.percentile(v, int(q[1:]))) if len(v) else math.nan
             for m, v in (("e2e", e2e), ("ttft", ttft)) for q in ("p90", "p99")}
    return {"means": means, "tails": tails,
            "saturated": any(f["ttft"] > SATURATED_TTFT_MS for s, f in means.items() if s >= 0)}


def held_out_table(runs: list[DeploymentRun], profiles: dict[str, Path]) -> pd.DataFrame:
    """One row per run: measured, held-out prediction and roofline prediction."""
    tasks = []
    for run in runs:
        tasks.append((run.row, profiles[run.model]))
        tasks.append((run.row, "roofline"))
    with ProcessPoolExecutor() as pool:
        results = list(pool.map(predict, tasks, chunksize=1))
    rows = []
    for i, run in enumerate(runs):
        trained, roofline = results[2 * i], results[2 * i + 1]
        row = {"run_id": run.run_id, "model": run.model, "tp": int(run.row["tensor_parallel"]),
               "workload": run.row["workload"], "overloaded": "yes" if run.overloaded else "no",
               "saturated_trained": trained["saturated"], "saturated_roofline": roofline["saturated"]}
        for metric in METRICS:
            measured = run.measured[-1][metric]
            row[f"{metric}_measured_ms"] = measured
            for name, sim in (("trained", trained), ("roofline", roofline)):
                row[f"{metric}_{name}_ms"] = sim["means"][-1][metric]
        for stage in run.target_stages:
            for metric in METRICS:
                row[f"s{stage}_{metric}_measured_ms"] = run.measured[stage][metric]
                row[f"s{stage}_{metric}_trained_ms"] = trained["means"][stage][metric]
        for key, value in trained["tails"].items():
            row[f"{key}_trained_ms"] = value
            row[f"{key}_measured_ms"] = float(run.row[f"{key}_ms"])
        rows.append(row)
    return pd.DataFrame(rows)


# ---- the error band -------------------------------------------------------------------------

def band_factors(ratios: np.ndarray) -> list[float]:
    """[low, high] factors holding the middle of measured / predicted, always around 1."""
    ratios = ratios[np.isfinite(ratios)]
    low, high = np.quantile(ratios, BAND_QUANTILES)
    return [round(float(min(low, 1.0)), 3), round(float(max(high, 1.0)), 3)]


def error_band(table: pd.DataFrame, gpu_errors: dict[str, float]) -> dict:
    """The profile's error_band section from held-out ratios (runs that were not overloaded)."""
    fine = table[table["overloaded"] == "no"]

    def ratio(metric: str, stat: str) -> np.ndarray:
        if stat == "mean":
            return (fine[f"{metric}_measured_ms"] / fine[f"{metric}_trained_ms"]).to_numpy()
        # p95 lies between the measured p90 and p99: both spreads, pooled
        quantiles = ("p90", "p99") if stat == "p95" else (stat,)
        return np.concatenate([(fine[f"{metric}_{q}_measured_ms"]
                                / fine[f"{metric}_{q}_trained_ms"]).to_numpy()
                               for q in quantiles])

    seen: dict = {}
    for metric, key in (("ttft", "ttft_ms"), ("e2e", "e2e_ms")):
        seen[key] = {stat: band_factors(ratio(metric, stat)) for stat in ("mean", "p95", "p99")}
    itl = band_factors(ratio("itl", "mean"))
    seen["itl_ms"] = {"mean": itl}
    seen["tpot_ms"] = {"mean": itl, "p95": itl, "p99": itl}
    unseen = {metric: {stat: _widened(pair, gpu_errors.get(metric, 0.0))
                       for stat, pair in stats.items()} for metric, stats in seen.items()}
    return {"basis": (f"{BAND_QUANTILES[0]:.0%}-{BAND_QUANTILES[1]:.0%} of measured / predicted "
                      f"over {len(fine)} held-out predictions (leave-one-model-out, real vLLM "
                      "H100 runs); p95 pools the runs' p90 and p99"),
            "seen_gpu": seen, "unseen_gpu": unseen}


def _widened(pair: list[float], log_error: float) -> list[float]:
    return [round(pair[0] * math.exp(-log_error), 3), round(pair[1] * math.exp(log_error), 3)]


def other_gpu_errors(profile: Path) -> dict[str, float]:
    """The largest |log(simulated / measured)| of the trained model on the bundled runs of GPUs
    it never saw, per metric (mean TTFT, TPOT, E2E)."""
    from calibrate.replay import deployment_for, latencies, simulated, summary
    from calibrate.sources import llmservingsim

    worst = {"ttft_ms": 0.0, "tpot_ms": 0.0, "itl_ms": 0.0, "e2e_ms": 0.0}
    for run in llmservingsim.read():
        # the bundled runs were made with vLLM 0.19.0 (calibrate/data/llmservingsim_vllm_bench)
        deployment = deployment_for(run, profile=str(profile), vllm_version="0.19.0")
        sim, real = simulated(run, deployment), summary(latencies(run.requests))
        for metric, key in (("TTFT", "ttft_ms"), ("TPOT", "tpot_ms"), ("E2E", "e2e_ms")):
            error = abs(math.log(sim[metric]["mean"] / real[metric]["mean"]))
            worst[key] = max(worst[key], error)
        worst["itl_ms"] = worst["tpot_ms"]
    return worst


# ---- reporting ------------------------------------------------------------------------------

def ape(sim: pd.Series, measured: pd.Series) -> pd.Series:
    return (sim - measured).abs() / measured * 100


def markdown(table: pd.DataFrame) -> str:
    fine = table[table["overloaded"] == "no"].copy()
    for metric in METRICS:
        for name in ("trained", "roofline"):
            fine[f"{metric}_{name}_ape"] = ape(fine[f"{metric}_{name}_ms"],
                                               fine[f"{metric}_measured_ms"])
    lines = ["Per model (median APE of the whole-run means over the model's runs; the trained "
             "model never saw the model it predicts):", "",
             "| model left out | runs | E2E trained | roofline | TTFT trained | roofline "
             "| ITL trained | roofline |", "|---|---|---|---|---|---|---|---|"]
    for model, part in fine.groupby("model", sort=True):
        cells = [f"{part[f'{m}_{n}_ape'].median():.1f} %" for m in METRICS
                 for n in ("trained", "roofline")]
        lines.append(f"| {model} | {len(part)} | " + " | ".join(cells) + " |")
    cells = [f"**{fine[f'{m}_{n}_ape'].median():.1f} %**" for m in METRICS
             for n in ("trained", "roofline")]
    lines.append(f"| **all, median** | {len(fine)} | " + " | ".join(cells) + " |")
    worst = fine.loc[fine["e2e_trained_ape"].idxmax()]
    lines += ["", f"Targets: median E2E ≤ {TARGETS['e2e']:.0f} %, ITL ≤ {TARGETS['itl']:.0f} %, "
              f"TTFT ≤ {TARGETS['ttft']:.0f} %, no run above 20 % on E2E. Largest E2E error: "
              f"{worst['e2e_trained_ape']:.1f} % ({worst['run_id']}); runs above 20 %: "
              f"{int((fine['e2e_trained_ape'] > 20).sum())}.", "",
              "Per run:", "",
              "| run | model | TP | workload | E2E measured / trained / roofline (ms) | APE "
              "| TTFT measured / trained / roofline (ms) | APE | ITL measured / trained / "
              "roofline (ms) | APE |", "|---|---|---|---|---|---|---|---|---|---|"]
    for _, r in fine.iterrows():
        cells = []
        for m in METRICS:
            cells += [f"{r[f'{m}_measured_ms']:,.1f} / {r[f'{m}_trained_ms']:,.1f} / "
                      f"{r[f'{m}_roofline_ms']:,.1f}",
                      f"{r[f'{m}_trained_ape']:.1f} % / {r[f'{m}_roofline_ape']:.1f} %"]
        lines.append(f"| {r['run_id']} | {r['model']} | {r['tp']} | {r['workload']} | "
                     + " | ".join(cells) + " |")
    over = table[table["overloaded"] == "yes"]
    lines += ["", "Overloaded runs (the real engine failed requests or queued for minutes; "
              f"predicted overloaded when a stage's simulated mean TTFT passes "
              f"{SATURATED_TTFT_MS / 1e3:.0f} s):", "",
              "| run | model | measured mean TTFT (ms) | trained: saturated | roofline: saturated |",
              "|---|---|---|---|---|"]
    for _, r in over.iterrows():
        lines.append(f"| {r['run_id']} | {r['model']} | {r['ttft_measured_ms']:,.0f} | "
                     f"{'yes' if r['saturated_trained'] else 'no'} | "
                     f"{'yes' if r['saturated_roofline'] else 'no'} |")
    false_alarms = fine[fine["saturated_trained"]]["run_id"].tolist()
    lines += ["", "Runs the real engine served but the trained model saturated on: "
              + (", ".join(false_alarms) or "none") + "."]
    return "\n".join(lines)


def shipped_folds(models: list[str]) -> dict[str, Path]:
    """The fold profiles written by the last ``--refit``."""
    missing = [m for m in models if not fold_profile(m).is_file()]
    if missing:
        raise SystemExit(f"no fold profile for {', '.join(missing)} in {FOLDS}: run "
                         "python benchmarks/leave_one_model_out.py --refit first")
    return {m: fold_profile(m) for m in models}


def page_block() -> str:
    """The validation page's block: every held-out run predicted now, with the fold profiles
    the last ``--refit`` fitted (refitting takes an hour on two cores, so the page re-predicts
    with the current simulator and leaves the fits to ``--refit``)."""
    runs = read_runs(RUNS)
    table = held_out_table(runs, shipped_folds(sorted({r.model for r in runs})))
    RESULTS.mkdir(parents=True, exist_ok=True)
    table.to_csv(CSV, index=False, float_format="%.6g")
    return markdown(table)


def write_trained_profile(table: pd.DataFrame) -> None:
    """The fit on every model, with the held-out spread as its error band, shipped."""
    import yaml

    data = yaml.safe_load((FOLDS / "all-models.yaml").read_text())
    data["error_band"] = error_band(table, other_gpu_errors(FOLDS / "all-models.yaml"))
    data["source"] += ("; error band from the leave-one-model-out predictions of "
                       "benchmarks/leave_one_model_out.py")
    write_profile(PROFILE, data, written_by="benchmarks/leave_one_model_out.py")
    print(f"wrote {PROFILE}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--refit", action="store_true",
                        help="fit every fold (and the all-models profile) again; cached")
    parser.add_argument("--folds", help="with --refit: only these models' folds (comma-separated)")
    parser.add_argument("--write-profile", action="store_true",
                        help="ship the all-models fit with the held-out error band as the "
                        "trained profile")
    parser.add_argument("--markdown", action="store_true", help="print the tables")
    parser.add_argument("--fits-only", action="store_true", help="with --refit: do not predict")
    args = parser.parse_args()
    started = time.perf_counter()
    runs = read_runs(RUNS)
    models = sorted({r.model for r in runs})
    if args.refit:
        start = start_coefficients()
        chosen = [m for m in models if not args.folds or m in args.folds.split(",")]
        for model in chosen:
            fit_fold(runs, model, start)
        fit_fold(runs, None, start)
        if args.fits_only:
            return
    table = held_out_table(runs, shipped_folds(models))
    RESULTS.mkdir(parents=True, exist_ok=True)
    table.to_csv(CSV, index=False, float_format="%.6g")
    print(f"wrote {CSV} ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    if args.write_profile:
        write_trained_profile(table)
    if args.markdown:
        print(markdown(table))


if __name__ == "__main__":
    main()
