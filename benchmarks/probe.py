"""One measurement of the simulator in whatever source tree comes first on PYTHONPATH.

The performance scripts run this in a fresh process per measurement, once with this checkout
and once with an earlier commit's worktree, so both are timed by the same code. It knows both
layouts of the package (before and after sim/ was split into packages).

    PYTHONPATH=TREE python benchmarks/probe.py SCENARIO [--set KEY=VALUE ...] [--bytecodes]

Prints one JSON line: the simulation's wall time (workload generation and catalog lookups
outside it), requests, engine steps, loop iterations and the process's peak resident memory.
With ``--bytecodes`` the simulation runs twice, the second time under a tracer that counts the
Python bytecodes it executes: a measure of the work that, unlike time, the machine's load does
not move (the tracer makes that run ~30x slower; its wall time is not reported).
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def _api():
    """(load_scenario, resolve, generate_workload, simulate) of the tree being measured."""
    try:
        from sim.config.deployment import resolve
        from sim.config.scenario import load_scenario
        from sim.fleet.simulation import simulate
        from sim.workload.workload import generate_workload
    except ImportError:  # the flat layout before sim/ was split into packages
        from sim.engine import simulate
        from sim.run import resolve
        from sim.scenario import load_scenario
        from sim.workload import generate_workload
    return load_scenario, resolve, generate_workload, simulate


def peak_rss_mib() -> float:
    """The process's peak resident set (VmHWM: ru_maxrss would count a parent's peak)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--bytecodes", action="store_true",
                        help="also count the Python bytecodes a second simulation executes")
    parser.add_argument("--setup-only", action="store_true",
                        help="stop before simulating (what an instruction count subtracts)")
    args = parser.parse_args()
    import numpy as np

    load_scenario, resolve, generate_workload, simulate = _api()
    scenario = load_scenario(args.scenario, args.overrides)
    setup = resolve(scenario).setup
    workload = generate_workload(scenario.workload, np.random.default_rng(scenario.seed))
    if args.setup_only:
        return
    start = time.perf_counter()
    result = simulate(setup, workload)
    wall = time.perf_counter() - start
    figures = {"wall_s": wall, "requests": len(result.records),
               "steps": int(result.steps["num_steps"].sum()), "runs": len(result.steps),
               "peak_rss_mib": peak_rss_mib()}
    if args.bytecodes:
        figures["bytecodes"] = bytecodes(lambda: simulate(setup, workload))
    print(json.dumps(figures))


def bytecodes(run) -> int:
    """Python bytecodes executed by ``run()`` (C code, numpy's inside, is not counted)."""
    count = 0

    def tracer(frame, event, arg):
        nonlocal count
        if event == "call":
            frame.f_trace_opcodes = True
            frame.f_trace_lines = False
        elif event == "opcode":
            count += 1
        return tracer

    sys.settrace(tracer)
    try:
        run()
    finally:
        sys.settrace(None)
    return count


if __name__ == "__main__":
    main()
