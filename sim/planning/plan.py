"""SLO-constrained fleet sizing: for each candidate configuration, the fewest replicas that
hold the scenario's SLOs in every seed, then the candidates ranked by cost.

A candidate is a GPU tier, a weight format, a tensor-parallel degree and optionally a batch
limit. Its replica count is searched on the first seed (doubling until the SLO holds, then
bisecting), and the answer is checked on every seed, adding replicas until all of them hold.
The workload of a seed is the same at every replica count, so a count is judged on exactly
the traffic its neighbours saw. The result says how sure it is: how many seeds held at the
chosen count and how many would have held with one replica fewer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
import math
from itertools import product

import numpy as np

from sim.config.deployment import resolve
from sim.config.price import price_for
from sim.config.quality import retention_for
from sim.config.scenario import Scenario, SloSpec, apply_overrides, parse_scenario
from sim.engine.batch import Batch, chunk_terms
from sim.engine.errors import ScenarioError, UserError
from sim.planning.executor import Executor
from sim.runner.pool_run import workload_source
from sim.runner.run import run_scenario
from sim.results.slo_verdict import SLO_FIGURES, rejected_share, slo_figures, slo_misses
from sim.workload.workload import Workload

AUTO_TP = 0  # a candidate's TP degree to be chosen: the smallest of TP_CHOICES that fits
TP_CHOICES = (1, 2, 4, 8)
MAX_REPLICAS = 512  # beyond this a candidate is reported as unable to hold the SLO
# A failing latency that doubling the replicas improves by less than this share is not
# caused by queueing, so no replica count will fix it.
_MIN_GAIN = 0.03
_QUEUE_FREE_MS = 50.0  # p95 wait before a request's first step: below this, load is not the issue
# none: judge the simulated figures; band: the pessimistic (slow) end of their error band
SLO_MARGINS = ("none", "band")


@dataclass(frozen=True, slots=True)
class Candidate:
    gpu: str
    weight_dtype: str
    tensor_parallel: int
    max_num_seqs: int | None = None  # None: the scenario's own


@dataclass(frozen=True)
class Trial:
    """One simulated (replicas, seed) of a candidate, reduced to what the plan needs."""

    replicas: int
    seed: int
    holds: bool
    ttft_p95_ms: float | None
    tpot_p95_ms: float | None
    e2e_p99_ms: float | None
    rejected: int
    usd_per_hour: float
    monthly_usd: float
    output_tokens_per_usd: float | None
    usd_per_million_output_tokens: float | None
    target_ttft_p95_ms: float | None = None
    target_tpot_p95_ms: float | None = None
    target_e2e_p99_ms: float | None = None
    queue_p95_ms: float | None = None
    # an overloaded run ends long after its last arrival: the ratio of the two says roughly
    # how many replicas the load needs, before any latency target is counted
    load_ratio: float = 1.0
    # the figures the verdict used where they are not the simulated ones (--slo-margin band:
    # the band's slow end), by target name; the report keeps showing the simulated ones
    judged_ms: dict[str, float | None] = field(default_factory=dict, compare=False)
    band_missing: bool = False  # a band margin was asked for, but this run has no band

    def judged(self, name: str) -> float | None:
        """The figure the SLO verdict used for one target (e.g. ``ttft_p95_ms``)."""
        return self.judged_ms.get(name, getattr(self, name))


@dataclass(frozen=True)
class CandidatePlan:
    """The answer for one candidate: ``status`` is ok, does_not_fit, no_price or
    cannot_hold; the figures are the chosen replica count's, median (and worst) over seeds."""

    candidate: Candidate
    status: str
    message: str = ""
    replicas: int | None = None
    gpus: int | None = None
    seeds: int = 0
    seeds_held: int = 0
    seeds_held_one_fewer: int | None = None
    usd_per_hour: float | None = None
    monthly_usd: float | None = None
    output_tokens_per_usd: float | None = None
    usd_per_million_output_tokens: float | None = None
    ttft_p95_ms: float | None = None
    ttft_p95_ms_worst: float | None = None
    tpot_p95_ms: float | None = None
    tpot_p95_ms_worst: float | None = None
    e2e_p99_ms: float | None = None
    quality_retention_percent: float | None = None
    quality_basis: str = ""
    quality_borrowed: bool = False  # the figure is another model's (none published for this one)
    simulations: int = 0
    slo_margin: str = "none"
    band_missing: bool = False  # judged on the predicted figures: its runs have no error band
    scenario: Scenario | None = field(default=None, compare=False)
    pareto: bool = False
    rank: int | None = None

    def row(self) -> dict:
        """A flat JSON-ready record (the scenario itself left out)."""
        data = {f.name: getattr(self, f.name) for f in fields(self)
                if f.name not in ("candidate", "scenario")}  # no deep copy of the scenario
        return {**asdict(self.candidate), **data}


def candidates(gpus: Sequence[str], formats: Sequence[str], tps: Sequence[int],
               max_num_seqs: Sequence[int | None] = (None,)) -> list[Candidate]:
    """The candidate space: every combination, in the order given."""
    return [Candidate(g, f, t, m) for g, f, t, m in product(gpus, formats, tps, max_num_seqs)]


def check_plannable(scenario: Scenario) -> None:
    if scenario.is_fleet:
        raise UserError("plan sizes one pool: give a scenario with model and hardware, not a fleet")
    slo = scenario.slo
    if slo.ttft_p95_ms is None and slo.tpot_p95_ms is None and slo.e2e_p99_ms is None:
        raise UserError(
            "plan needs at least one SLO in the scenario: add e.g. slo: {ttft_p95_ms: 500, "
            "tpot_p95_ms: 50} (e2e_p99_ms is optional)"
        )


def plan(scenario: Scenario, space: Sequence[Candidate], seeds: Sequence[int],
         executor: Executor, progress: Callable[[int, int], None] | None = None,
         slo_margin: str = "none") -> list[CandidatePlan]:
    """Every candidate's plan, ranked: feasible ones by $/hour (then tokens per $), then the
    rest; feasible ones on the cost-latency Pareto front are marked.

    ``slo_margin`` ``band`` judges every run at the slow end of its error band, so a plan
    holds even where the latency model errs as badly as it did on runs it was not trained on.
    """
    check_plannable(scenario)
    if not seeds:
        raise UserError("plan needs at least one seed")
    if slo_margin not in SLO_MARGINS:
        raise UserError(f"slo margin {slo_margin!r}: use one of {', '.join(SLO_MARGINS)}")
    tasks = [(scenario, c, tuple(seeds), slo_margin) for c in space]
    plans = executor.map(plan_candidate, tasks, progress)
    return rank(plans)


def plan_candidate(task: tuple[Scenario, Candidate, tuple[int, ...], str]) -> CandidatePlan:
    """The fewest replicas of one candidate that hold the SLO in every seed."""
    base, candidate, seeds, margin = task
    if candidate.tensor_parallel == AUTO_TP:
        candidate = _smallest_fitting_tp(base, candidate)
    try:
        scenario = candidate_scenario(base, candidate)
    except ScenarioError as exc:
        return CandidatePlan(candidate, "invalid", str(exc))
    quality = retention_for(scenario.model, candidate.weight_dtype, base.quality_retention)
    trials: dict[tuple[int, int], Trial] = {}

    def trial(replicas: int, seed: int) -> Trial:
        key = (replicas, seed)
        if key not in trials:
            trials[key] = _simulate(scenario, replicas, seed, margin)
        return trials[key]

    extra = {"quality_retention_percent": quality.percent, "quality_basis": quality.basis,
             "quality_borrowed": not quality.exact_model, "slo_margin": margin}
    unusable = _unusable(scenario)
    if unusable is not None:
        return CandidatePlan(candidate, unusable[0], unusable[1], **extra)
    floor = _latency_floor_miss(scenario)
    if floor is not None:
        return CandidatePlan(candidate, "cannot_hold", floor, **extra)
    try:
        replicas = _search(lambda r: trial(r, seeds[0]))
        if replicas is not None:
            replicas = _confirm(replicas, seeds, trial)
    except _Hopeless as exc:
        return CandidatePlan(candidate, "cannot_hold", str(exc), simulations=len(trials),
                             band_missing=_band_missing(trials), **extra)
    if replicas is None:
        return CandidatePlan(
            candidate, "cannot_hold",
            f"the SLO does not hold even with {MAX_REPLICAS} replicas",
            simulations=len(trials), band_missing=_band_missing(trials), **extra)
    chosen = [trial(replicas, s) for s in seeds]
    below = ([trials[(replicas - 1, s)].holds for s in seeds if (replicas - 1, s) in trials]
             if replicas > 1 else [])
    return CandidatePlan(
        candidate, "ok",
        replicas=replicas,
        gpus=replicas * candidate.tensor_parallel,
        seeds=len(seeds),
        seeds_held=sum(t.holds for t in chosen),
        seeds_held_one_fewer=sum(below) if len(below) == len(seeds) else None,
        usd_per_hour=chosen[0].usd_per_hour,
        monthly_usd=chosen[0].monthly_usd,
        output_tokens_per_usd=_median([t.output_tokens_per_usd for t in chosen]),
        usd_per_million_output_tokens=_median([t.usd_per_million_output_tokens for t in chosen]),
        ttft_p95_ms=_median([t.ttft_p95_ms for t in chosen]),
        ttft_p95_ms_worst=_worst([t.ttft_p95_ms for t in chosen]),
        tpot_p95_ms=_median([t.tpot_p95_ms for t in chosen]),
        tpot_p95_ms_worst=_worst([t.tpot_p95_ms for t in chosen]),
        e2e_p99_ms=_median([t.e2e_p99_ms for t in chosen]),
        simulations=len(trials),
        band_missing=_band_missing(trials),
        scenario=_with_replicas(scenario, replicas),
        **extra,
    )


def _band_missing(trials: dict[tuple[int, int], Trial]) -> bool:
    return any(t.band_missing for t in trials.values())


def _smallest_fitting_tp(base: Scenario, candidate: Candidate) -> Candidate:
    """The candidate at the smallest TP degree whose memory plan fits (the largest tried
    when none does, so its plan says why). A problem no TP degree changes (no price for the
    GPU) stops the search at once, so the candidate is reported at TP 1 with that reason."""
    for tp in TP_CHOICES:
        trying = replace(candidate, tensor_parallel=tp)
        try:
            problem = _unusable(candidate_scenario(base, trying))
        except ScenarioError:
            continue
        if problem is None or problem[0] != "does_not_fit":
            return trying
    return replace(candidate, tensor_parallel=TP_CHOICES[-1])


def candidate_scenario(base: Scenario, candidate: Candidate) -> Scenario:
    """The scenario with the candidate's GPU, format, TP and batch limit (one replica)."""
    data = base.model_dump(mode="json", exclude_none=True)
    if candidate.gpu != base.hardware.gpu:
        data["hardware"].pop("price_usd_per_hour", None)  # that price was for another GPU
    overrides = [f"hardware.gpu={candidate.gpu}",
                 f"hardware.tensor_parallel={candidate.tensor_parallel}",
                 "hardware.replicas=1",
                 f"engine.weight_dtype={candidate.weight_dtype}"]
    if candidate.max_num_seqs is not None:
        overrides.append(f"engine.max_num_seqs={candidate.max_num_seqs}")
    name = (f"{base.name}-{candidate.gpu}-{candidate.weight_dtype}-tp{candidate.tensor_parallel}"
            + (f"-seqs{candidate.max_num_seqs}" if candidate.max_num_seqs else ""))
    data = apply_overrides(data, overrides) | {"name": name}
    return parse_scenario(data, where=f"candidate {name}")


def _with_replicas(scenario: Scenario, replicas: int) -> Scenario:
    hardware = scenario.hardware.model_copy(update={"replicas": replicas})
    return scenario.model_copy(update={"hardware": hardware})


def _simulate(scenario: Scenario, replicas: int, seed: int, margin: str = "none") -> Trial:
    outcome = run_scenario(_with_replicas(scenario, replicas).with_seed(seed))
    summary, arrivals = outcome.summary, outcome.result.records["arrival_s"]
    span = float(arrivals.max() - arrivals.min()) if len(arrivals) > 1 else 0.0
    load_ratio = summary["duration_s"] / span if span > 0 else 1.0
    slo = scenario.slo
    predicted = slo_figures(summary)
    judged = slo_figures(summary, "pessimistic") if margin == "band" else predicted
    rejected = summary["requests"]["rejected"]
    holds = not slo_misses(slo, judged, rejected_share(summary["requests"]))
    cost = summary["cost"]
    return Trial(replicas, seed, holds, predicted["ttft_p95_ms"], predicted["tpot_p95_ms"],
                 predicted["e2e_p99_ms"], rejected, cost["usd_per_hour"],
                 cost["monthly_usd"], cost["output_tokens_per_usd"],
                 cost["usd_per_million_output_tokens"], slo.ttft_p95_ms, slo.tpot_p95_ms,
                 slo.e2e_p99_ms, summary["queue_ms"]["p95"], load_ratio,
                 judged_ms={k: v for k, v in judged.items() if v != predicted[k]},
                 band_missing=margin == "band" and summary["prediction"]["band"] is None)


class _Hopeless(Exception):
    """More replicas cannot make this candidate hold the SLO; the message says why."""


def _unusable(scenario: Scenario) -> tuple[str, str] | None:
    """(status, why) when a candidate cannot run at all: no price for its GPU, or the model
    does not fit (weights plus a minimum of KV cache) at this TP degree."""
    hw = scenario.hardware
    if hw.price_usd_per_hour is None:
        try:
            price_for(hw.gpu, "on_demand" if hw.price_tier == "reserved" else hw.price_tier)
        except ScenarioError as exc:
            return "no_price", str(exc)
    try:
        resolve(scenario)
    except ScenarioError as exc:
        return "does_not_fit", str(exc)
    return None


def _latency_floor_miss(scenario: Scenario) -> str | None:
    """Why no replica count can hold the SLO, if the requests' own work already misses it.

    A request alone on a replica is as fast as it can be served: its prompt's prefill (only
    the part a prefix cache could not hold) in chunks of the step budget, then one decode step
    per token at batch one. Load only adds to that, so when the p95 of these floors misses a
    target, every fleet of this configuration misses it too, and no simulation is needed.
    (Trace workloads are streamed, not held whole, and are not screened.)
    """
    source = workload_source(scenario)
    if not isinstance(source, Workload) or len(source) == 0:
        return None
    deployment = resolve(scenario)
    latency, budget = deployment.setup.latency, deployment.setup.limits.max_num_batched_tokens
    cached = source.prefix_tokens if deployment.setup.prefix_caching else 0 * source.prefix_tokens
    prompts = source.input_tokens.tolist()
    ttft = [_alone_prefill_s(latency, p, int(c), budget) for p, c in zip(prompts, cached.tolist())]
    tpot = [latency.decode_run(1, p, n - 1).total / (n - 1)
            for p, n in zip(prompts, source.output_tokens.tolist()) if n > 1]
    slo = scenario.slo
    for label, values, target in (("TTFT", ttft, slo.ttft_p95_ms), ("TPOT", tpot, slo.tpot_p95_ms)):
        if target is None or not values:
            continue
        floor_ms = float(np.percentile(values, 95)) * 1e3
        if floor_ms > target:
            return (f"even alone on a replica, p95 {label} would be {floor_ms:,.0f} ms against a "
                    f"target of {target:,.0f} ms: this GPU and format are too slow for these "
                    "requests at any fleet size")
    return None


def _alone_prefill_s(latency, prompt: int, cached: int, budget: int) -> float:
    """A prompt's prefill alone on a replica: its uncached tokens in chunks of the budget."""
    total, done = 0.0, min(cached, prompt - 1)
    while done < prompt:
        chunk = min(budget, prompt - done)
        pairs, kv = chunk_terms(chunk, done)
        total += latency.step_time(Batch(prefill_tokens=chunk, prefill_seqs=1,
                                         prefill_attention_pairs=pairs, prefill_kv_tokens=kv))
        done += chunk
    return total


def _search(trial: Callable[[int], Trial]) -> int | None:
    """The smallest replica count that holds, assuming more replicas never hurt: double from
    one until it holds, then bisect between the last failure and the first success.

    Doubling stops early when it cannot help: prompts rejected for length stay rejected, and
    a latency that did not improve with twice the replicas is set by one request's own work
    (a long prefill on a slow GPU), not by queueing.
    """
    low, high = 0, 1  # low fails (zero replicas serve nothing), high is the next to try
    previous: Trial | None = None
    while not (current := trial(high)).holds:
        _check_hopeful(current, previous)
        low, previous = high, current
        if high >= MAX_REPLICAS:
            return None
        # one overloaded replica tells how many the load needs at least: start there
        jump = math.ceil(current.load_ratio) if high == 1 else 2
        high = min(max(2 * high, jump), MAX_REPLICAS)
    while high - low > 1:
        middle = (low + high) // 2
        if trial(middle).holds:
            high = middle
        else:
            low = middle
    return high


def _check_hopeful(current: Trial, previous: Trial | None) -> None:
    """Raise _Hopeless when more replicas cannot be what fixes this candidate.

    That is so when requests are rejected for length, or when a target is missed, doubling the
    replicas improved that figure by less than _MIN_GAIN, and requests hardly queue any more
    (p95 queueing under _QUEUE_FREE_MS): the latency is then one request's own work and the
    batching it shares a step with, which more replicas do not remove. While requests still
    queue, an overloaded fleet keeps every batch full and its TPOT may stay put from one to
    two replicas although more replicas are exactly what it needs.
    """
    if current.rejected:
        raise _Hopeless(
            f"{current.rejected} requests are rejected (prompts longer than the context this "
            "configuration can hold); more replicas do not change that"
        )
    if previous is None or current.queue_p95_ms is None or current.queue_p95_ms > _QUEUE_FREE_MS:
        return
    for name, _, _ in SLO_FIGURES:
        now, before = current.judged(name), previous.judged(name)
        target = getattr(current, "target_" + name)
        if (target is not None and now is not None and before is not None and now > target
                and now > (1 - _MIN_GAIN) * before):
            raise _Hopeless(
                f"{name.replace('_ms', '').replace('_', ' ')} stays at {now:,.0f} ms with "
                f"{current.replicas} replicas ({before:,.0f} ms with {previous.replicas}) "
                f"against a target of {target:,.0f} ms while requests hardly queue: one "
                "request's own work (and its batch) exceeds it"
            )


def _confirm(replicas: int, seeds: Sequence[int], trial: Callable[[int, int], Trial]) -> int | None:
    """Add replicas until every seed holds (another seed's traffic may be harder)."""
    while replicas <= MAX_REPLICAS:
        if all(trial(replicas, s).holds for s in seeds):
            if replicas > 1:
                for s in seeds:  # how sure: would one replica fewer have held?
                    trial(replicas - 1, s)
            return replicas
        replicas += 1
    return None


def rank(plans: Sequence[CandidatePlan]) -> list[CandidatePlan]:
    """Feasible plans by $/hour, then quality kept, then tokens per $ (best first), then the
    infeasible ones; feasible plans no other beats on both $/hour and p95 TTFT are on the
    Pareto front. (At equal cost and load the tokens served are equal, so quality decides.)"""
    feasible = sorted((p for p in plans if p.status == "ok"),
                      key=lambda p: (p.usd_per_hour, -(p.quality_retention_percent or 0.0),
                                     -(p.output_tokens_per_usd or 0.0)))
    front = _pareto_front(feasible)
    ranked = [replace(p, rank=i + 1, pareto=i in front) for i, p in enumerate(feasible)]
    return ranked + [p for p in plans if p.status != "ok"]


def _pareto_front(plans: Sequence[CandidatePlan]) -> set[int]:
    def latency(p: CandidatePlan) -> float:
        return p.ttft_p95_ms if p.ttft_p95_ms is not None else float("inf")

    front = set()
    for i, p in enumerate(plans):
        dominated = any(
            q.usd_per_hour <= p.usd_per_hour and latency(q) <= latency(p)
            and (q.usd_per_hour < p.usd_per_hour or latency(q) < latency(p))
            for q in plans
        )
        if not dominated:
            front.add(i)
    return front


def _median(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return float(np.median(known)) if known else None


def _worst(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return max(known) if known else None
