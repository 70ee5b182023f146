"""Training the per-operator step-time model's few global coefficients on measured runs.

Fit by simulation: every evaluation replays each run's load through the simulator with the
candidate coefficients and compares the simulated per-stage means of E2E, TTFT and ITL with
the measured ones as log ratios (a relative error, so a 30 ms TTFT weighs as much as a 5 s
E2E), each run counting once whatever its number of stages. A soft-L1 loss keeps a run that no
coefficient set fits from dragging the others.

The two costs outside the engine (per request before the first token, per output token) do
not change what the engine does, so they are not simulated: for each candidate the best pair
follows from the simulated engine figures in closed form (variable projection), and only the
engine's coefficients are searched, in log space, by a trust-region least-squares method whose
finite differences run as one batch of simulations over the cores (or a Ray cluster).

Every simulated point is kept in a cache file keyed by the run, the coefficients and the
simulator's source, so a fit interrupted or repeated resumes where it was.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy.optimize import least_squares

from calibrate.deployment_runs import METRICS, DeploymentRun, parse_stages, scenario_for, \
    stage_means
from calibrate.errors import CalibrationError
from sim.engine.latency_profile import OperatorCoefficients, load_profile

# searched by simulation; the rest stay at the start profile's values
FREE = ("gemm_compute_efficiency", "weight_memory_efficiency", "kv_memory_efficiency",
        "allreduce_latency_us", "step_overhead_ms", "per_seq_overhead_us",
        "graph_layer_overhead_us", "eager_layer_overhead_us", "moe_layer_overhead_us")
CLIENT = ("request_overhead_ms", "output_token_overhead_ms")
# Bounds of the client costs. A constant per output token moves every run's ITL the way a
# per-step engine cost does, so left free it would stand in for engine time; these bounds keep
# it near what serving front ends cost (the published model of these runs: ~15 ms per request,
# ~0.05 ms per output token).
CLIENT_MAX = (50.0, 0.2)
FIT_STAGE_SECONDS = 30.0  # each stage shortened to this (but >= 300 requests) while fitting
FIT_STAGE_REQUESTS = 300
# Where every search starts, the same for every fold of a validation (a start fitted on all
# runs would carry the left-out model into its fold). Physical priors: efficiencies typical of
# vLLM's kernels on datacenter GPUs, FlashAttention at half of peak, a fixed all-reduce of
# ~10 us, and the fixed costs of the published cross-model fit of these runs (~130 us per
# step, ~4 us per sequence, ~30 us per layer, ~15 ms per request, ~0.05 ms per output token).
NEUTRAL_START = OperatorCoefficients(
    gemm_compute_efficiency=0.6, weight_memory_efficiency=0.85, kv_memory_efficiency=0.7,
    attention_compute_efficiency=0.5, allreduce_latency_us=10.0, allreduce_efficiency=0.7,
    step_overhead_ms=0.13, per_seq_overhead_us=4.4, per_prefill_seq_overhead_ms=0.1,
    graph_layer_overhead_us=10.0, eager_layer_overhead_us=30.0, moe_layer_overhead_us=20.0,
    request_overhead_ms=15.0, output_token_overhead_ms=0.05)
# A second start with the published model's per-layer cost (~32 us per layer per step) and
# higher bandwidth efficiencies: the same physics with the fixed costs carrying more of the
# step, the other basin the search can fall into.
LAYER_COST_START = dataclasses.replace(
    NEUTRAL_START, weight_memory_efficiency=0.9, kv_memory_efficiency=0.5,
    graph_layer_overhead_us=32.0, eager_layer_overhead_us=32.0)
STARTS = (NEUTRAL_START, LAYER_COST_START)
JACOBIAN_STEP = 0.25  # in log space
# how much each metric's log ratio counts; E2E and ITL carry nearly the same information
# (E2E ~ TTFT + outputs x ITL), so together they already outweigh TTFT two to one
METRIC_WEIGHTS = {"e2e": 1.0, "ttft": 1.0, "itl": 1.0}
_FLOOR = 1e-3  # the smallest overhead the log-space search reaches (1e-3 of its unit)
_MISSING = math.log(10.0)  # a stage the simulation left without a completed request
_SIM_PACKAGE = Path(__file__).resolve().parent.parent / "sim"


@dataclasses.dataclass(frozen=True)
class RunFit:
    coefficients: OperatorCoefficients
    runs: tuple[str, ...]  # the run ids fitted on
    evaluations: int
    cost: float  # the loss at the end
    simulations: int


def fit_runs(runs: Sequence[DeploymentRun],
             start: OperatorCoefficients | Sequence[OperatorCoefficients], *,
             cache: Path | None = None, workers: int | None = None, executor: str = "local",
             stage_seconds: float = FIT_STAGE_SECONDS, stage_requests: int = FIT_STAGE_REQUESTS,
             max_evaluations: int = 12, loss: str = "soft_l1",
             free: Sequence[str] = FREE,
             log: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
             ) -> RunFit:
    """Coefficients that reproduce the runs that were not overloaded.

    ``start`` may be several starting points: the objective has more than one basin (the
    fixed costs per layer and the bandwidth efficiencies can stand in for each other), so the
    search runs from each and keeps the one that fits these runs best.
    """
    fitted = [run for run in runs if not run.overloaded]
    if not fitted:
        raise CalibrationError("nothing to fit: every run is overloaded (or there are none); "
                               "a fit needs runs the engine kept up with")
    if len(fitted) < len(free) // 2:
        raise CalibrationError(f"{len(fitted)} run(s) cannot pin down {len(free)} coefficients "
                               "(each gives three figures per stage, which move together); "
                               "give at least half as many runs as coefficients")
    starts = [start] if isinstance(start, OperatorCoefficients) else list(start)
    points = PointSimulator(cache, workers, executor, (stage_seconds, stage_requests))
    started = time.perf_counter()
    searches = []
    try:
        for i, first in enumerate(starts, start=1):
            if len(starts) > 1:
                log(f"[fit] start {i} of {len(starts)}")
            searches.append(_search(fitted, first, points, tuple(free), max_evaluations, loss,
                                    log))
    finally:
        points.close()
    best, cost, evaluations = min(searches, key=lambda s: s[1])
    figures = points.simulate(fitted, [best])[0]
    _, client = projected_residuals(fitted, figures)
    best = dataclasses.replace(best, request_overhead_ms=client[0],
                               output_token_overhead_ms=client[1])
    total = sum(s[2] for s in searches)
    log(f"[fit] done in {time.perf_counter() - started:.0f} s: {total} evaluations, "
        f"{points.simulated} simulations"
        + (f"; kept start {searches.index(min(searches, key=lambda s: s[1])) + 1} "
           f"(losses {', '.join(f'{s[1]:.4f}' for s in searches)})" if len(searches) > 1 else ""))
    return RunFit(best, tuple(r.run_id for r in fitted), total, cost, points.simulated)


def _search(fitted: list[DeploymentRun], start: OperatorCoefficients, points: PointSimulator,
            names: tuple[str, ...], max_evaluations: int, loss: str,
            log: Callable[[str], None]) -> tuple[OperatorCoefficients, float, int]:
    """One trust-region search from ``start``: its end point, loss and evaluations."""
    # searched as x = log(value / start value): every coordinate starts at 0, and a step of
    # 0.3 is a 35 % change whatever the coefficient's unit (the trust region's first radius)
    origin = np.array([_to_log(getattr(start, n)) for n in names])
    upper = np.array([0.0 if n.endswith("efficiency") else np.inf for n in names]) - origin
    lower = np.array([math.log(0.02) if n.endswith("efficiency") else math.log(_FLOOR)
                      for n in names]) - origin
    x0 = np.clip(np.zeros(len(names)), lower + 1e-9, upper - 1e-9)
    evaluations = 0

    def coefficients(x: np.ndarray) -> OperatorCoefficients:
        values = {n: float(math.exp(v)) for n, v in zip(names, x + origin)}
        return dataclasses.replace(start, **values)

    def residual_batch(xs: list[np.ndarray]) -> list[np.ndarray]:
        nonlocal evaluations
        figures = points.simulate(fitted, [coefficients(x) for x in xs])
        evaluations += len(xs)
        return [projected_residuals(fitted, f)[0] for f in figures]

    def fun(x: np.ndarray) -> np.ndarray:
        r = residual_batch([x])[0]
        log(f"[fit] evaluation {evaluations}: {_progress_line(r)} "
            f"({points.simulated} simulated, {points.cached} from cache)")
        return r

    def jac(x: np.ndarray) -> np.ndarray:
        # a wide step (x1.28): a small fixed cost moves the means by less than the jitter of
        # a discrete-event schedule under a 5 % change, and its derivative would be noise
        step = JACOBIAN_STEP
        shifted = [x + step * np.eye(len(x))[i] * (1 if x[i] + step <= upper[i] else -1)
                   for i in range(len(x))]
        base = residual_batch([x])[0]
        columns = [(r - base) / (s[i] - x[i])
                   for i, (r, s) in enumerate(zip(residual_batch(shifted), shifted))]
        return np.column_stack(columns)

    result = least_squares(fun, x0, jac=jac, bounds=(lower, upper), loss=loss,
                           f_scale=0.1, max_nfev=max_evaluations, x_scale=0.3,
                           ftol=1e-4, xtol=1e-4)
    return coefficients(result.x), float(result.cost), evaluations


# ---- residuals ------------------------------------------------------------------------------

def projected_residuals(runs: Sequence[DeploymentRun], figures: Sequence[dict]
                        ) -> tuple[np.ndarray, tuple[float, float]]:
    """Log-ratio residuals with the client costs that fit these engine figures best."""
    base, weight, measured, outputs, kinds = _stack(runs, figures)
    if not np.isfinite(base).any():
        return np.full(len(base), _MISSING), (0.0, 0.0)

    def residuals(client: np.ndarray) -> np.ndarray:
        request_ms, token_ms = client
        added = np.where(kinds == 0, request_ms + token_ms * outputs,  # e2e
                         np.where(kinds == 1, request_ms + token_ms, token_ms))  # ttft, itl
        r = np.log((base + added) / measured)
        return weight * np.where(np.isfinite(r), r, _MISSING)

    solved = least_squares(residuals, np.array([10.0, 0.05]), bounds=([0, 0], CLIENT_MAX),
                           loss="soft_l1", f_scale=0.1)
    return residuals(solved.x), (round(float(solved.x[0]), 4), round(float(solved.x[1]), 5))


def _stack(runs: Sequence[DeploymentRun], figures: Sequence[dict]):
    base, weight, measured, outputs, kinds = [], [], [], [], []
    for run, sim in zip(runs, figures):
        stages = run.target_stages
        w = 1.0 / math.sqrt(len(stages))
        for stage in stages:
            simulated = sim.get(stage) or sim.get(str(stage)) or {}
            for k, metric in enumerate(METRICS):
                base.append(simulated.get(metric, math.nan))
                measured.append(run.measured[stage][metric])
                outputs.append(simulated.get("output_tokens", math.nan))
                weight.append(w * METRIC_WEIGHTS[metric])
                kinds.append(k)
    return (np.array(base, dtype=float), np.array(weight), np.array(measured),
            np.array(outputs, dtype=float), np.array(kinds))


def _progress_line(r: np.ndarray) -> str:
    errors = np.abs(np.expm1(r.reshape(-1, 3))) * 100  # weights < 1 shrink these a little
    medians = np.median(errors, axis=0)
    return f"median |error| E2E {medians[0]:.1f} %, TTFT {medians[1]:.1f} %, ITL {medians[2]:.1f} %"


def _to_log(value: float) -> float:
    return math.log(max(value, _FLOOR))


# ---- simulating points ----------------------------------------------------------------------

class PointSimulator:
    """Runs (run, coefficients) simulations in parallel and remembers each in a cache file."""

    def __init__(self, cache: Path | None, workers: int | None, executor: str,
                 load: tuple[float, int] = (FIT_STAGE_SECONDS, FIT_STAGE_REQUESTS)) -> None:
        self.load = load  # each stage's longest duration and fewest requests
        self.cache_path = cache
        self.memory: dict[str, dict] = _read_cache(cache) if cache else {}
        self.simulated = self.cached = 0
        self.executor = executor
        self.workers = workers or os.cpu_count() or 1
        self._pool: ProcessPoolExecutor | None = None
        self._ray = None

    def simulate(self, runs: Sequence[DeploymentRun],
                 candidates: Sequence[OperatorCoefficients]) -> list[list[dict]]:
        """For each candidate, each run's simulated stage means."""
        tasks, keys = [], []
        for c in candidates:
            for run in runs:
                key = point_key(run.row, c, self.load)
                keys.append(key)
                if key not in self.memory:
                    tasks.append((key, run.row, dataclasses.asdict(c), self.load))
        unique = list({t[0]: t for t in tasks}.values())
        self.cached += len(keys) - len(unique)
        for key, figures in zip([t[0] for t in unique], self._map(unique)):
            self.memory[key] = figures
            self._append(key, figures)
        self.simulated += len(unique)
        it = iter(keys)
        return [[self.memory[next(it)] for _ in runs] for _ in candidates]

    def _map(self, tasks: list) -> list[dict]:
        if not tasks:
            return []
        if self.executor == "ray":
            from sim.planning.executor import make_executor

            self._ray = self._ray or make_executor("ray")
            return self._ray.map(simulate_point, tasks)
        if self.workers == 1:
            return [simulate_point(t) for t in tasks]
        if self._pool is None:
            import multiprocessing

            self._pool = ProcessPoolExecutor(self.workers,
                                             mp_context=multiprocessing.get_context("fork"))
        # the longest runs first, so the last worker does not finish alone
        order = sorted(range(len(tasks)), key=lambda i: -_load_size(tasks[i][1]))
        results = list(self._pool.map(simulate_point, [tasks[i] for i in order], chunksize=1))
        out: list = [None] * len(tasks)
        for i, figures in zip(order, results):
            out[i] = figures
        return out

    def _append(self, key: str, figures: dict) -> None:
        if self.cache_path is None:
            return
        with self.cache_path.open("a") as f:
            f.write(json.dumps({"key": key, "figures": figures}) + "\n")

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None


def _load_size(row: dict) -> float:
    return sum(s["rate_per_s"] * s["duration_s"] for s in parse_stages(str(row["stages"])))


def _read_cache(path: Path) -> dict[str, dict]:
    memory: dict[str, dict] = {}
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        return memory
    with path.open() as f:
        for line in f:
            try:
                entry = json.loads(line)
                memory[entry["key"]] = entry["figures"]
            except (json.JSONDecodeError, KeyError, TypeError):
                continue  # a line cut short by an interrupted fit: simulated again
    return memory


def point_key(row: dict, coefficients: OperatorCoefficients, load: tuple[float, int]) -> str:
    """What a simulated point depends on: the run, the coefficients and the simulator."""
    values = {k: round(v, 9) for k, v in dataclasses.asdict(coefficients).items()
              if k not in CLIENT}
    text = json.dumps([_jsonable(row), values, list(load), sim_fingerprint()],
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _jsonable(row: dict) -> dict:
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}


@lru_cache(maxsize=1)
def sim_fingerprint() -> str:
    """A hash of the simulator's code and catalogs (profiles aside: a fit sets those), so a
    cached point is used only by the simulator that made it."""
    digest = hashlib.sha256()
    for path in sorted(_SIM_PACKAGE.rglob("*")):
        if path.is_file() and "profiles" not in path.parts and path.suffix in (
                ".py", ".yaml", ".json", ".csv"):
            digest.update(str(path.relative_to(_SIM_PACKAGE)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


# ---- one simulation (runs in a worker) ------------------------------------------------------

_DEPLOYMENTS: dict[tuple, tuple] = {}


def simulate_point(task: tuple) -> dict:
    """Engine-side stage means of one run under one coefficient set (client costs zero)."""
    from sim.engine.operator_latency_model import OperatorLatencyModel
    from sim.fleet.simulation import simulate

    _, row, values, load = task
    deployment, workload, stages = _deployment(row, tuple(load))
    coefficients = OperatorCoefficients(**(values | {c: 0.0 for c in CLIENT}))
    old = deployment.setup.latency
    latency = OperatorLatencyModel(
        deployment.model, deployment.gpu, coefficients,
        tensor_parallel=old.tensor_parallel, weight_dtype=old.weight_dtype,
        kv_bytes_per_token_per_gpu=old.kv_bytes_per_token_per_gpu,
        async_scheduling=old.async_scheduling, cuda_graph_sizes=old.cuda_graph_sizes)
    setup = dataclasses.replace(deployment.setup, latency=latency)
    records = simulate(setup, workload).records
    return {str(k): v for k, v in stage_means(records, stages).items()}


def _deployment(row: dict, load: tuple[float, int]) -> tuple:
    key = (row["run_id"], load)
    if key not in _DEPLOYMENTS:
        from sim.config.deployment import resolve
        from sim.runner.pool_run import workload_source
        from sim.config.scenario import parse_scenario

        spec = scenario_for(row, profile="trained", stage_seconds=load[0],
                            stage_requests=load[1])
        scenario = parse_scenario(spec)
        _DEPLOYMENTS[key] = (resolve(scenario), workload_source(scenario),
                             spec["workload"]["stages"])
    return _DEPLOYMENTS[key]


def training_data(runs: Sequence[DeploymentRun]) -> dict:
    """What a profile trained on these runs has seen: its models, GPUs and TP degrees."""
    return {"models": sorted({r.model for r in runs}),
            "gpus": sorted({str(r.row["gpu"]) for r in runs}),
            "tensor_parallel": sorted({int(r.row["tensor_parallel"]) for r in runs})}


def start_coefficients(profile: str | None = None) -> tuple[OperatorCoefficients, ...]:
    """The built-in starting points, or a per-operator profile's coefficients."""
    if profile is None:
        return STARTS
    start = load_profile(profile)
    if start.form != "operators":
        raise CalibrationError(f"--start {profile}: a run fit starts from a per-operator "
                               f"profile (form: operators); {start.name!r} is a {start.form}")
    return (start.resolve(),)
