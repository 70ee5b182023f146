"""Benchmark: how fast the app answers a change of settings on a 10,000-request scenario.

The Explore page's default scenario (Llama-3.1-8B chat on one H100) made 10,000 requests long,
at 8 requests/s: the time from its YAML to everything the page draws (simulation, summary,
timeline and CDF frames), uncached, and again from the cache. The figures go into
docs/performance.md. Not a test: timings depend on the machine.

    python benchmarks/app_speed.py [--repeat N]
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import platform
import statistics
import time

import yaml

from app.explore_form import ExploreInputs, scenario_document
from app.simulation import simulate, simulate_yaml, scenario_from_yaml

REQUESTS = 10_000


def scenario_text(scheduler: str = "continuous") -> str:
    inputs = ExploreInputs(scheduler=scheduler)
    doc = scenario_document(dataclasses.replace(inputs, duration_s=REQUESTS / inputs.rate_per_s))
    doc["workload"]["num_requests"] = REQUESTS
    del doc["workload"]["duration_s"]
    return yaml.safe_dump(doc, sort_keys=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    logging.getLogger("streamlit").setLevel(logging.ERROR)  # no "missing runtime" warnings
    print(f"machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}")
    for scheduler in ("continuous", "dynamic"):
        text = scenario_text(scheduler)
        scenario = scenario_from_yaml(text)
        runs, walls = [], []
        for _ in range(args.repeat):
            start = time.perf_counter()
            run = simulate(scenario)
            walls.append(time.perf_counter() - start)
            runs.append(run)
        simulate_yaml(text)  # fill the cache
        start = time.perf_counter()
        simulate_yaml(text)
        cached = time.perf_counter() - start
        requests = len(runs[0].records)
        print(f"{scheduler:>10}: {requests:,} requests, simulated {runs[0].summary['duration_s']:,.0f} s;"
              f" uncached median {statistics.median(walls):.2f} s (min {min(walls):.2f},"
              f" max {max(walls):.2f}); from the cache {cached * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
