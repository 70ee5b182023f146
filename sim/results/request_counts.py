"""A run's request counts: what arrived and what became of it, the same for a run kept in
memory and a streamed one."""

from __future__ import annotations

from sim.fleet.simulation import SimulationResult


def request_counts(result: SimulationResult, arrived: int, completed: int,
                   rejected: int) -> dict:
    """The summary's ``requests`` entry: what arrived and what became of it."""
    return {
        "arrived": arrived,
        "completed": completed,
        "rejected": rejected,
        "rejected_reasons": dict(result.rejected_reasons),
        "truncated_outputs": result.truncated_outputs,
        "capped_by_max_tokens": result.capped_outputs,
        "output_tokens_saved": result.output_tokens_saved,
    }
