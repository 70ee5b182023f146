"""A fleet plan for people: the ranked table, the cost-latency Pareto chart, and the files
(every candidate as CSV and JSON, the winning scenario as YAML) a planner hands on."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from sim.config.scenario import Scenario, scenario_yaml
from sim.engine.errors import UserError
from sim.planning.plan import CandidatePlan


def format_plan_table(scenario: Scenario, plans: Sequence[CandidatePlan], seeds: Sequence[int],
                      wall_s: float, written: dict[str, Path]) -> str:
    slo = scenario.slo
    targets = ", ".join(f"{label} <= {value:,.0f} ms" for label, value in (
        ("p95 TTFT", slo.ttft_p95_ms), ("p95 TPOT", slo.tpot_p95_ms),
        ("p99 E2E", slo.e2e_p99_ms)) if value is not None)
    feasible = [p for p in plans if p.status == "ok"]
    lines = [
        f"{scenario.name}: {scenario.model}, {targets}, {len(seeds)} seeds "
        f"({len(plans)} candidates, {sum(p.simulations for p in plans):,} simulations, "
        f"{wall_s:.1f} s)",
        "",
        f"{'#':>3} {'':1} {'GPU':<12}{'weights':<11}{'TP':>3}{'replicas':>9}{'$/hour':>9}"
        f"{'$/month':>10}{'tok/$':>9}{'TTFT p95':>10}{'TPOT p95':>10}{'seeds':>7}"
        f"{'n-1':>6}{'quality':>9}",
    ]
    for p in feasible:
        c = p.candidate
        lines.append(
            f"{p.rank:>3} {'*' if p.pareto else ' ':1} {c.gpu[:12]:<12}{c.weight_dtype:<11}"
            f"{c.tensor_parallel:>3}{p.replicas:>9}{p.usd_per_hour:>9.2f}{p.monthly_usd:>10,.0f}"
            f"{_number(p.output_tokens_per_usd):>9}{_ms(p.ttft_p95_ms_worst):>10}"
            f"{_ms(p.tpot_p95_ms_worst):>10}{p.seeds_held:>4}/{p.seeds:<2}"
            f"{_fraction(p.seeds_held_one_fewer, p.seeds):>6}{_percent(p):>9}"
        )
    if not feasible:
        lines.append("    no candidate holds the SLOs; see below why")
    lines += ["", "  * on the Pareto front of $/hour against p95 TTFT; latencies are the worst "
              "seed's; n-1: seeds that would hold with one replica fewer; quality: share of "
              "the unquantized model's benchmark score (~ borrowed from other models)"]
    rejected = [p for p in plans if p.status != "ok"]
    if rejected:
        lines += ["", "not feasible"]
        for p in rejected:
            c = p.candidate
            lines.append(f"  {c.gpu} {c.weight_dtype} TP {c.tensor_parallel}: "
                         f"{p.status.replace('_', ' ')} - {_first_line(p.message)}")
    if feasible:
        best = feasible[0]
        c = best.candidate
        lines += ["", f"cheapest: {best.replicas} x {c.gpu} ({c.weight_dtype}, TP "
                  f"{c.tensor_parallel}) at ${best.usd_per_hour:.2f}/hour, "
                  f"${best.monthly_usd:,.0f}/month; holds in {best.seeds_held}/{best.seeds} seeds"]
    lines += ["", "files: " + ", ".join(str(path) for path in written.values())]
    return "\n".join(lines)


def write_plan_files(folder: Path, scenario: Scenario,
                     plans: Sequence[CandidatePlan]) -> dict[str, Path]:
    """plan.csv and plan.json (every candidate), pareto.png, and winner.yaml (the cheapest
    feasible candidate's scenario, ready for `servesim run`)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--out {folder}: cannot create the folder ({exc})") from None
    rows = [p.row() for p in plans]
    written = {"csv": folder / "plan.csv", "json": folder / "plan.json"}
    pd.DataFrame(rows).to_csv(written["csv"], index=False)
    written["json"].write_text(json.dumps(rows, indent=2) + "\n")
    written["chart"] = folder / "pareto.png"
    write_pareto_chart(written["chart"], scenario, plans)
    winner = next((p for p in plans if p.status == "ok"), None)
    if winner is not None and winner.scenario is not None:
        written["winner"] = folder / "winner.yaml"
        written["winner"].write_text(scenario_yaml(winner.scenario))
    return written


def write_pareto_chart(path: Path, scenario: Scenario, plans: Sequence[CandidatePlan]) -> None:
    """$/hour against p95 TTFT of every feasible candidate, the Pareto front joined."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    feasible = [p for p in plans if p.status == "ok" and p.ttft_p95_ms is not None]
    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    for p in feasible:
        c = p.candidate
        ax.scatter(p.usd_per_hour, p.ttft_p95_ms, color="tab:blue" if p.pareto else "tab:gray",
                   zorder=3)
        ax.annotate(f"{p.replicas}x {c.gpu} {c.weight_dtype}"
                    + (f" TP{c.tensor_parallel}" if c.tensor_parallel > 1 else ""),
                    (p.usd_per_hour, p.ttft_p95_ms), fontsize=7, xytext=(4, 3),
                    textcoords="offset points")
    front = sorted((p for p in feasible if p.pareto), key=lambda p: p.usd_per_hour)
    if front:
        ax.plot([p.usd_per_hour for p in front], [p.ttft_p95_ms for p in front],
                color="tab:blue", label="Pareto front", zorder=2)
        ax.legend(loc="upper right")
    if scenario.slo.ttft_p95_ms is not None:
        ax.axhline(scenario.slo.ttft_p95_ms, color="tab:red", linestyle="--", linewidth=1)
        ax.text(ax.get_xlim()[0], scenario.slo.ttft_p95_ms, " TTFT SLO", color="tab:red",
                va="bottom", fontsize=8)
    ax.set_xlabel("fleet cost ($/hour)")
    ax.set_ylabel("p95 time to first token (ms, median over seeds)")
    ax.set_title(f"{scenario.name}: cheapest fleet per candidate that holds the SLOs")
    ax.grid(True, alpha=0.3)
    if not feasible:
        ax.text(0.5, 0.5, "no candidate holds the SLOs", transform=ax.transAxes, ha="center")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1e6:.1f}M" if value >= 1e6 else f"{value / 1e3:.0f}k"


def _fraction(held: int | None, seeds: int) -> str:
    return "-" if held is None else f"{held}/{seeds}"


def _percent(p: CandidatePlan) -> str:
    if p.quality_retention_percent is None:
        return "?"
    borrowed = "~" if p.quality_borrowed else ""
    return f"{borrowed}{p.quality_retention_percent:.1f}%"


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= 160 else line[:157] + "..."
