"""One pool of identical replicas run on its requests: the workload drawn or streamed, the
checks a scenario must pass before it is simulated, and the outcome of a run."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
import numpy as np

from sim.config.deployment import Deployment
from sim.config.scenario import Scenario
from sim.engine.errors import ScenarioError
from sim.fleet.record_stream import RecordStream
from sim.fleet.simulation import SimulationResult, simulate
from sim.workload.session_workload import SessionWorkload, generate_sessions
from sim.workload.trace_workload import TraceReplay
from sim.workload.workload import Workload, generate_workload
from traces.errors import TraceError


@dataclass(frozen=True)
class RunOutcome:
    """A finished run: for a fleet, ``result`` merges its pools (records and steps carry a
    ``pool`` column) and ``deployments`` has one entry per pool, in the fleet's order."""

    scenario: Scenario
    deployments: tuple[Deployment, ...]
    workload: Workload | TraceReplay | SessionWorkload
    result: SimulationResult
    summary: dict

    @property
    def deployment(self) -> Deployment:
        """The first (for a one-pool scenario, the only) pool's deployment."""
        return self.deployments[0]


def workload_source(scenario: Scenario) -> Workload | TraceReplay | SessionWorkload:
    """The scenario's requests: drawn from its distributions, conversations whose turns the
    simulation sends, or a trace to stream."""
    spec = scenario.workload
    if spec.trace is not None:
        return TraceReplay(spec.trace, seed=scenario.seed, num_requests=spec.num_requests,
                           max_tokens=spec.max_tokens)
    rng = np.random.default_rng(scenario.seed)
    workload = generate_sessions(spec, rng) if spec.sessions else generate_workload(spec, rng)
    if len(workload) == 0:
        raise ScenarioError(
            "workload: the arrival process produced no requests (rate x duration is too small); "
            "raise workload.arrivals.rate_per_s or workload.duration_s, or give num_requests"
        )
    return workload


def simulate_pool(deployment: Deployment,
                  source: Workload | Iterable[Workload] | SessionWorkload,
                  progress: Callable[[int, int], None] | None = None,
                  stream: RecordStream | None = None) -> SimulationResult:
    """Simulate one pool on its requests (streaming its records to ``stream``, when given);
    a trace's bad rows become a ScenarioError."""
    if isinstance(source, SessionWorkload):
        _check_conversations_fit(deployment)
    if (isinstance(source, Workload) and not deployment.setup.limits.chunked_prefill
            and deployment.setup.batching is None):
        _check_prompts_fit_one_step(source, deployment)
    try:
        return simulate(deployment.setup, source, progress, stream)
    except TraceError as exc:
        raise ScenarioError(f"workload.trace: {exc}") from None


def check_replayed(source: Workload | TraceReplay | SessionWorkload) -> None:
    """A trace whose window, filters or sampling left no request has nothing to summarise."""
    if isinstance(source, TraceReplay) and source.requests == 0:
        raise ScenarioError(
            f"workload.trace: no requests to replay ({source.summary()}); widen the time "
            "window (start_s, end_s), loosen the model or endpoint filters, or raise sample")


def add_trace_summary(summary: dict, replay: TraceReplay) -> None:
    """What the trace replay read and transformed; caps applied while it streamed count as
    capped outputs too."""
    summary["trace"] = replay.summary()
    cuts = summary["trace"].get("transforms", {})
    summary["requests"]["capped_by_max_tokens"] += cuts.get("truncated_requests", 0)
    summary["requests"]["output_tokens_saved"] += cuts.get("output_tokens_saved", 0)


def _check_prompts_fit_one_step(workload: Workload, deployment: Deployment) -> None:
    budget = deployment.setup.limits.max_num_batched_tokens
    longest = int(workload.input_tokens.max()) if len(workload) else 0
    if longest > budget and longest < deployment.setup.max_model_len:
        raise ScenarioError(
            f"engine.chunked_prefill is false but the workload has a {longest}-token prompt "
            f"and max_num_batched_tokens is {budget}: such a prompt could never be scheduled; "
            "raise max_num_batched_tokens or enable chunked_prefill"
        )


def _check_conversations_fit(deployment: Deployment) -> None:
    """The longest conversation the sessions can draw must fit the engine's context: its last
    turn re-sends everything before it, so a conversation that outgrows max_model_len would have
    its later turns refused. (Exactly max_model_len tokens still fits: the last prompt is
    below the limit and the reply ends at it.)"""
    spec = deployment.scenario.workload
    assert spec.sessions is not None
    prompt, reply = spec.sessions.longest_turn(spec.max_tokens)
    limit = deployment.setup.max_model_len
    if prompt + reply > limit:
        raise ScenarioError(
            f"workload.sessions: the longest conversation reaches {prompt + reply:,} tokens "
            "(first_turn_tokens + (turns - 1) x (new_tokens + reply_tokens) + reply_tokens, "
            f"each at its maximum), beyond engine.max_model_len {limit:,}: lower turns, "
            "the token counts or their max, or raise engine.max_model_len"
        )
    limits = deployment.setup.limits
    if not limits.chunked_prefill and deployment.setup.batching is None and (
            prompt > limits.max_num_batched_tokens):
        raise ScenarioError(
            f"engine.chunked_prefill is false but a conversation's last prompt can reach "
            f"{prompt:,} tokens and max_num_batched_tokens is {limits.max_num_batched_tokens}: "
            "such a prompt could never be scheduled; raise max_num_batched_tokens, enable "
            "chunked_prefill or shorten the conversations"
        )
