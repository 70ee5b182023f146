"""How long `servesim plan` takes to answer "the cheapest fleet holding p95 TTFT <= X ms at
Y req/s" across five GPU tiers and three weight formats, with the local executor on all cores.

    python benchmarks/plan_speed.py [--seeds N]

Prints one markdown row for docs/performance.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sim.config.scenario import load_scenario
from sim.planning.executor import make_executor
from sim.planning.plan import candidates, plan

SCENARIO = ROOT / "examples" / "plan-chat-8b.yaml"
GPUS = ["h100-sxm", "a100-80gb", "l40s", "l4", "a10g"]
FORMATS = ["bf16", "fp8", "awq-int4"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    scenario = load_scenario(SCENARIO)
    space = candidates(GPUS, FORMATS, [1])
    seeds = list(range(args.seeds))
    started = time.perf_counter()
    plans = plan(scenario, space, seeds, make_executor("local"))
    wall = time.perf_counter() - started
    feasible = [p for p in plans if p.status == "ok"]
    best = feasible[0] if feasible else None
    answer = (f"{best.replicas} x {best.candidate.gpu} {best.candidate.weight_dtype}, "
              f"${best.usd_per_hour:.2f}/h" if best else "none feasible")
    print(f"| {len(GPUS)} GPU tiers x {len(FORMATS)} formats, {len(seeds)} seeds | "
          f"{os.cpu_count()} | {sum(p.simulations for p in plans)} | {wall:.1f} s | {answer} |")


if __name__ == "__main__":
    main()
