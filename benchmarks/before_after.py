"""Simulation speed of the current code side by side with an earlier commit, on the same machine.

Each scenario is simulated by both versions in alternation (before, now, before, now, ...), so
a machine that drifts slows both alike; the table gives each version's median wall time and
their ratio. The earlier version runs from a temporary git worktree with this checkout's
environment; workload generation and catalog lookups are outside the timed region, as in
`hour_of_chat.py`.

    python benchmarks/before_after.py [--ref COMMIT] [--rounds N] [--scenario FILE ...]
                                      [--markdown] [--write] [--instructions]

``--write`` puts the table into docs/performance.md, between ``<!-- generated: before-after -->``
and ``<!-- end: before-after -->``. Wall times on a shared machine drift by tens of percent
between runs, so with ``--instructions`` the first scenario is also run once per version under
valgrind's callgrind, which counts the instructions executed: the same count whatever else the
machine is doing (the simulation's count is a full run's minus a run that stops before
simulating).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "performance.md"
# the engine before it followed vLLM's async scheduling, release defaults, CUDA graphs,
# caching of every full block and CPU offload
BEFORE_REF = "4ef7b45"
SCENARIOS = (
    ROOT / "examples" / "azure-conv-hour-h100.yaml",
    ROOT / "benchmarks" / "eight-replicas-hour.yaml",
    ROOT / "benchmarks" / "eight-replicas-shared-prefix.yaml",
)
PROBE = ROOT / "benchmarks" / "probe.py"  # finds the simulator in either layout of the package


def instructions(tree: Path, scenario: Path, overrides: tuple[str, ...] = ()) -> int:
    """Instructions the simulation of ``scenario`` executes in ``tree`` (callgrind)."""
    settings = [arg for item in overrides for arg in ("--set", item)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        full, setup = pool.map(lambda extra: _callgrind(tree, scenario, [*settings, *extra]),
                               ([], ["--setup-only"]))
    return full - setup


def _callgrind(tree: Path, scenario: Path, extra: list[str]) -> int:
    with tempfile.TemporaryDirectory() as folder:
        done = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={folder}/out",
             sys.executable, str(PROBE), str(scenario), *extra],
            cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)}, capture_output=True,
            text=True, check=True)
    return int(re.search(r"Collected : (\d+)", done.stderr)[1])


def timed_run(tree: Path, scenario: Path) -> dict:
    done = subprocess.run([sys.executable, str(PROBE), str(scenario)], cwd=tree,
                          env={**os.environ, "PYTHONPATH": str(tree)}, capture_output=True,
                          text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def compare(before_tree: Path, scenarios: list[Path], rounds: int) -> list[dict]:
    rows = []
    for scenario in scenarios:
        walls: dict[str, list[float]] = {"before": [], "now": []}
        last: dict[str, dict] = {}
        for i in range(rounds):
            for label, tree in (("before", before_tree), ("now", ROOT)):
                last[label] = timed_run(tree, scenario)
                walls[label].append(last[label]["wall_s"])
                print(f"{scenario.name} round {i + 1}/{rounds} {label}: "
                      f"{last[label]['wall_s']:.2f} s", file=sys.stderr)
        before, now = statistics.median(walls["before"]), statistics.median(walls["now"])
        rows.append({"scenario": scenario.name, "before": last["before"], "now": last["now"],
                     "before_s": before, "now_s": now, "ratio": now / before})
    return rows


def instruction_line(before: int, now: int, scenario: Path) -> str:
    return (f"Instructions executed simulating `{scenario.name}` (callgrind, deterministic): "
            f"before {before / 1e9:.2f} G, now {now / 1e9:.2f} G, now / before "
            f"{now / before:.3f}.")


def markdown(rows: list[dict], ref: str, rounds: int) -> str:
    lines = [
        f"Median wall time of {rounds} alternating runs each; before: commit {ref}; "
        f"{platform.processor() or platform.machine()}, Python {platform.python_version()}.",
        "",
        "| scenario | requests | engine steps (loop iterations) before | now | wall before | "
        "now | now / before |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        b, n = r["before"], r["now"]
        lines.append(
            f"| `{r['scenario']}` | {n['requests']:,} | {b['steps']:,} ({b['runs']:,}) | "
            f"{n['steps']:,} ({n['runs']:,}) | {r['before_s']:.2f} s | {r['now_s']:.2f} s | "
            f"{r['ratio']:.2f} |")
    return "\n".join(lines)


def write_block(table: str) -> None:
    page = PAGE.read_text()
    pattern = re.compile(r"(<!-- generated: before-after -->\n).*?(<!-- end: before-after -->)",
                         re.S)
    if not pattern.search(page):
        raise SystemExit(f"{PAGE} has no before-after block to replace")
    PAGE.write_text(pattern.sub(lambda m: m[1] + table + "\n" + m[2], page))
    print(f"wrote {PAGE.relative_to(ROOT)}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", default=BEFORE_REF)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--scenario", type=Path, nargs="*", default=list(SCENARIOS))
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--write", action="store_true", help="update docs/performance.md")
    parser.add_argument("--instructions", action="store_true",
                        help="also count the first scenario's instructions under callgrind")
    args = parser.parse_args()
    if args.instructions and shutil.which("valgrind") is None:
        raise SystemExit("--instructions needs valgrind (Debian package valgrind)")
    counted = ""
    with tempfile.TemporaryDirectory() as folder:
        tree = Path(folder) / "before"
        subprocess.run(["git", "worktree", "add", "--detach", "--quiet", str(tree), args.ref],
                       cwd=ROOT, check=True)
        try:
            rows = compare(tree, args.scenario, args.rounds)
            if args.instructions:
                first = args.scenario[0]
                print(f"counting instructions of {first.name} (minutes)...", file=sys.stderr)
                counted = instruction_line(instructions(tree, first), instructions(ROOT, first),
                                           first)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT,
                           check=False)
    table = markdown(rows, args.ref, args.rounds) + (f"\n\n{counted}" if counted else "")
    if args.write:
        write_block(table)
    if args.markdown:
        print(table)
    else:
        for r in rows:
            print(f"{r['scenario']}: before {r['before_s']:.2f} s, now {r['now_s']:.2f} s, "
                  f"ratio {r['ratio']:.2f}")


if __name__ == "__main__":
    main()
