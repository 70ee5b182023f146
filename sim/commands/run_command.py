"""`servesim run`: simulate one scenario file and print (or write) its results."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sim.commands.arguments import seed
from sim.commands.progress_bar import ProgressBar
from sim.engine.errors import ScenarioError


def add_command(commands: argparse._SubParsersAction, name: str, helptext: str) -> None:
    run = commands.add_parser(name, help=helptext)
    run.add_argument("scenario", help="scenario YAML file (see examples/ and docs/scenario.md)")
    run.add_argument("--out", type=Path, help="also write requests.parquet, steps.parquet, "
                     "summary.json and scenario.yaml into this folder")
    run.add_argument("--stream", action="store_true",
                     help="with --out, for long trace replays: write the requests to "
                     "requests.parquet as the run goes and keep only totals of the steps, so "
                     "memory stays bounded (no steps.parquet; percentiles within 0.05 %%)")
    run.add_argument("--format", choices=["table", "json"], default="table")
    run.add_argument("--seed", type=seed, help="override the scenario's seed (an integer >= 0)")
    run.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a scenario value, e.g. --set engine.max_num_seqs=64 "
                     "(repeatable)")
    run.add_argument("--capacity", action="store_true",
                     help="also find the highest arrival rate this setup sustains within its "
                     "SLO (as servesim capacity: ~10 more simulations) and add it to the summary")
    run.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from sim.config.scenario import load_scenario
    from sim.results.report import format_table
    from sim.runner.run import run_scenario

    if args.stream and args.out is None:
        raise ScenarioError("--stream writes the requests into the --out folder: give --out DIR")
    scenario = load_scenario(args.scenario, args.overrides)
    if args.seed is not None:
        scenario = scenario.with_seed(args.seed)
    stream_to = _out_folder(args.out) / "requests.parquet" if args.stream else None
    with ProgressBar(not args.no_progress, "req", "simulating") as progress:
        outcome = run_scenario(scenario, progress=progress, stream_to=stream_to)
    if args.capacity:
        from sim.commands.capacity_command import capacity_summary

        outcome.summary["capacity"] = capacity_summary(scenario)
    if args.out:
        _write_outputs(args.out, outcome)
    if args.format == "json":
        print(json.dumps(outcome.summary, indent=2))
    else:
        print(format_table(outcome.summary))
    return 0


def _out_folder(folder: Path) -> Path:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ScenarioError(f"--out {folder}: cannot create the folder ({exc})") from None
    return folder


def _write_outputs(folder: Path, outcome) -> None:
    from sim.config.scenario import scenario_yaml

    _out_folder(folder)
    if outcome.result.streamed is None:  # (streamed: the requests are written already)
        outcome.result.records.to_parquet(folder / "requests.parquet", index=False)
        outcome.result.steps.to_parquet(folder / "steps.parquet", index=False)
    (folder / "summary.json").write_text(json.dumps(outcome.summary, indent=2) + "\n")
    (folder / "scenario.yaml").write_text(scenario_yaml(outcome.scenario))
