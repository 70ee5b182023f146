"""Regenerate the speed figures of docs/performance.md: this checkout beside an earlier commit.

Every measurement runs in a fresh process (``benchmarks/probe.py`` or the command line itself),
once with an earlier commit's source tree (a temporary git worktree) and once with this
checkout, on the same machine and in alternation where it is repeated, so a machine that drifts
slows both alike. The page's blocks between ``<!-- generated: NAME -->`` and
``<!-- end: NAME -->`` are replaced; the prose around them is kept.

    python benchmarks/performance_page.py [--ref COMMIT] [--requests N] [--quick] [BLOCK ...]

Blocks (all by default): ``targets`` (the speed targets, before and now), ``prefix-length``
(cost per request as shared prefixes grow), ``instructions`` (callgrind's instruction count,
before and now: the figure the machine's load does not move), ``bytecodes`` (Python bytecodes
per request for one, 8 and 64 replicas, before and now), and the printed output of
``trace-streaming``, ``plan`` and ``app`` (benchmarks/trace_streaming.py, plan_speed.py,
app_speed.py); ``long-replay`` (benchmarks/long_replay.py: 20 million trace rows on 64
replicas, about 40 minutes) only when named. ``--quick`` runs 100,000 requests instead of a million, for a try-out: the page
says which sizes it measured. About 25 minutes in all on a 2-core machine. Not a test: the
figures depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "performance.md"
PROBE = ROOT / "benchmarks" / "probe.py"
# the flat sim/ layout, eager command registration and engine before this page's targets
BEFORE_REF = "64df7b5"
HOUR = ROOT / "examples" / "azure-conv-hour-h100.yaml"
FLEET = ROOT / "benchmarks" / "eight-replicas-hour.yaml"
SHARED = ROOT / "benchmarks" / "eight-replicas-shared-prefix.yaml"
# A long run's window: both fleet scenarios arrive at 44-45 requests/s, so N requests need
# about N / 44 seconds; a window of N / 40 seconds holds them and the count ends the run. (A
# window far longer would generate, and hold in memory, arrivals that are never simulated.)
REQUESTS_PER_S_AT_LEAST = 40


def _long_run(requests: int) -> tuple[str, str]:
    return (f"workload.num_requests={requests}",
            f"workload.duration_s={requests / REQUESTS_PER_S_AT_LEAST:.0f}")

# (figure, the target's bound, unit); "met" compares the figure now with the bound
TARGETS = {
    "help": ("`servesim --help`, process start to exit", 0.3, "s"),
    "run": ("`servesim run azure-conv-hour-h100.yaml`, process start to output", 1.0, "s"),
    "hour": ("the hour of chat on one H100, simulation", 0.5, "s"),
    "million": ("{n} requests, 8 replicas, least-outstanding, chat lengths", 30.0, "s"),
    "million_rss": ("the same, peak memory of the process", 1536.0, "MiB"),
    "million_prefix": ("{n} requests, 8 replicas, 1,500-token shared prefixes", 45.0, "s"),
    "linear": ("10x the requests (one replica, 10 h against 1 h of chat): time ratio", 10.5, "x"),
}


# ---- running one measurement in a tree ---------------------------------------------------------


def _env(tree: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(tree)}


def cli_module(tree: Path) -> str:
    return "sim.commands.cli" if (tree / "sim" / "commands" / "cli.py").exists() else "sim.cli"


def command_wall(tree: Path, *argv: str) -> float:
    """Seconds from starting ``servesim ARGV`` (as ``python -m``) in ``tree`` to its exit."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", cli_module(tree), *argv], cwd=tree, env=_env(tree),
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def probe(tree: Path, scenario: Path, *overrides: str, extra: tuple[str, ...] = ()) -> dict:
    """One simulation in a fresh process (``benchmarks/probe.py``)."""
    argv = [sys.executable, str(PROBE), str(scenario), *extra]
    for item in overrides:
        argv += ["--set", item]
    done = subprocess.run(argv, cwd=tree, env=_env(tree), capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"probe failed in {tree}:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def alternate(trees: dict[str, Path], rounds: int, measure: Callable[[Path], float],
              label: str) -> dict[str, float]:
    """Median of ``rounds`` alternating measurements per tree."""
    values: dict[str, list[float]] = {name: [] for name in trees}
    for i in range(rounds):
        for name, tree in trees.items():
            values[name].append(measure(tree))
            print(f"  {label} {i + 1}/{rounds} {name}: {values[name][-1]:.3f}", file=sys.stderr,
                  flush=True)
    return {name: statistics.median(v) for name, v in values.items()}


# ---- the blocks -------------------------------------------------------------------------------


def measure_targets(trees: dict[str, Path], requests: int) -> dict[str, dict[str, float]]:
    """Every target's figure, before and now."""
    figures: dict[str, dict[str, float]] = {}
    print("servesim --help", file=sys.stderr)
    figures["help"] = alternate(trees, 7, lambda t: command_wall(t, "--help"), "help")
    print("servesim run (the hour of chat)", file=sys.stderr)
    figures["run"] = alternate(
        trees, 3, lambda t: command_wall(t, "run", str(HOUR), "--no-progress", "--format",
                                         "json"), "run")
    print("the hour's simulation", file=sys.stderr)
    hours = {name: [] for name in trees}

    def hour(tree: Path) -> float:
        result = probe(tree, HOUR)
        hours[next(n for n, t in trees.items() if t == tree)].append(result)
        return result["wall_s"]

    figures["hour"] = alternate(trees, 3, hour, "hour")
    print("ten hours (cost linear in work)", file=sys.stderr)
    ten = alternate(trees, 1, lambda t: probe(t, HOUR, "workload.duration_s=36000")["wall_s"],
                    "10 h")
    figures["linear"] = {name: ten[name] / figures["hour"][name] for name in trees}
    for key, scenario in (("million", FLEET), ("million_prefix", SHARED)):
        print(f"{requests:,} requests: {scenario.name}", file=sys.stderr)
        runs = {name: probe(tree, scenario, *_long_run(requests))
                for name, tree in trees.items()}
        for name, run in runs.items():
            print(f"  {name}: {run['wall_s']:.1f} s, {run['peak_rss_mib']:.0f} MiB",
                  file=sys.stderr, flush=True)
            if run["requests"] != requests:
                raise SystemExit(f"{scenario.name} gave {run['requests']:,} requests, not "
                                 f"{requests:,}: its window is too short")
        figures[key] = {name: run["wall_s"] for name, run in runs.items()}
        if key == "million":
            figures["million_rss"] = {name: run["peak_rss_mib"] for name, run in runs.items()}
    return figures


def targets_block(figures: dict[str, dict[str, float]], ref: str, requests: int) -> str:
    lines = [
        f"{_machine()}. Before: commit {ref}; now: this checkout. Times are wall-clock, medians "
        "of alternating runs (7 for `--help`, 3 for the hour, one for the longer runs).",
        "",
        "| figure | before | now | now / before | target | met |",
        "|---|---|---|---|---|---|",
    ]
    for key, (text, bound, unit) in TARGETS.items():
        before, now = figures[key]["before"], figures[key]["now"]
        name = text.format(n=f"{requests:,}")
        lines.append(f"| {name} | {_value(before, unit)} | {_value(now, unit)} | "
                     f"{now / before:.2f} | ≤ {_value(bound, unit)} | "
                     f"{'yes' if now <= bound else '**no**'} |")
    return "\n".join(lines)


PREFIX_TOKENS = (100, 500, 1500, 4000)


def prefix_block(trees: dict[str, Path], requests: int) -> str:
    """Cost per request as the shared system prompt grows, the rest of the load unchanged."""
    rows = []
    for tokens in PREFIX_TOKENS:
        print(f"shared prefix of {tokens} tokens", file=sys.stderr)
        runs = {name: probe(tree, SHARED, *_long_run(requests),
                            f"workload.shared_prefix.system_prompt_tokens={tokens}")
                for name, tree in trees.items()}
        rows.append((tokens, runs))
    lines = [
        f"{requests:,} requests of `eight-replicas-shared-prefix.yaml` per row, only the "
        "system prompt's length changed; microseconds of simulation per request.",
        "",
        "| shared system prompt (tokens) | engine steps | before (µs/request) "
        "| now (µs/request) |",
        "|---|---|---|---|",
    ]
    for tokens, runs in rows:
        per = {n: 1e6 * r["wall_s"] / r["requests"] for n, r in runs.items()}
        lines.append(f"| {tokens:,} | {runs['now']['steps']:,} | {per['before']:.0f} | "
                     f"{per['now']:.0f} |")
    return "\n".join(lines)


def instructions_block(trees: dict[str, Path]) -> str:
    """Instructions executed simulating ten minutes of the hour (callgrind): a count that does
    not drift with the machine's load, unlike wall time."""
    from before_after import instructions  # benchmarks/ is on sys.path: this file is there

    counts = {}
    for name, tree in trees.items():
        print(f"counting instructions: {name} (minutes)", file=sys.stderr, flush=True)
        counts[name] = instructions(tree, HOUR, ("workload.duration_s=600",))
    return (f"Instructions executed simulating the first ten minutes of `{HOUR.name}` "
            "(valgrind's callgrind; the count of a full run minus one that stops before "
            f"simulating): before {counts['before'] / 1e9:.3f} G, "
            f"now {counts['now'] / 1e9:.3f} G, "
            f"now / before {counts['now'] / counts['before']:.3f}.")


# (label, scenario, overrides) of the bytecode counts: short slices, as the tracer is slow
BYTECODE_RUNS = (
    ("one replica: the hour of chat, first 5 minutes", HOUR, ("workload.duration_s=300",)),
    ("8 replicas: `eight-replicas-hour.yaml`, first minute", FLEET, ("workload.duration_s=60",)),
    ("64 replicas at 300 requests/s, 20 seconds", FLEET,
     ("hardware.replicas=64", "workload.arrivals.rate_per_s=300", "workload.duration_s=20")),
)


def bytecodes_block(trees: dict[str, Path]) -> str:
    """Python bytecodes per request (benchmarks/probe.py --bytecodes): deterministic, so a
    change of a few percent shows, where wall times on this machine drift by tens."""
    lines = ["Python bytecodes executed per simulated request (a tracer counts them; numpy's "
             "C code is not counted), before and now:", "",
             "| run | requests | before | now | now / before |", "|---|---|---|---|---|"]
    for label, scenario, overrides in BYTECODE_RUNS:
        print(f"bytecodes: {label}", file=sys.stderr, flush=True)
        per = {}
        for name, tree in trees.items():
            run = probe(tree, scenario, *overrides, extra=("--bytecodes",))
            per[name] = run["bytecodes"] / run["requests"]
        lines.append(f"| {label} | {run['requests']:,} | {per['before']:,.0f} | "
                     f"{per['now']:,.0f} | {per['now'] / per['before']:.2f} |")
    return "\n".join(lines)


# other benchmark scripts whose printed output the page shows as it is: (block, argv, header)
SCRIPTS = {
    "trace-streaming": (["benchmarks/trace_streaming.py"], None),
    "plan": (["benchmarks/plan_speed.py", "--seeds", "3"],
             "| question | cores | simulations | wall | answer |\n|---|---|---|---|---|"),
    "app": (["benchmarks/app_speed.py", "--repeat", "5"], None),
    "long-replay": (["benchmarks/long_replay.py"], None),
}
LONG = {"long-replay"}  # run only when named: 20 million requests take about 40 minutes
MARKDOWN = {"long-replay"}  # scripts that print a Markdown table of their own


def script_block(name: str) -> str:
    argv = SCRIPTS[name][0]
    print(f"running {' '.join(argv)}", file=sys.stderr, flush=True)
    done = subprocess.run([sys.executable, *argv], cwd=ROOT, env=_env(ROOT), capture_output=True,
                          text=True)
    if done.returncode:
        raise SystemExit(f"{argv[0]} failed:\n{done.stderr[-2000:]}")
    return script_text(name, done.stdout)


def script_text(name: str, output: str) -> str:
    """The block of a script's printed ``output``."""
    argv, header = SCRIPTS[name]
    output = output.strip()
    if name in MARKDOWN:
        body = output
    else:
        body = f"{header}\n{output}" if header else f"```text\n{output}\n```"
    return f"{_machine()}, `{' '.join(['python', *argv])}`:\n\n{body}"


# ---- the page ----------------------------------------------------------------------------------


def _value(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value:.2f} s" if value < 10 else f"{value:,.1f} s"
    if unit == "MiB":
        return f"{value:,.0f} MiB"
    return f"{value:.2f}x"


def _machine() -> str:
    cores = os.cpu_count()
    return (f"Measured {time.strftime('%Y-%m-%d')} on {platform.machine()} ({cores} cores), "
            f"Python {platform.python_version()}")


def write_blocks(blocks: dict[str, str]) -> None:
    page = PAGE.read_text()
    for name, text in blocks.items():
        pattern = re.compile(rf"(<!-- generated: {name} -->\n).*?(<!-- end: {name} -->)", re.S)
        if not pattern.search(page):
            raise SystemExit(f"{PAGE.relative_to(ROOT)} has no {name} block to replace")
        page = pattern.sub(lambda m: m[1] + text + "\n" + m[2], page)
    PAGE.write_text(page)
    print(f"wrote {PAGE.relative_to(ROOT)} ({', '.join(blocks)})", file=sys.stderr)


BLOCKS = ("targets", "prefix-length", "instructions", "bytecodes", *SCRIPTS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("blocks", nargs="*", metavar="BLOCK",
                        help=f"blocks to regenerate: {', '.join(BLOCKS)} (default: all but "
                        f"{', '.join(sorted(LONG))})")
    parser.add_argument("--ref", default=BEFORE_REF, help="the commit to measure against")
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="100,000 requests, not a million")
    args = parser.parse_args()
    unknown = [b for b in args.blocks if b not in BLOCKS]
    if unknown:
        parser.error(f"no block {unknown[0]!r}; the blocks are {', '.join(BLOCKS)}")
    args.blocks = args.blocks or [b for b in BLOCKS if b not in LONG]
    requests = 100_000 if args.quick else args.requests
    blocks: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as folder:
        before = Path(folder) / "before"
        subprocess.run(["git", "worktree", "add", "--detach", "--quiet", str(before), args.ref],
                       cwd=ROOT, check=True)
        trees = {"before": before, "now": ROOT}
        try:
            if "targets" in args.blocks:
                figures = measure_targets(trees, requests)
                blocks["targets"] = targets_block(figures, args.ref, requests)
            if "prefix-length" in args.blocks:
                blocks["prefix-length"] = prefix_block(trees, requests // 10)
            if "instructions" in args.blocks:
                blocks["instructions"] = instructions_block(trees)
            if "bytecodes" in args.blocks:
                blocks["bytecodes"] = bytecodes_block(trees)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(before)], cwd=ROOT,
                           check=False)
    for name in SCRIPTS:
        if name in args.blocks:
            blocks[name] = script_block(name)
    for text in blocks.values():
        print(text + "\n")
    write_blocks(blocks)


if __name__ == "__main__":
    main()
