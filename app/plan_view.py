"""What the Plan page computes, without Streamlit: the scenario to plan for (the page's SLO,
rate and window inputs written into it), the candidate space, the planner run, and the
ranked table, Pareto points and CSV made from its answer.

The scenario is passed around as canonical YAML text: it is hashable, so a finished plan can
be cached on it, and it is exactly what a user could run with ``servesim plan``.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pandas as pd
import yaml

from sim.config.deployment import resolve
from sim.config.price import list_prices, price_for
from sim.config.scenario import Scenario, scenario_yaml
from sim.engine.dtypes import WEIGHT_DTYPES
from sim.engine.errors import UserError
from sim.engine.gpu import list_gpus
from sim.planning.executor import make_executor
from sim.planning.plan import AUTO_TP, Candidate, CandidatePlan, candidates, check_plannable, plan
from sim.results.summary import prediction_summary

from app.simulation import checked_document, scenario_from_yaml

DEFAULT_EXAMPLE = "plan-chat-8b.yaml"
# Three tiers of different speed and price, two formats, two seeds and half a minute of
# traffic: a first plan that finishes in seconds yet already shows a real trade-off.
DEFAULT_GPUS = ("h100-sxm", "a100-80gb", "l40s")
DEFAULT_FORMATS = ("bf16", "fp8")
DEFAULT_SEEDS = 2
DEFAULT_WINDOW_S = 30.0
# fp32 is how CPU engines run; no GPU fleet is sized for it
FORMAT_CHOICES = tuple(f for f in WEIGHT_DTYPES if f != "fp32")
TP_CHOICES = ("auto", "1", "2", "4", "8")

STATUS_TEXT = {"ok": "holds the SLO", "does_not_fit": "does not fit",
               "no_price": "no price", "cannot_hold": "cannot hold the SLO",
               "invalid": "invalid"}

# chart metrics: column of chart_points, axis title, whether more is better
METRICS = {
    "ttft": ("p95 TTFT (ms, median over seeds)", False),
    "tpot": ("p95 TPOT (ms, median over seeds)", False),
    "tokens_per_usd": ("output tokens per $ (median over seeds)", True),
}


def check_page_plannable(scenario: Scenario) -> None:
    """Raise UserError (naming the fix) for a scenario no fleet size can be planned for.

    The planner sizes one pool for an offered load. A closed loop has no offered load (its
    clients wait for replies, so the load follows the fleet's speed), and requests that all
    arrive at once are a batch job, judged by its makespan rather than by per-request SLOs.
    """
    if scenario.is_fleet:
        raise UserError(
            "this scenario is a fleet of several pools; the planner sizes one pool. Plan each "
            "pool on its own scenario (model + hardware, with the traffic its routes send it), "
            "e.g. examples/plan-chat-8b.yaml"
        )
    process = scenario.workload.process
    if scenario.workload.trace is None and process in ("closed_loop", "all_at_once"):
        how = ("from a closed loop of clients (its load follows the fleet's speed)"
               if process == "closed_loop" else "all at once (a batch job, not a served load)")
        raise UserError(
            f"the workload's requests arrive {how}, so there is no request rate to size a fleet "
            "for: use workload.arrivals: {process: poisson, rate_per_s: 20} with duration_s: 60"
        )


@dataclass(frozen=True)
class Prefill:
    """The page's inputs as the scenario sets them (None: the scenario has no such value)."""

    ttft_p95_ms: float | None
    tpot_p95_ms: float | None
    e2e_p99_ms: float | None
    rate_per_s: float | None  # None: the arrivals have no single rate to override
    window_s: float | None  # None: the window cannot be set (staged arrivals)


def prefill(scenario: Scenario) -> Prefill:
    """Inputs prefilled from a (plannable) scenario; the window is at most DEFAULT_WINDOW_S,
    so a first plan stays quick even when the scenario describes an hour."""
    workload, slo = scenario.workload, scenario.slo
    rate = None
    if workload.trace is None and workload.stages is None and workload.arrivals is not None:
        rate = workload.arrivals.rate_per_s
    window = None if workload.stages is not None else DEFAULT_WINDOW_S
    if window is not None and workload.duration_s is not None:
        window = min(window, workload.duration_s)
    return Prefill(slo.ttft_p95_ms, slo.tpot_p95_ms, slo.e2e_p99_ms, rate, window)


def planned_yaml(base_text: str, *, ttft_p95_ms: float | None, tpot_p95_ms: float | None,
                 e2e_p99_ms: float | None, rate_per_s: float | None,
                 window_s: float | None) -> str:
    """The scenario to plan for, as canonical YAML: the base scenario with the page's SLO
    targets (all of them: a target left empty is dropped), arrival rate and window.

    The window bounds the simulated traffic: ``duration_s`` for generated arrivals (any
    ``num_requests`` cap dropped, so the count follows the rate), the end of the replayed
    stretch for a trace. A rate or window of None leaves the scenario's own.
    Raises ScenarioError when the result is not a valid scenario.
    """
    data = checked_document(base_text)  # a bad base names its own problem, before any edit
    slo = {key: value for key, value in (("ttft_p95_ms", ttft_p95_ms),
                                         ("tpot_p95_ms", tpot_p95_ms),
                                         ("e2e_p99_ms", e2e_p99_ms)) if value is not None}
    data["slo"] = slo
    workload = data["workload"]
    if rate_per_s is not None and isinstance(workload.get("arrivals"), dict):
        workload["arrivals"]["rate_per_s"] = rate_per_s
    if window_s is not None:
        if isinstance(workload.get("trace"), dict):
            trace = workload["trace"]
            trace["end_s"] = float(trace.get("start_s") or 0.0) + window_s
        elif workload.get("stages") is None:
            workload["duration_s"] = window_s
            workload.pop("num_requests", None)
    return scenario_yaml(scenario_from_yaml(yaml.safe_dump(data, sort_keys=False)))


def check_targets(ttft_p95_ms: float | None, tpot_p95_ms: float | None,
                  e2e_p99_ms: float | None) -> None:
    """A plan needs something to hold: UserError when every target is left empty."""
    if ttft_p95_ms is None and tpot_p95_ms is None and e2e_p99_ms is None:
        raise UserError("no latency target: enter at least one of p95 TTFT, p95 TPOT or "
                        "p99 E2E (e.g. 800 ms TTFT and 60 ms TPOT for chat)")


def price_tier(scenario: Scenario) -> str:
    """The catalog tier the planner prices candidates in (reserved is on-demand, discounted)."""
    tier = scenario.hardware.price_tier
    return "on_demand" if tier == "reserved" else tier


def priced_gpus(scenario: Scenario) -> list[str]:
    """GPU tiers worth planning on: those the price catalog prices in the scenario's tier, and
    the scenario's own GPU when the scenario gives its price."""
    tier = price_tier(scenario)
    known = set(list_gpus())
    gpus = sorted({p.gpu_id for p in list_prices() if p.tier == tier and p.gpu_id in known})
    own = scenario.hardware.gpu
    if scenario.hardware.price_usd_per_hour is not None and own not in gpus:
        gpus.insert(0, own)
    return gpus


def gpu_label(scenario: Scenario, gpu: str) -> str:
    """A GPU tier with its hourly price per GPU, as the planner will charge it."""
    hw = scenario.hardware
    if gpu == hw.gpu and hw.price_usd_per_hour is not None:
        return f"{gpu} ${hw.price_usd_per_hour:,.2f} (the scenario's)"
    return f"{gpu} ${price_for(gpu, price_tier(scenario)).usd_per_gpu_hour:,.2f}"


def tp_degrees(selection: Sequence[str]) -> tuple[int, ...]:
    """The TP degrees of the page's selection: ``auto`` alone, or explicit degrees."""
    if not selection:
        raise UserError("choose a tensor-parallel degree: auto, or one or more of 1, 2, 4, 8")
    if "auto" in selection:
        if len(selection) > 1:
            raise UserError("TP: choose auto (the smallest degree that fits each GPU and "
                            "format) or explicit degrees, not both")
        return (AUTO_TP,)
    return tuple(sorted({int(s) for s in selection}))


def plan_space(gpus: Sequence[str], formats: Sequence[str],
               tps: Sequence[int]) -> tuple[Candidate, ...]:
    """Every GPU x format x TP combination; UserError, with the fix, when a list is empty."""
    if not gpus:
        raise UserError("no GPU tier chosen: pick at least one, e.g. h100-sxm")
    if not formats:
        raise UserError("no weight format chosen: pick at least one, e.g. bf16")
    return tuple(candidates(list(gpus), list(formats), list(tps)))


def plan_seeds(scenario: Scenario, count: int) -> tuple[int, ...]:
    """The scenario's seed and the next ones, as ``servesim plan --seeds`` takes them."""
    return tuple(scenario.seed + i for i in range(count))


def expected_simulations(n_candidates: int, n_seeds: int) -> int:
    """A typical number of runs: a few replica counts on the first seed, then the answer and
    one replica fewer on every seed (screened-out candidates take none)."""
    return n_candidates * (2 + 2 * n_seeds)


def workers_for(n_candidates: int) -> int:
    """Processes for a plan: every core but one (the app's server keeps answering); one runs
    the candidates inline.

    Only where workers are forked (Linux). Elsewhere they are spawned, and a spawned worker
    re-runs the main module, which in the app is the page script itself.
    """
    if sys.platform != "linux":
        return 1
    return max(1, min((os.cpu_count() or 1) - 1, n_candidates))


def run_plan(text: str, space: Sequence[Candidate], seeds: Sequence[int],
             progress: Callable[[int, int], None] | None = None) -> list[CandidatePlan]:
    """Plan the scenario written in ``text`` over ``space``; raises UserError (ScenarioError)."""
    scenario = scenario_from_yaml(text)
    check_page_plannable(scenario)
    check_plannable(scenario)
    executor = make_executor("local", workers=workers_for(len(space)))
    return plan(scenario, list(space), list(seeds), executor, progress)


def winner(plans: Sequence[CandidatePlan]) -> CandidatePlan | None:
    """The cheapest candidate that holds the SLOs (plans come ranked)."""
    return next((p for p in plans if p.status == "ok"), None)


def candidate_label(p: CandidatePlan) -> str:
    c = p.candidate
    fleet = f"{p.replicas} × " if p.replicas else ""
    return f"{fleet}{c.gpu} {c.weight_dtype} TP{c.tensor_parallel}"


def plan_table(plans: Sequence[CandidatePlan]) -> pd.DataFrame:
    """The candidates that hold the SLOs, ranked: one row each with the figures a person
    compares. Latencies are the worst seed's (the answer holds in every seed); costs and
    tokens per $ are the chosen fleet's."""
    rows = []
    for p in plans:
        if p.status != "ok":
            continue
        c = p.candidate
        rows.append({
            "#": p.rank,
            "Pareto": p.pareto,
            "GPU": c.gpu,
            "format": c.weight_dtype,
            "TP": c.tensor_parallel,
            "replicas": p.replicas,
            "GPUs": p.gpus,
            "$/hour": p.usd_per_hour,
            "$/month": p.monthly_usd,
            "$/1M output tokens": p.usd_per_million_output_tokens,
            "output tokens/$": p.output_tokens_per_usd,
            "p95 TTFT (ms)": p.ttft_p95_ms_worst,
            "p95 TPOT (ms)": p.tpot_p95_ms_worst,
            "p99 E2E (ms)": p.e2e_p99_ms,
            "quality kept": _quality(p),
            "seeds held": f"{p.seeds_held}/{p.seeds}",
            # "–" at one replica: there is no smaller fleet to try
            "held with one fewer": ("–" if p.seeds_held_one_fewer is None
                                    else f"{p.seeds_held_one_fewer}/{p.seeds}"),
        })
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


TABLE_COLUMNS = ["#", "Pareto", "GPU", "format", "TP", "replicas", "GPUs", "$/hour", "$/month",
                 "$/1M output tokens", "output tokens/$", "p95 TTFT (ms)", "p95 TPOT (ms)",
                 "p99 E2E (ms)", "quality kept", "seeds held", "held with one fewer"]
SCREENED_COLUMNS = ["GPU", "format", "TP", "status", "quality kept", "why screened out"]


def screened_table(plans: Sequence[CandidatePlan]) -> pd.DataFrame:
    """The candidates that cannot work, each with the reason (the planner's first line)."""
    rows = [{
        "GPU": p.candidate.gpu,
        "format": p.candidate.weight_dtype,
        "TP": p.candidate.tensor_parallel,
        "status": STATUS_TEXT.get(p.status, p.status),
        "quality kept": _quality(p),
        "why screened out": _first_line(p.message),
    } for p in plans if p.status != "ok"]
    return pd.DataFrame(rows, columns=SCREENED_COLUMNS)


def plan_csv(plans: Sequence[CandidatePlan]) -> str:
    """Every candidate's full record, as ``servesim plan`` writes plan.csv."""
    return pd.DataFrame([p.row() for p in plans]).to_csv(index=False)


def winner_yaml(plans: Sequence[CandidatePlan]) -> str | None:
    """The cheapest feasible candidate as a scenario file with its replica count."""
    best = winner(plans)
    if best is None or best.scenario is None:
        return None
    return scenario_yaml(best.scenario)


def pareto_mask(costs: Sequence[float], values: Sequence[float],
                higher_is_better: bool = False) -> list[bool]:
    """For each point, whether no other point is at least as cheap and at least as good
    on ``values``, and strictly better on one of the two."""
    sign = -1.0 if higher_is_better else 1.0
    points = [(c, sign * v) for c, v in zip(costs, values)]
    return [
        not any(qc <= pc and qv <= pv and (qc < pc or qv < pv) for qc, qv in points)
        for pc, pv in points
    ]


def chart_points(plans: Sequence[CandidatePlan], metric: str) -> pd.DataFrame:
    """The feasible candidates for the Pareto chart: cost, the metric (``ttft``, ``tpot`` or
    ``tokens_per_usd``), a label, and whether each is on the front of cost against that
    metric and the winner."""
    _, higher_is_better = METRICS[metric]
    value_of = {"ttft": lambda p: p.ttft_p95_ms, "tpot": lambda p: p.tpot_p95_ms,
                "tokens_per_usd": lambda p: p.output_tokens_per_usd}[metric]
    best = winner(plans)
    rows = [{
        "candidate": candidate_label(p),
        "usd_per_hour": p.usd_per_hour,
        "value": value_of(p),
        "ttft_ms": p.ttft_p95_ms,
        "tpot_ms": p.tpot_p95_ms,
        "tokens_per_usd": p.output_tokens_per_usd,
        "monthly_usd": p.monthly_usd,
        "winner": p is best,
    } for p in plans if p.status == "ok" and value_of(p) is not None]
    frame = pd.DataFrame(rows, columns=["candidate", "usd_per_hour", "value", "ttft_ms",
                                        "tpot_ms", "tokens_per_usd", "monthly_usd", "winner"])
    frame["pareto"] = pareto_mask(frame["usd_per_hour"].tolist(), frame["value"].tolist(),
                                  higher_is_better)
    return frame


def winner_prediction(p: CandidatePlan) -> dict | None:
    """A summary-shaped dict for ``app.prediction_note`` (``prediction`` plus the worst seed's
    p95 TTFT and TPOT) saying how far to trust a candidate's latencies: what
    ``sim.results.summary.prediction_summary`` says of a run of the candidate's scenario, for the
    figures shown. None when it cannot be told."""
    scenario = p.scenario
    if scenario is None or scenario.is_fleet:
        return None
    try:
        deployment = resolve(scenario)
    except UserError:
        return None
    figures = {"ttft_ms": {"p95": p.ttft_p95_ms_worst}, "tpot_ms": {"p95": p.tpot_p95_ms_worst}}
    return {**figures, "prediction": prediction_summary([deployment], figures)}


def ms_text(value: float | None, decimals: int = 0) -> str:
    """A latency for a headline figure; a dash when there is none (e.g. one-token replies)."""
    return "–" if value is None else f"{value:,.{decimals}f} ms"


def _quality(p: CandidatePlan) -> str | None:
    if p.quality_retention_percent is None or math.isnan(p.quality_retention_percent):
        return None
    return f"{'~' if p.quality_borrowed else ''}{p.quality_retention_percent:.1f}%"


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""
