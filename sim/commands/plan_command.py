"""`servesim plan`: the cheapest fleets that hold a scenario's SLOs, as a table or JSON, with
the Pareto chart, every candidate's figures and the winning scenario written to a folder."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from sim.commands.progress_bar import ProgressBar
from sim.engine.errors import UserError

DEFAULT_FORMATS = "bf16,fp8,awq-int4"
DEFAULT_SEEDS = 5


def add_command(commands: argparse._SubParsersAction, name: str, helptext: str) -> None:
    plan = commands.add_parser(
        name, help=helptext,
        description="For each candidate (GPU tier x weight format x TP x batch limit), find the "
        "fewest replicas that hold the scenario's SLOs (slo: ttft_p95_ms, tpot_p95_ms, "
        "e2e_p99_ms) in every seed, then rank the candidates by $/hour. The workload and SLOs "
        "come from the scenario.",
    )
    plan.add_argument("scenario", help="scenario YAML file with an slo section")
    plan.add_argument("--gpus", help="comma-separated GPU ids (default: every GPU the price "
                      "catalog prices in the scenario's tier)")
    plan.add_argument("--formats", default=DEFAULT_FORMATS,
                      help=f"comma-separated weight formats (default {DEFAULT_FORMATS})")
    plan.add_argument("--tp", default="auto", help="comma-separated TP degrees, or auto: the "
                      "smallest of 1, 2, 4, 8 that fits each GPU and format (default auto)")
    plan.add_argument("--max-num-seqs", help="comma-separated batch limits to try (default: "
                      "the scenario's engine.max_num_seqs)")
    plan.add_argument("--seeds", type=int, default=DEFAULT_SEEDS,
                      help=f"how many seeds each answer must hold in (default {DEFAULT_SEEDS})")
    plan.add_argument("--set", dest="overrides", action="append", default=[],
                      metavar="KEY=VALUE", help="override a scenario value (repeatable)")
    plan.add_argument("--slo-margin", choices=["none", "band"], default="none",
                      help="band: judge each run at the slow end of its latency error band "
                      "(the spread of the latency model's errors on runs it was not trained "
                      "on) instead of the predicted figure (default none)")
    plan.add_argument("--format", choices=["table", "json"], default="table")
    plan.add_argument("--out", type=Path, help="folder for plan.csv, plan.json, pareto.png "
                      "and winner.yaml (default: <scenario name>-plan)")
    plan.add_argument("--executor", choices=["local", "ray"], default="local")
    plan.add_argument("--workers", type=int, help="local processes (default: all cores)")
    plan.add_argument("--address", help="Ray cluster address (default: start a local Ray)")
    plan.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    plan.set_defaults(handler=run_plan_command)


def run_plan_command(args: argparse.Namespace) -> int:
    from sim.config.scenario import load_scenario
    from sim.planning.executor import make_executor
    from sim.planning.plan import plan
    from sim.planning.plan_report import format_plan_table, write_plan_files

    scenario = load_scenario(args.scenario, args.overrides)
    space = _space(args, scenario)
    if args.seeds < 1:
        raise UserError(f"--seeds {args.seeds}: give at least 1")
    seeds = [scenario.seed + i for i in range(args.seeds)]
    executor = make_executor(args.executor, workers=args.workers, address=args.address)
    started = time.perf_counter()
    with ProgressBar(not args.no_progress, "candidate", "planning", len(space)) as progress:
        plans = plan(scenario, space, seeds, executor, progress, slo_margin=args.slo_margin)
    wall_s = time.perf_counter() - started
    out = args.out or Path(f"{scenario.name}-plan")
    written = write_plan_files(out, scenario, plans)
    note = _margin_note(args.slo_margin, plans)
    if args.format == "json":
        print(json.dumps([p.row() for p in plans], indent=2))
        print(f"servesim: plan files in {out}", file=sys.stderr)
        if note:
            print(f"servesim: {note}", file=sys.stderr)
    else:
        print(format_plan_table(scenario, plans, seeds, wall_s, written))
        if note:
            print("\n" + note)
    return 0


def _margin_note(margin: str, plans: list) -> str:
    """What --slo-margin band judged, and which candidates it could not apply to (their latency
    profile has no error band, so their verdict is the predicted figure's)."""
    if margin != "band":
        return ""
    missing = [p.candidate for p in plans if p.band_missing]
    note = ("SLO verdicts use the slow end of each run's latency error band (--slo-margin band); "
            "the latencies shown are the predicted ones")
    if missing:
        names = ", ".join(f"{c.gpu} {c.weight_dtype} TP {c.tensor_parallel}" for c in missing)
        note += (f". No error band for {names} (its latency profile carries none): judged on "
                 "the predicted figures")
    return note


def _space(args: argparse.Namespace, scenario) -> list:
    from sim.config.price import list_prices
    from sim.engine.dtypes import WEIGHT_DTYPES
    from sim.engine.gpu import list_gpus
    from sim.planning.plan import AUTO_TP, candidates, check_plannable

    check_plannable(scenario)
    tier = "on_demand" if scenario.hardware.price_tier == "reserved" else scenario.hardware.price_tier
    priced = [p.gpu_id for p in list_prices() if p.tier == tier and p.gpu_id in list_gpus()]
    gpus = _names(args.gpus, "--gpus") if args.gpus else priced
    unknown = [g for g in gpus if g not in list_gpus() and not g.endswith((".yaml", ".yml"))]
    if unknown:
        raise UserError(f"--gpus: unknown GPU id(s) {', '.join(unknown)}; known: "
                        f"{', '.join(list_gpus())}")
    formats = _names(args.formats, "--formats")
    bad = [f for f in formats if f not in WEIGHT_DTYPES]
    if bad:
        raise UserError(f"--formats: unknown format(s) {', '.join(bad)}; use "
                        f"{', '.join(WEIGHT_DTYPES)}")
    tps = [AUTO_TP] if args.tp == "auto" else _numbers(args.tp, "--tp")
    seqs = _numbers(args.max_num_seqs, "--max-num-seqs") if args.max_num_seqs else [None]
    return candidates(gpus, formats, tps, seqs)


def _names(text: str, option: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise UserError(f"{option}: give a comma-separated list")
    return list(dict.fromkeys(names))


def _numbers(text: str, option: str) -> list[int]:
    try:
        values = [int(n) for n in _names(text, option)]
    except ValueError:
        raise UserError(f"{option} {text!r}: give whole numbers separated by commas") from None
    if any(v < 1 for v in values):
        raise UserError(f"{option} {text!r}: every value must be at least 1")
    return values
