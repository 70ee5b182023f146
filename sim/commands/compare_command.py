"""`servesim compare`: simulate several scenarios and show them side by side."""

from __future__ import annotations

import argparse
import json

from sim.commands.arguments import seed


def add_command(commands: argparse._SubParsersAction, name: str, helptext: str) -> None:
    compare = commands.add_parser(
        name, help=helptext,
        description="The first scenario is the baseline; the others show their change against "
        "it. A scenario argument may carry its own overrides: base.yaml@hardware.gpu=a100-80gb",
    )
    compare.add_argument("scenarios", nargs="+", metavar="SCENARIO[@KEY=VALUE...]")
    compare.add_argument("--set", dest="overrides", action="append", default=[],
                         metavar="KEY=VALUE", help="override a value in every scenario")
    compare.add_argument("--seed", type=seed, help="override every scenario's seed")
    compare.add_argument("--format", choices=["table", "json"], default="table")
    compare.set_defaults(handler=_compare)


def _compare(args: argparse.Namespace) -> int:
    from sim.config.scenario import load_scenario
    from sim.results.comparison import compare, format_comparison
    from sim.runner.run import run_scenario

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
