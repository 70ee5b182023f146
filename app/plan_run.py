"""A plan run behind the Plan page: cached on its inputs, with a progress bar while it runs.

The cache key is the planned scenario's YAML text, the candidates as plain tuples and the
seeds: all hashable, and a plan is a deterministic function of them, so revisiting a plan
already made is instant and tells no user anything they did not type in.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import streamlit as st

from sim.planning.plan import Candidate, CandidatePlan

from app.plan_view import run_plan

CandidateKey = tuple[str, str, int, int | None]


@dataclass(frozen=True)
class PlanOutcome:
    """A finished plan and what it was made from."""

    scenario_yaml: str
    space: tuple[CandidateKey, ...]
    seeds: tuple[int, ...]
    plans: tuple[CandidatePlan, ...]
    wall_s: float

    @property
    def simulations(self) -> int:
        return sum(p.simulations for p in self.plans)


def candidate_keys(space: tuple[Candidate, ...]) -> tuple[CandidateKey, ...]:
    return tuple((c.gpu, c.weight_dtype, c.tensor_parallel, c.max_num_seqs) for c in space)


@st.cache_data(max_entries=32, show_spinner=False)
def cached_plan(scenario_yaml: str, space: tuple[CandidateKey, ...],
                seeds: tuple[int, ...]) -> PlanOutcome:
    """Plan ``scenario_yaml`` over ``space``. The progress bar is made here, not by the
    caller, because the cache replays what a cached function drew; it is emptied at the end,
    so a replay draws nothing. Raises UserError (ScenarioError) for an unplannable scenario."""
    bar = st.progress(0.0, text=f"Planning {len(space)} candidates…")

    def progress(done: int, total: int) -> None:
        bar.progress(done / total, text=f"Planned {done} of {total} candidates…")

    start = time.perf_counter()
    try:
        plans = run_plan(scenario_yaml, [Candidate(*key) for key in space], seeds, progress)
    finally:
        bar.empty()
    return PlanOutcome(scenario_yaml, space, seeds, tuple(plans), time.perf_counter() - start)
