"""The `servesim` command line.

Commands are registered lazily: every command is listed (so `servesim --help` shows them all),
but only the module of the command being run is imported, and each command module imports the
simulator only inside its handler. `servesim --help` therefore loads no numpy, pandas or SimPy.
"""

from __future__ import annotations

import argparse
import importlib
import sys

EXIT_USER_ERROR = 2

# command -> (one-line help, module with ``add_command(commands, name, helptext)``)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("simulate a scenario file", "sim.commands.run_command"),
    "compare": ("simulate several scenarios and show them side by side",
                "sim.commands.compare_command"),
    "models": ("list catalog models", "sim.commands.catalog_commands"),
    "gpus": ("list catalog GPUs", "sim.commands.catalog_commands"),
    "prices": ("list catalog GPU prices with source and date", "sim.commands.catalog_commands"),
    "traces": ("inspect, convert and list request traces", "sim.commands.trace_commands"),
    "plan": ("find the cheapest fleets that hold the scenario's SLOs",
             "sim.commands.plan_command"),
    "capacity": ("find the highest arrival rate the scenario's configuration sustains within "
                 "its SLO", "sim.commands.capacity_command"),
    "sweep": ("simulate every point of a grid of overrides into one Parquet file",
              "sim.commands.sweep_command"),
}
PLUGIN_GROUP = "servesim.commands"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(_command_word(argv))
    args = parser.parse_args(argv)
    from sim.engine.errors import UserError
    from traces.errors import TraceError

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


def build_parser(chosen: str | None = None) -> argparse.ArgumentParser:
    """The parser with every command listed and only ``chosen`` fully defined; the others
    are placeholders that carry their help line (all of them for ``servesim --help``)."""
    parser = argparse.ArgumentParser(
        prog="servesim",
        description="Simulate an LLM serving fleet: latency and cost of a scenario.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name, (helptext, module) in COMMANDS.items():
        if name == chosen:
            importlib.import_module(module).add_command(commands, name, helptext)
        else:
            commands.add_parser(name, help=helptext)
    _add_plugin_commands(commands)
    return parser


def _command_word(argv: list[str]) -> str | None:
    """The command being run, or None (e.g. ``servesim --help``)."""
    for word in argv:
        if not word.startswith("-"):
            return word
    return None


def _add_plugin_commands(commands: argparse._SubParsersAction) -> None:
    """Commands of packages built on the simulator (``servesim calibrate``, ``servesim app``),
    registered under the ``servesim.commands`` entry-point group, so the simulator never
    imports them; their modules keep their own heavy imports inside their handlers."""
    from importlib.metadata import entry_points

    for entry in sorted(entry_points(group=PLUGIN_GROUP), key=lambda e: e.name):
        entry.load()(commands)


if __name__ == "__main__":
    raise SystemExit(main())
