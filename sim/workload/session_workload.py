"""Multi-turn conversations drawn from a `SessionsSpec`, before the simulation runs.

Everything random is drawn here, up front, so the same spec and seed give the same
conversations whatever the fleet does; what the simulation decides is only *when* each later
turn is sent (its previous reply's end plus the think time) and so which request number it
gets. Per turn ``t`` of conversation ``s`` (flattened, conversation after conversation)::

    added[t]   tokens the user adds: first_turn_tokens on turn 1, new_tokens after
    reply[t]   tokens of the reply (before the workload's max_tokens and the context limit)
    think[t]   seconds between this reply's end and the next turn (unused on the last turn)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.workload.arrival_process import arrival_times, staged_arrival_times
from sim.workload.length_dist import sample_lengths
from sim.workload.workload_spec import SecondsSpec, WorkloadSpec


@dataclass(frozen=True, eq=False)
class SessionWorkload:
    """Conversations as columns: per conversation its start and turns, per turn its draws."""

    start_s: np.ndarray  # float64, sorted: when each conversation sends its first turn
    turns: np.ndarray  # int64 >= 1
    first_turn: np.ndarray  # int64: where each conversation's turns start in the turn columns
    added: np.ndarray  # int64 per turn (see the module docstring)
    reply: np.ndarray
    think_s: np.ndarray  # float64 per turn
    max_tokens: int = 0  # every reply's cap (0 = none)

    def __post_init__(self) -> None:
        if not len(self.start_s) == len(self.turns) == len(self.first_turn) or not (
                len(self.added) == len(self.reply) == len(self.think_s) == int(self.turns.sum())):
            raise ValueError("session columns disagree in length")

    @property
    def num_sessions(self) -> int:
        return len(self.start_s)

    def __len__(self) -> int:
        """Requests in all: every turn of every conversation."""
        return len(self.added)


def generate_sessions(spec: WorkloadSpec, rng: np.random.Generator) -> SessionWorkload:
    """Draw the conversations ``spec`` describes (``spec.sessions`` must be set).

    Arrivals start conversations: a duration (``duration_s`` or stages) bounds the starts, and
    ``num_requests`` caps the turns in all: conversations are kept in start order while their
    turns fit, and the last one kept may be cut short.
    """
    sessions = spec.sessions
    assert sessions is not None
    starts = _starts(spec, rng)
    turns = sample_lengths(sessions.turns, len(starts), rng, role="input")
    if spec.num_requests is not None:
        starts, turns = _cap_turns(starts, turns, spec.num_requests)
    total = int(turns.sum())
    added = sample_lengths(sessions.new_tokens, total, rng, role="input")
    firsts = sample_lengths(sessions.first_turn_tokens, len(starts), rng, role="input")
    first_turn = (np.cumsum(turns) - turns).astype(np.int64)
    added[first_turn] = firsts
    return SessionWorkload(
        start_s=np.asarray(starts, dtype=np.float64),
        turns=turns,
        first_turn=first_turn,
        added=added,
        reply=sample_lengths(sessions.reply_tokens, total, rng, role="output"),
        think_s=sample_seconds(sessions.think_time_s, total, rng),
        max_tokens=spec.max_tokens or 0,
    )


def sample_seconds(spec: SecondsSpec, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` durations (float64 seconds, >= 0, <= spec.max when given)."""
    if spec.dist == "fixed":
        values = np.full(n, spec.value, dtype=np.float64)
    elif spec.dist == "uniform":
        values = rng.uniform(spec.min, spec.max, size=n)
    elif spec.dist == "exponential":
        values = rng.exponential(spec.mean, size=n)
    else:  # lognormal whose mean is `mean`, as for lengths
        mu = np.log(spec.mean) - spec.sigma**2 / 2  # type: ignore[operator]
        values = rng.lognormal(mu, spec.sigma, size=n)
    return np.minimum(values, spec.max) if spec.max is not None else values


def _starts(spec: WorkloadSpec, rng: np.random.Generator) -> np.ndarray:
    """Conversation start times. With only num_requests, as many starts as requests are drawn
    (each conversation has at least one turn), and _cap_turns keeps the ones that fit."""
    if spec.stages is not None:
        return staged_arrival_times(spec.stages, rng, arrivals=spec.arrivals)
    assert spec.arrivals is not None  # WorkloadSpec guarantees arrivals when there are no stages
    if spec.duration_s is not None:
        return arrival_times(spec.arrivals, rng, duration_s=spec.duration_s)
    return arrival_times(spec.arrivals, rng, num_requests=spec.num_requests)


def _cap_turns(starts: np.ndarray, turns: np.ndarray,
               num_requests: int) -> tuple[np.ndarray, np.ndarray]:
    """The first conversations whose turns add up to at most ``num_requests`` (the last one
    cut short to fill the count exactly)."""
    before = np.cumsum(turns) - turns  # turns of the conversations before each
    keep = before < num_requests
    turns = np.minimum(turns[keep], num_requests - before[keep])
    return starts[keep], turns.astype(np.int64)
