"""`servesim capacity`: the highest arrival rate a scenario's configuration sustains within its
SLO, with the range its latency error band allows, as a few lines or JSON."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from sim.commands.arguments import seed

if TYPE_CHECKING:  # imported lazily at run time, so `servesim --help` stays fast
    from sim.planning.capacity import Check
    from sim.config.scenario import Scenario

END_WORDS = {"predicted": "", "pessimistic": " at the band's slow end",
             "optimistic": " at the band's fast end"}
LABELS = {"ttft_p95_ms": "p95 TTFT", "tpot_p95_ms": "p95 TPOT", "e2e_p99_ms": "p99 E2E"}
LIMITS = {"ttft_p95": "p95 TTFT", "tpot_p95": "p95 TPOT", "e2e_p99": "p99 E2E",
          "rejections": "rejections over the SLO's limit", "backlog": "throughput (the queue keeps growing)",
          "search_limit": "the top of the search"}


def add_command(commands: argparse._SubParsersAction, name: str, helptext: str) -> None:
    capacity = commands.add_parser(
        name, help=helptext,
        description="Scale the scenario's arrival rate up and down (bracketing by doubling or "
        "halving, then bisecting to 2 %%) and report the highest rate at which at most 1 %% of "
        "requests are rejected and every SLO target (slo: ttft_p95_ms, tpot_p95_ms, "
        "e2e_p99_ms) is met. Where the latency profile has an error band, the same search at "
        "its slow and fast ends gives the range the answer may really fall in. See "
        "docs/planning.md.",
    )
    capacity.add_argument("scenario", help="scenario YAML file with an slo section")
    capacity.add_argument("--set", dest="overrides", action="append", default=[],
                          metavar="KEY=VALUE", help="override a scenario value (repeatable)")
    capacity.add_argument("--seed", type=seed, help="override the scenario's seed")
    capacity.add_argument("--format", choices=["table", "json"], default="table")
    capacity.set_defaults(handler=run_capacity_command)


def run_capacity_command(args: argparse.Namespace) -> int:
    from sim.config.scenario import load_scenario
    from sim.planning.capacity import find_capacity

    scenario = load_scenario(args.scenario, args.overrides)
    if args.seed is not None:
        scenario = scenario.with_seed(args.seed)
    result = find_capacity(scenario, progress=_progress_line(scenario))
    if args.format == "json":
        print(json.dumps(result.to_json(), indent=2))
    else:
        print(format_capacity(result.to_json()))
    return 0


def capacity_summary(scenario: Scenario) -> dict:
    """The capacity answer as a run summary carries it (``servesim run --capacity``): the
    rate, its band and what limits it, without the per-simulation rows."""
    from sim.planning.capacity import find_capacity

    answer = find_capacity(scenario, progress=_progress_line(scenario)).to_json()
    return {key: value for key, value in answer.items() if key not in ("checked", "scenario")}


def _progress_line(scenario: Scenario) -> Callable[[Check, str], None]:
    """One stderr line per simulation, so a long search is not silent."""
    unit = "conversations/s" if scenario.workload.sessions is not None else "req/s"

    def report(check: Check, end: str) -> None:
        misses = check.misses(scenario, end)
        verdict = "holds" if not misses else "fails"
        print(f"capacity: {_rate(check.rate_per_s)} {unit} {verdict}{END_WORDS[end]} "
              f"({_why(scenario, check, end, misses)})", file=sys.stderr, flush=True)

    return report


def _why(scenario: Scenario, check: Check, end: str, misses: dict[str, float]) -> str:
    """The figure that decided: the worst miss, or the target closest to being missed."""
    name = check.deciding(scenario, end, misses)
    if name == "rejections":
        return f"{100 * check.rejected_share:.1f} % rejected"
    if name == "backlog":
        return f"{100 * check.backlog_share:.0f} % still waiting at the last arrival"
    value = check.figures[end][name]
    shown = "no request completed" if value is None else f"{LABELS[name]} {value:,.0f} ms"
    missed = name.removesuffix("_ms") in misses
    return shown + f" {'>' if missed else '<='} {getattr(scenario.slo, name):,.0f} ms"


def format_capacity(report: dict) -> str:
    from sim.results.saturation import MAX_BACKLOG_SHARE

    unit = report["rate_unit"]
    slo = report["slo"]
    targets = ", ".join(f"{LABELS[k]} <= {v:,.0f} ms" for k, v in slo.items() if k in LABELS)
    lines = [f"{report['scenario']}: {targets}; at most {100 * slo['max_rejected_share']:g} % "
             f"rejected and {100 * MAX_BACKLOG_SHARE:g} % still waiting at the last arrival"]
    if report["max_rate_per_s"] is None:
        lines.append(f"max rate: none - {report['message']}")
    else:
        lines.append(f"max rate: {_rate(report['max_rate_per_s'])} {unit} "
                     f"(limited by {LIMITS.get(report['limited_by'], report['limited_by'])})")
        if report.get("headroom") is not None:
            lines.append(f"headroom: {100 * report['headroom']:+.0f} % against the scenario's "
                         f"own {_rate(report['offered_rate_per_s'])} {unit}")
        if report["message"]:
            lines.append(f"  {report['message']}")
    band = report["band"]
    if band is None:
        lines.append(f"band: none - {report['band_basis']}")
    else:
        lines.append(f"band: {_rate(band['low'])} to {_rate(band['high'])} {unit} "
                     "(the SLO judged at the slow and fast ends of the latency error band)")
        lines.append(f"  basis: {report['band_basis']}")
    lines += ["", f"{report['simulations']} simulations:",
              f"  {'rate/s':>10} {'holds':>6} {'TTFT p95':>9} {'TPOT p95':>9} {'E2E p99':>9} "
              f"{'rejected':>9} {'backlog':>8}"]
    for row in report["checked"]:
        lines.append(
            f"  {_rate(row['rate_per_s']):>10} {'yes' if row['holds'] else 'no':>6} "
            f"{_ms(row['ttft_p95_ms']):>9} {_ms(row['tpot_p95_ms']):>9} "
            f"{_ms(row['e2e_p99_ms']):>9} {100 * row['rejected_share']:>8.1f}% "
            f"{100 * row['backlog_share']:>7.1f}%")
    return "\n".join(lines)


def _rate(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.1f}" if value >= 10 else f"{value:.3g}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"
