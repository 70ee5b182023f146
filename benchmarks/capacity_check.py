"""Is saturation predicted? ``servesim capacity`` on each of the 47 real vLLM H100 runs.

For every run, the highest arrival rate its deployment sustains is found by
``sim.planning.capacity`` under the run's own load shape (its prompts, replies and prefix groups),
with the latency model fitted without the run's model (the leave-one-model-out fold profiles of
``benchmarks/leave_one_model_out.py``) and one lenient SLO: p95 TTFT at most 10 s, the point
past which the real runs' load generator recorded failures and minutes of queueing. Each
search simulates a single stage of 120 s at a trial rate.

The real engine was overloaded (``overloaded = yes``) in five runs, each in its last stage; it
kept up with every stage of the others. The prediction agrees with a run when the capacity is
below the last stage's rate of an overloaded run, and at or above the highest stage rate of a
run that kept up.

    python benchmarks/capacity_check.py [--markdown]
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.leave_one_model_out import RUNS, fold_profile  # noqa: E402
from calibrate.deployment_runs import parse_stages, read_runs, scenario_for  # noqa: E402
from sim.config.scenario import parse_scenario
from sim.planning.capacity import find_capacity

SLO_TTFT_P95_MS = 10_000.0
STAGE_SECONDS = 120.0
CSV = ROOT / "benchmarks" / "results" / "capacity_check.csv"


def capacity_of(row: dict) -> dict:
    stages = parse_stages(str(row["stages"]))
    top = max(s["rate_per_s"] for s in stages)
    spec = scenario_for(row, profile=str(fold_profile(row["model"])))
    spec["workload"]["stages"] = [{"rate_per_s": top, "duration_s": STAGE_SECONDS}]
    spec["slo"] = {"ttft_p95_ms": SLO_TTFT_P95_MS}
    found = find_capacity(parse_scenario(spec))
    return {"run_id": row["run_id"], "model": row["model"], "top_rate_per_s": top,
            "capacity_per_s": found.max_rate_per_s, "band_low": found.band_low,
            "band_high": found.band_high, "simulations": len(found.checked)}


def check(runs) -> pd.DataFrame:
    with ProcessPoolExecutor() as pool:
        rows = list(pool.map(capacity_of, [r.row for r in runs], chunksize=1))
    table = pd.DataFrame(rows)
    table["overloaded"] = ["yes" if r.overloaded else "no" for r in runs]
    predicted = table["capacity_per_s"].fillna(0.0) < table["top_rate_per_s"]
    table["predicted_overloaded"] = predicted.map({True: "yes", False: "no"})
    table["agrees"] = table["predicted_overloaded"] == table["overloaded"]
    return table


def markdown(table: pd.DataFrame) -> str:
    lines = ["| run | model | highest stage rate (req/s) | real engine overloaded | predicted "
             "capacity (req/s, band) | predicted overloaded | agrees |",
             "|---|---|---|---|---|---|---|"]
    for _, r in table.iterrows():
        band = ("" if pd.isna(r["band_low"]) else
                f" ({r['band_low']:.1f}–{r['band_high']:.1f})")
        capacity = "none" if pd.isna(r["capacity_per_s"]) else f"{r['capacity_per_s']:.1f}{band}"
        lines.append(f"| {r['run_id']} | {r['model']} | {r['top_rate_per_s']:g} | "
                     f"{r['overloaded']} | {capacity} | {r['predicted_overloaded']} | "
                     f"{'yes' if r['agrees'] else '**no**'} |")
    over = table[table["overloaded"] == "yes"]
    kept = table[table["overloaded"] == "no"]
    lines += ["", f"Overloaded runs predicted overloaded: {int(over['agrees'].sum())} of "
              f"{len(over)}; runs that kept up predicted to keep up: {int(kept['agrees'].sum())} "
              f"of {len(kept)}."]
    return "\n".join(lines)


def page_block() -> str:
    table = check(read_runs(RUNS))
    CSV.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(CSV, index=False, float_format="%.6g")
    return markdown(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    block = page_block()
    if args.markdown:
        print(block)


if __name__ == "__main__":
    main()
