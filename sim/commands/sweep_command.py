"""The `servesim sweep` command: run a grid of scenario variants into one Parquet file."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from sim.commands.progress_bar import ProgressBar
from sim.engine.errors import UserError


def add_command(commands: argparse._SubParsersAction, name: str, helptext: str) -> None:
    sweep = commands.add_parser(
        name, help=helptext,
        description="Run a scenario at every combination of the grid's values (and seeds), on "
        "this machine's cores or a Ray cluster; one row per run. See docs/sweeps.md.",
    )
    sweep.add_argument("grid", type=Path,
                       help="grid YAML file (e.g. examples/sweeps/sweep-batch-size.yaml)")
    sweep.add_argument("--executor", choices=["local", "ray"], default="local",
                       help="local processes (default) or Ray tasks")
    sweep.add_argument("--workers", type=_positive, metavar="N",
                       help="local: processes (default: every core; 1 runs inline); "
                       "ray: CPUs of the local Ray instance it starts")
    sweep.add_argument("--address", metavar="HOST:PORT",
                       help="ray: join this cluster (e.g. head-node:6379, or auto) instead of "
                       "starting a local instance")
    sweep.add_argument("--out", type=Path, help="the Parquet file to write "
                       "(default: GRID-NAME.parquet in the current folder)")
    sweep.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    sweep.set_defaults(handler=_sweep)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _sweep(args: argparse.Namespace) -> int:
    from sim.planning.executor import make_executor
    from sim.planning.sweep import load_grid, run_sweep

    grid = load_grid(args.grid)
    out: Path = args.out or Path(f"{args.grid.stem}.parquet")
    if not out.parent.is_dir():  # before the runs, not after an hour of them
        raise UserError(f"--out {out}: no folder {out.parent}; create it or write elsewhere")
    executor = make_executor(args.executor, workers=args.workers, address=args.address)
    start = time.perf_counter()
    with ProgressBar(not args.no_progress, "run", "sweeping", grid.num_runs) as progress:
        frame = run_sweep(grid, executor, progress)
    wall_s = time.perf_counter() - start
    try:
        frame.to_parquet(out, index=False)
    except OSError as exc:
        raise UserError(f"--out {out}: cannot write the file ({exc})") from None
    errors = int((frame["status"] == "error").sum())
    seeds = len(grid.seeds or (0,))
    print(f"{_count(len(frame), 'run')} ({_count(grid.num_points, 'point')} x "
          f"{_count(seeds, 'seed')}), {_count(errors, 'error')}, {wall_s:.1f} s on "
          f"{executor.name} -> {out}")
    if errors:
        print("  the rows with status 'error' say why in their error column", file=sys.stderr)
    return 0


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"
