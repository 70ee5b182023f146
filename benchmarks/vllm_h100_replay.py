"""Replay 47 real vLLM v0.15.1 deployments on H100 and measure the simulator's error on each.

The runs (calibrate/data/vllm_h100_runs, see its PROVENANCE.md) give only run- and stage-level
figures, so each run's load is rebuilt from its settings: inference-perf's shared-prefix load
(a fixed set of groups x prompts cycled through, so a prompt recurs whole), staged Poisson
arrivals, every reply as long as the run's realised mean output. The simulated mean E2E, TTFT
and ITL (the data's own definition: (mean E2E - mean TTFT) / (mean output - 1)) are compared with
the measured ones as absolute percentage errors (APE), per run and per stage.

Overloaded runs (``overloaded = yes``: the real engine failed requests or queued for minutes)
have no comparable latencies; for them the question is whether the simulation saturates too:
``saturated`` = the simulated mean TTFT of some stage exceeds 10 s.

    python benchmarks/vllm_h100_replay.py [--out CSV] [--markdown] [--runs SUBSTRING] [--label NAME]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from calibrate.deployment_runs import (MAX_MODEL_LEN, leading_int, mean_figures,  # noqa: E402,F401
                                       median_template_extra, parse_stages, stage_of,
                                       template_extra)
from calibrate.deployment_runs import extra_prompt_tokens as runs_extra_prompt_tokens  # noqa: E402
from calibrate.deployment_runs import scenario_for as runs_scenario_for  # noqa: E402
from sim.config.scenario import parse_scenario
from sim.runner.run import run_scenario

DATA = ROOT / "calibrate" / "data" / "vllm_h100_runs"
STEPS = ROOT / "calibrate" / "data" / "h100_vllm_steps" / "enriched_steps.parquet"
BEFORE_CSV = ROOT / "benchmarks" / "results" / "vllm_h100_replay-before.csv"
SATURATED_TTFT_MS = 10_000.0  # a stage whose simulated mean TTFT passes this has saturated
METRICS = ("e2e", "ttft", "itl")


# ---- the data -------------------------------------------------------------------------------

def load_runs() -> pd.DataFrame:
    return pd.read_csv(DATA / "runs.csv")


def load_stages() -> pd.DataFrame:
    return pd.read_csv(DATA / "stages.csv")


@lru_cache(maxsize=1)
def _bundled_median_extra() -> float:
    return median_template_extra(load_runs())


def extra_prompt_tokens(row: pd.Series | dict) -> int:
    """The chat template's tokens of a run: measured, or the bundled runs' median."""
    return runs_extra_prompt_tokens(dict(row), _bundled_median_extra())


def scenario_for(row: pd.Series | dict) -> dict:
    """The servesim scenario that rebuilds one measured run (``calibrate.deployment_runs``)."""
    return runs_scenario_for(dict(row) | {"template_extra_tokens": extra_prompt_tokens(row)})


@lru_cache(maxsize=1)
def step_fitted_runs() -> frozenset[str]:
    """Runs whose engine steps the shipped calibrated profile was fitted on (in-sample)."""
    experiments = pd.read_parquet(STEPS, columns=["experiment_id"])["experiment_id"].unique()
    return frozenset(f"tr-{experiment}" for experiment in experiments)


# ---- one run --------------------------------------------------------------------------------

def simulate_run(row: dict) -> dict:
    """Simulate one run; its simulated means, per stage too, and what the engine did."""
    started = time.perf_counter()
    outcome = run_scenario(parse_scenario(scenario_for(row)))
    records = outcome.result.records
    done = records[records["status"] == "completed"].assign(
        e2e_s=lambda r: r["finish_s"] - r["arrival_s"],
        ttft_s=lambda r: r["first_token_s"] - r["arrival_s"],
    )
    stages = parse_stages(row["stages"])
    stage = stage_of(done["arrival_s"].to_numpy(), stages)
    by_stage = {s: mean_figures(done[stage == s]) for s in range(len(stages))}
    summary = outcome.summary
    return {
        "run_id": row["run_id"],
        "sim": mean_figures(done),
        "sim_stages": by_stage,
        "completed": len(done),
        "arrived": len(records),
        "num_gpu_blocks": summary["kv"]["num_gpu_blocks"],
        "prefix_cache_hit_rate": summary["kv"]["prefix_cache_hit_rate"],
        "preemptions": summary["kv"]["preemptions"],
        "profile_calibrated": summary["latency_profile"]["calibrated_for_this_configuration"],
        "profile_trained_on_run": _trained_on(summary, row["run_id"]),
        "wall_s": time.perf_counter() - started,
    }


# ---- comparing ------------------------------------------------------------------------------

def ape(simulated: float, measured: float) -> float:
    return abs(simulated - measured) / measured * 100.0


def _trained_on(summary: dict, run_id: str) -> bool:
    """Whether a profile trained on runs (the per-operator ``trained``) saw this run: it was
    trained on every bundled run that was not overloaded, of every model it lists."""
    seen = summary["prediction"]["in_training_data"]
    return bool(seen and seen["model"])


def held_out(run_id: str, profile_calibrated: bool, trained_on_run: bool = False) -> str:
    if run_id in step_fitted_runs():
        return "no: its steps fitted the profile"
    if profile_calibrated:
        return "no: profile fitted to this configuration"
    if trained_on_run:
        return "no: the trained profile saw this model's runs"
    return "yes"


def result_row(run: pd.Series, stages: pd.DataFrame, sim: dict) -> dict:
    """One CSV row: the run, its measured and simulated means and their errors."""
    overloaded = run["overloaded"] == "yes"
    out: dict[str, Any] = {
        "run_id": run["run_id"], "model": run["model"], "tp": int(run["tensor_parallel"]),
        "replicas": int(run["data_parallel"]), "workload": run["workload"],
        "max_num_batched_tokens": int(run["max_num_batched_tokens"]),
        "overloaded": run["overloaded"],
        "held_out": held_out(run["run_id"], sim["profile_calibrated"],
                             sim.get("profile_trained_on_run", False)),
    }
    measured = {metric: float(run[f"{metric}_mean_ms"]) for metric in METRICS}
    for metric in METRICS:
        out[f"{metric}_measured_ms"] = measured[metric]
        out[f"{metric}_sim_ms"] = sim["sim"][metric]
        out[f"{metric}_ape"] = (float("nan") if overloaded
                                else ape(sim["sim"][metric], measured[metric]))
    for s, figures in sim["sim_stages"].items():
        stage = stages[(stages["run_id"] == run["run_id"]) & (stages["stage"] == s)]
        for metric in METRICS:
            real = float(stage[f"{metric}_mean_ms"].iloc[0]) if len(stage) else float("nan")
            out[f"s{s}_{metric}_measured_ms"] = real
            out[f"s{s}_{metric}_sim_ms"] = figures[metric]
            out[f"s{s}_{metric}_ape"] = float("nan") if overloaded else ape(figures[metric], real)
    saturated = any(f["ttft"] > SATURATED_TTFT_MS for f in sim["sim_stages"].values())
    out |= {
        "sim_saturated": "yes" if saturated else "no",
        "sim_completed": sim["completed"], "sim_arrived": sim["arrived"],
        "sim_num_gpu_blocks": sim["num_gpu_blocks"],
        "sim_prefix_cache_hit_rate": sim["prefix_cache_hit_rate"],
        "sim_preemptions": sim["preemptions"], "wall_s": sim["wall_s"],
    }
    return out


def replay(runs: pd.DataFrame, workers: int | None = None) -> pd.DataFrame:
    """Simulate every run in a process pool; one result row per run, in the data's order."""
    stages = load_stages()
    rows = [row.to_dict() for _, row in runs.iterrows()]
    results: dict[str, dict] = {}
    with ProcessPoolExecutor(max_workers=workers or os.cpu_count() or 2) as pool:
        futures = {pool.submit(simulate_run, row): row["run_id"] for row in rows}
        for done, future in enumerate(as_completed(futures), start=1):
            sim = future.result()
            results[sim["run_id"]] = sim
            print(f"[{done}/{len(rows)}] {sim['run_id']} ({sim['wall_s']:.1f} s)",
                  file=sys.stderr, flush=True)
    return pd.DataFrame([result_row(run, stages, results[run["run_id"]])
                         for _, run in runs.iterrows()])


def code_version() -> dict[str, str]:
    """The commit the figures were made at, and any tracked file of sim/ changed since."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                                  check=True).stdout
        except (OSError, subprocess.CalledProcessError):
            return ""

    changed = git("status", "--porcelain", "--untracked-files=no", "--", "sim")
    files = sorted(line.split(maxsplit=1)[1] for line in changed.splitlines() if line.strip())
    return {"commit": git("rev-parse", "--short", "HEAD").strip() or "unknown",
            "uncommitted_sim_files": " ".join(files)}


# ---- reporting ------------------------------------------------------------------------------

def _pct(value: float) -> str:
    return "–" if pd.isna(value) else f"{value:.1f} %"


def _ms(value: float) -> str:
    return "–" if pd.isna(value) else f"{value:,.1f}"


def run_table(results: pd.DataFrame) -> str:
    lines = ["| run | model | TP | workload | token budget | held out | E2E measured / sim (ms) "
             "| APE | TTFT measured / sim (ms) | APE | ITL measured / sim (ms) | APE |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for _, r in results.iterrows():
        run = r["run_id"] + (" (overloaded)" if r["overloaded"] == "yes" else "")
        tp = str(r["tp"]) + (f" ×{r['replicas']}" if r["replicas"] > 1 else "")
        cells = [run, r["model"], tp, r["workload"], f"{r['max_num_batched_tokens']:,}",
                 r["held_out"]]
        for metric in METRICS:
            cells += [f"{_ms(r[f'{metric}_measured_ms'])} / {_ms(r[f'{metric}_sim_ms'])}",
                      _pct(r[f"{metric}_ape"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def median_table(results: pd.DataFrame) -> str:
    """Median APEs over the runs that were not overloaded: all, held out only, by model."""
    fine = results[results["overloaded"] != "yes"]
    groups = [("all", fine), ("held out only", fine[fine["held_out"] == "yes"])]
    groups += [(model, part) for model, part in fine.groupby("model", sort=True)]
    lines = ["| runs | n | E2E | TTFT | ITL |", "|---|---|---|---|---|"]
    for name, part in groups:
        cells = [_pct(part[f"{metric}_ape"].median()) for metric in METRICS]
        lines.append(f"| {name} | {len(part)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def stage_median_table(results: pd.DataFrame) -> str:
    fine = results[results["overloaded"] != "yes"]
    lines = ["| stage | n | E2E | TTFT | ITL |", "|---|---|---|---|---|"]
    for s in (0, 1):
        if f"s{s}_e2e_ape" not in fine:
            continue
        part = fine[fine[f"s{s}_e2e_ape"].notna()]
        cells = [_pct(part[f"s{s}_{metric}_ape"].median()) for metric in METRICS]
        lines.append(f"| {s} | {len(part)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def overload_table(results: pd.DataFrame) -> str:
    lines = [f"| run | measured mean TTFT (ms) | simulated mean TTFT (ms) | simulation saturated "
             f"(a stage's mean TTFT > {SATURATED_TTFT_MS / 1e3:.0f} s) |", "|---|---|---|---|"]
    for _, r in results[results["overloaded"] == "yes"].iterrows():
        lines.append(f"| {r['run_id']} | {_ms(r['ttft_measured_ms'])} | {_ms(r['ttft_sim_ms'])} "
                     f"| {r['sim_saturated']} |")
    false_alarms = results[(results["overloaded"] != "yes") & (results["sim_saturated"] == "yes")]
    lines.append("")
    lines.append(f"Runs the real engine served but the simulation saturated on: "
                 f"{', '.join(false_alarms['run_id']) or 'none'}.")
    return "\n".join(lines)


def markdown(results: pd.DataFrame) -> str:
    return "\n\n".join([
        run_table(results),
        "Median APE over the runs that were not overloaded:",
        median_table(results),
        "Per stage (runs with stages, not overloaded):",
        stage_median_table(results),
        "Overloaded runs:",
        overload_table(results),
    ])


def comparison_table(before: pd.DataFrame, now: pd.DataFrame) -> str:
    """Per-run APEs of the mean E2E, TTFT and ITL, before and now, and their medians."""
    merged = before.merge(now, on="run_id", suffixes=("_before", "_now"))
    lines = ["| run | model | TP | workload | held out | E2E before | now | TTFT before | now "
             "| ITL before | now |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for _, r in merged.iterrows():
        if r["overloaded_now"] == "yes":
            cells = [f"overloaded; saturated before: {r['sim_saturated_before']}, "
                     f"now: {r['sim_saturated_now']}"] + [""] * 5
        else:
            cells = [_pct(r[f"{metric}_ape_{when}"]) for metric in METRICS
                     for when in ("before", "now")]
        lines.append(f"| {r['run_id']} | {r['model_now']} | {r['tp_now']} | {r['workload_now']} "
                     f"| {r['held_out_now']} | " + " | ".join(cells) + " |")
    fine = merged[merged["overloaded_now"] != "yes"]
    held = fine[fine["held_out_now"] == "yes"]
    for name, part in ((f"median, {len(fine)} runs not overloaded", fine),
                       (f"median, {len(held)} of them held out", held)):
        cells = [_pct(part[f"{metric}_ape_{when}"].median()) for metric in METRICS
                 for when in ("before", "now")]
        lines.append(f"| **{name}** | | | | | " + " | ".join(f"**{c}**" for c in cells) + " |")
    return "\n".join(lines)


def page_block() -> str:
    """The validation page's block: the saved "before" figures beside a fresh run now."""
    before = pd.read_csv(BEFORE_CSV)
    now = replay(load_runs())
    version = code_version()
    return "\n".join([
        "Absolute percentage error of the mean. Before: "
        + _described(before["commit"].iloc[0], before["uncommitted_sim_files"].fillna("").iloc[0])
        + f" (`{BEFORE_CSV.relative_to(ROOT)}`). Now: "
        + _described(version["commit"], version["uncommitted_sim_files"]) + ".",
        "",
        comparison_table(before, now),
    ])


def _described(commit: str, changed_files: str) -> str:
    changed = f" with uncommitted changes to {', '.join(changed_files.split())}"
    return f"commit {commit}" + (changed if changed_files else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="write one row per run to this CSV")
    parser.add_argument("--markdown", action="store_true", help="print markdown tables")
    parser.add_argument("--runs", help="only the runs whose id contains this text")
    parser.add_argument("--label", default="", help="a name for these figures, kept in the CSV")
    args = parser.parse_args()
    runs = load_runs()
    if args.runs:
        runs = runs[runs["run_id"].str.contains(args.runs, regex=False)]
        if runs.empty:
            raise SystemExit(f"no run id contains {args.runs!r}")
    started = time.perf_counter()
    results = replay(runs)
    print(f"{len(runs)} runs simulated in {time.perf_counter() - started:.0f} s",
          file=sys.stderr)
    version = code_version()
    results.insert(0, "label", args.label)
    results.insert(1, "commit", version["commit"])
    results.insert(2, "uncommitted_sim_files", version["uncommitted_sim_files"])
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        results.to_csv(args.out, index=False, float_format="%.6g")
        print(f"wrote {args.out}", file=sys.stderr)
    if args.markdown:
        print(markdown(results))


if __name__ == "__main__":
    main()
