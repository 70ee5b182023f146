"""The `servesim` command line."""

from __future__ import annotations

import argparse
import json
import sys
from importlib.metadata import entry_points
from pathlib import Path

from sim.capacity_command import add_capacity_command
from sim.errors import ScenarioError, UserError
from sim.plan_command import add_plan_command
from sim.progress_bar import ProgressBar
from sim.sweep_command import add_sweep_command
from sim.trace_commands import add_traces_commands
from traces.errors import TraceError

EXIT_USER_ERROR = 2


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except (UserError, TraceError) as exc:
        print(f"servesim: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("servesim: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="servesim",
        description="Simulate an LLM serving fleet: latency and cost of a scenario.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="simulate a scenario file")
    run.add_argument("scenario", help="scenario YAML file (see examples/ and docs/scenario.md)")
    run.add_argument("--out", type=Path, help="also write requests.parquet, steps.parquet, "
                     "summary.json and scenario.yaml into this folder")
    run.add_argument("--format", choices=["table", "json"], default="table")
    run.add_argument("--seed", type=_seed, help="override the scenario's seed (an integer >= 0)")
    run.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a scenario value, e.g. --set engine.max_num_seqs=64 "
                     "(repeatable)")
    run.add_argument("--capacity", action="store_true",
                     help="also find the highest arrival rate this setup sustains within its "
                     "SLO (as servesim capacity: ~10 more simulations) and add it to the summary")
    run.set_defaults(handler=_run)

    compare = commands.add_parser(
        "compare", help="simulate several scenarios and show them side by side",
        description="The first scenario is the baseline; the others show their change against "
        "it. A scenario argument may carry its own overrides: base.yaml@hardware.gpu=a100-80gb",
    )
    compare.add_argument("scenarios", nargs="+", metavar="SCENARIO[@KEY=VALUE...]")
    compare.add_argument("--set", dest="overrides", action="append", default=[],
                         metavar="KEY=VALUE", help="override a value in every scenario")
    compare.add_argument("--seed", type=_seed, help="override every scenario's seed")
    compare.add_argument("--format", choices=["table", "json"], default="table")
    compare.set_defaults(handler=_compare)

    for name, helptext in (("models", "list catalog models"), ("gpus", "list catalog GPUs"),
                           ("prices", "list catalog GPU prices with source and date")):
        sub = commands.add_parser(name, help=helptext)
        sub.add_argument("--format", choices=["table", "json"], default="table")
        sub.set_defaults(handler=_catalog_handler(name))
    add_traces_commands(commands)
    add_plan_command(commands)
    add_capacity_command(commands)
    add_sweep_command(commands)
    _add_plugin_commands(commands)
    return parser


def _add_plugin_commands(commands: argparse._SubParsersAction) -> None:
    """Commands of packages built on the simulator (``servesim calibrate``), registered under
    the ``servesim.commands`` entry-point group, so the simulator never imports them."""
    for entry in sorted(entry_points(group="servesim.commands"), key=lambda e: e.name):
        entry.load()(commands)


def _seed(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"seed must be >= 0, got {value}")
    return value


def _run(args: argparse.Namespace) -> int:
    from sim.run import run_scenario
    from sim.scenario import load_scenario
    from sim.report import format_table

    scenario = load_scenario(args.scenario, args.overrides)
    if args.seed is not None:
        scenario = scenario.with_seed(args.seed)
    with ProgressBar(not args.no_progress, "req", "simulating") as progress:
        outcome = run_scenario(scenario, progress=progress)
    if args.capacity:
        from sim.capacity_command import capacity_summary

        outcome.summary["capacity"] = capacity_summary(scenario)
    if args.out:
        _write_outputs(args.out, outcome)
    if args.format == "json":
        print(json.dumps(outcome.summary, indent=2))
    else:
        print(format_table(outcome.summary))
    return 0


def _compare(args: argparse.Namespace) -> int:
    from sim.comparison import compare, format_comparison
    from sim.run import run_scenario
    from sim.scenario import load_scenario

    names, summaries = [], []
    for argument in args.scenarios:
        path, *own = argument.split("@")
        scenario = load_scenario(path, [*args.overrides, *own])
        if args.seed is not None:
            scenario = scenario.with_seed(args.seed)
        summaries.append(run_scenario(scenario).summary)
        names.append(argument if own or scenario.name in names else scenario.name)
    rows = compare(summaries)
    if args.format == "json":
        print(json.dumps({"scenarios": names, "metrics": rows}, indent=2))
    else:
        print(format_comparison(names, rows))
    return 0


def _write_outputs(folder: Path, outcome) -> None:
    from sim.scenario import scenario_yaml

    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ScenarioError(f"--out {folder}: cannot create the folder ({exc})") from None
    outcome.result.records.to_parquet(folder / "requests.parquet", index=False)
    outcome.result.steps.to_parquet(folder / "steps.parquet", index=False)
    (folder / "summary.json").write_text(json.dumps(outcome.summary, indent=2) + "\n")
    (folder / "scenario.yaml").write_text(scenario_yaml(outcome.scenario))


def _catalog_handler(name: str):
    def handler(args: argparse.Namespace) -> int:
        rows = _catalog_rows(name)
        if args.format == "json":
            print(json.dumps(rows, indent=2))
        else:
            columns = list(rows[0]) if rows else []
            widths = [max(len(c), *(len(str(r[c])) for r in rows)) for c in columns]
            print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
            for row in rows:
                print("  ".join(str(row[c]).ljust(w) for c, w in zip(columns, widths)))
        return 0

    return handler


def _catalog_rows(name: str) -> list[dict]:
    if name == "models":
        from sim.model_catalog import list_models, load_model

        rows = []
        for model_id in list_models():
            m = load_model(model_id)
            rows.append({
                "id": m.id,
                "params_b": round(m.total_params / 1e9, 2),
                "active_params_b": round(m.active_params / 1e9, 2),
                "layers": m.num_layers,
                "kv_heads": m.num_kv_heads,
                "kv_kib_per_token_bf16": m.kv_bytes_per_token("bf16") // 1024,
                "max_context": m.max_position_embeddings,
            })
        return rows
    if name == "gpus":
        from sim.gpu import list_gpus, load_gpu

        return [
            {
                "id": g.id, "hbm_gib": round(g.hbm_gib, 2), "bandwidth_gb_s": g.mem_bandwidth_gb_per_s,
                "bf16_tflops": g.bf16_tflops, "fp8_tflops": g.fp8_tflops or "-",
                "interconnect": g.interconnect,
                "interconnect_generation": g.interconnect_generation or "-",
                "source_date": g.source_date or "-",
            }
            for g in map(load_gpu, list_gpus())
        ]
    from sim.price import list_prices

    return [
        {"gpu": p.gpu_id, "tier": p.tier, "usd_per_gpu_hour": round(p.usd_per_gpu_hour, 4),
         "providers": p.providers, "as_of": p.as_of, "source": p.source}
        for p in list_prices()
    ]


# --- servesim traces: inspect, convert and list request traces -------------------------------


if __name__ == "__main__":
    raise SystemExit(main())
