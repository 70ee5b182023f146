"""Benchmark: one hour of chat traffic on one H100 serving Llama-3.1-8B.

~19,800 requests at 5.5 requests/s with Azure-conversation-like lengths (prompts averaging
~1,150 tokens, replies ~210), the load of the Azure LLM inference trace 2023 (conversation).
Prints simulated requests per wall-second and the simulated-time / wall-time ratio; the figures
go into docs/performance.md. Not a test: timings depend on the machine.

    python benchmarks/hour_of_chat.py [--repeat N] [--scenario FILE]
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import statistics
import time
from pathlib import Path

import numpy as np

from sim.config.deployment import resolve
from sim.config.scenario import load_scenario
from sim.fleet.simulation import simulate
from sim.workload.workload import generate_workload

DEFAULT = Path(__file__).resolve().parent.parent / "examples" / "azure-conv-hour-h100.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", type=Path, default=DEFAULT)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--plain", action="store_true",
                        help="also time the plain one-event-per-step mode once, for comparison")
    args = parser.parse_args()
    scenario = load_scenario(args.scenario)
    deployment = resolve(scenario)
    workload = generate_workload(scenario.workload, np.random.default_rng(scenario.seed))
    walls, result = [], None
    for _ in range(args.repeat):
        start = time.perf_counter()
        result = simulate(deployment.setup, workload)
        walls.append(time.perf_counter() - start)
    assert result is not None
    simulated = float(result.records["finish_s"].max())
    best, median = min(walls), statistics.median(walls)
    steps = int(result.steps["num_steps"].sum())
    print(f"scenario          {scenario.name} ({args.scenario.name})")
    print(f"machine           {platform.processor() or platform.machine()}, "
          f"Python {platform.python_version()}")
    print(f"requests          {len(workload):,} arrived, {len(result.records):,} recorded")
    print(f"simulated time    {simulated:,.1f} s ({steps:,} engine steps, "
          f"{len(result.steps):,} step runs)")
    print(f"wall time         best {best:.3f} s, median {median:.3f} s over {args.repeat} runs")
    print(f"requests / wall-s {len(workload) / median:,.0f} (median)")
    print(f"sim / wall ratio  {simulated / median:,.0f}x (median)")
    if args.plain:
        plain_setup = dataclasses.replace(deployment.setup, macro_steps=False)
        start = time.perf_counter()
        simulate(plain_setup, workload)
        plain = time.perf_counter() - start
        print(f"plain mode        {plain:.3f} s wall (one iteration per engine step), "
              f"{plain / median:.1f}x slower")


if __name__ == "__main__":
    main()
