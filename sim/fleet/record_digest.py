"""What a streamed run keeps of its request records: counts, sums and latency histograms,
folded in a chunk of records at a time (the records themselves go to a file).

The figures are those a summary computes from the full record table: counts, sums and means
exactly (up to float rounding), percentiles within 0.05 % (``sim.engine.log_histogram``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from sim.engine.log_histogram import LogHistogram

MAX_ENDPOINTS = 50  # beyond this many endpoints a split would drown the summary


@dataclass
class LatencyDigest:
    """Requests of one kind (all of them, or one endpoint's): volume and latency histograms."""

    arrived: int = 0
    completed: int = 0
    rejected: int = 0
    prompt_tokens: int = 0
    output_tokens: int = 0
    ttft: LogHistogram = field(default_factory=LogHistogram)
    tpot: LogHistogram = field(default_factory=LogHistogram)
    e2e: LogHistogram = field(default_factory=LogHistogram)
    queue: LogHistogram = field(default_factory=LogHistogram)

    def fold(self, records: pd.DataFrame) -> pd.DataFrame:
        """Add a chunk of derived records; returns its completed ones."""
        status = records["status"]
        completed = records[status == "completed"]
        self.arrived += len(records)
        self.completed += len(completed)
        self.rejected += int((status == "rejected").sum())
        self.prompt_tokens += int(completed["prompt_tokens"].sum())
        self.output_tokens += int(completed["output_tokens"].sum())
        self.ttft.add(completed["ttft_s"].to_numpy())
        self.tpot.add(completed["tpot_s"].to_numpy())
        self.e2e.add(completed["e2e_s"].to_numpy())
        self.queue.add(completed["queue_s"].to_numpy())
        return completed


class RecordDigest:
    """Counts, sums and histograms of a run's records, and how many met the per-request SLO
    (``ttft_slo_ms``, ``tpot_slo_ms``: None when not set), for goodput."""

    def __init__(self, ttft_slo_ms: float | None, tpot_slo_ms: float | None) -> None:
        self.ttft_slo_ms, self.tpot_slo_ms = ttft_slo_ms, tpot_slo_ms
        self.all = LatencyDigest()
        self.meeting_slo = 0
        self.makespan_s = 0.0  # the last finish
        self.first_arrival_s = float("inf")
        self.last_arrival_s = float("-inf")
        self.endpoints: dict[str, LatencyDigest] | None = {}  # None once too many to split
        self.any_endpoint = False
        self.turn_tokens: dict[int, list[int]] = {}  # turn -> [cached, prompt] of completed

    def fold(self, records: pd.DataFrame) -> None:
        """Add a chunk of derived records (``sim.fleet.record``'s columns)."""
        if len(records) == 0:
            return
        completed = self.all.fold(records)
        arrival = records["arrival_s"].to_numpy()
        self.first_arrival_s = min(self.first_arrival_s, float(arrival.min()))
        self.last_arrival_s = max(self.last_arrival_s, float(arrival.max()))
        finish = records["finish_s"].to_numpy()
        if not np.isnan(finish).all():
            self.makespan_s = max(self.makespan_s, float(np.nanmax(finish)))
        self.meeting_slo += self._meeting_slo(completed)
        self._fold_endpoints(records)
        turns = completed[completed["turn"] >= 1]
        if len(turns):
            sums = turns.groupby("turn")[["cached_tokens", "prompt_tokens"]].sum()
            for turn, row in sums.iterrows():
                cached_prompt = self.turn_tokens.setdefault(int(turn), [0, 0])
                cached_prompt[0] += int(row.cached_tokens)
                cached_prompt[1] += int(row.prompt_tokens)

    def _meeting_slo(self, completed: pd.DataFrame) -> int:
        ok = np.ones(len(completed), dtype=bool)
        if self.ttft_slo_ms is not None:
            ok &= completed["ttft_s"].to_numpy() * 1e3 <= self.ttft_slo_ms
        if self.tpot_slo_ms is not None:
            tpot = completed["tpot_s"].to_numpy() * 1e3
            ok &= np.isnan(tpot) | (tpot <= self.tpot_slo_ms)  # one-token replies have no TPOT
        return int(ok.sum())

    def _fold_endpoints(self, records: pd.DataFrame) -> None:
        endpoint = records["endpoint"]
        self.any_endpoint |= bool(endpoint.notna().any())
        if self.endpoints is None:
            return
        for name, group in records.groupby(endpoint.fillna("(none)"), sort=False):
            if name not in self.endpoints and len(self.endpoints) >= MAX_ENDPOINTS:
                self.endpoints = None
                return
            self.endpoints.setdefault(str(name), LatencyDigest()).fold(group)
