"""Replaying a trace: its validated chunks become workload chunks for the engine.

The trace streams: each chunk of the file is read, validated, transformed and handed to the
engine in turn, so a trace of tens of millions of rows never sits in memory whole.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa

from sim.engine.errors import ScenarioError
from sim.workload.workload import Workload
from sim.workload.workload_spec import TraceSpec
from traces.errors import TraceError
from traces.trace import Trace, open_trace


class TraceReplay:
    """Iterates the workload chunks of a trace; afterwards ``summary()`` says what was read."""

    def __init__(self, spec: TraceSpec, *, seed: int, num_requests: int | None = None,
                 max_tokens: int | None = None) -> None:
        self.spec = spec
        self.seed = seed
        self.num_requests = num_requests
        self.max_tokens = max_tokens or 0
        try:
            self.trace: Trace = open_trace(spec.path, spec.format, on_bad_rows=spec.on_bad_rows,
                                           options=dict(spec.columns or {}))
        except TraceError as exc:
            raise ScenarioError(f"workload.trace: {exc}") from None
        self.transform_stats = None  # a traces.transforms.TransformStats once transforms run
        self.requests = 0
        self.capped = False  # reading stopped at num_requests with more of the trace left
        self._session_numbers: dict[str, int] = {}  # session id -> number, in order of first turn

    def __iter__(self) -> Iterator[Workload]:
        chunks = self.trace.chunks()
        self._session_numbers = {}  # every pass (one per pool of a fleet) numbers them alike
        options = self.spec.transforms()
        if options:
            from traces.transforms import TransformStats, transform

            self.transform_stats = TransformStats()
            chunks = transform(chunks, seed=self.seed, stats=self.transform_stats, **options)
        left = self.num_requests
        for table in chunks:
            if left is not None:
                if left <= 0:
                    if table.num_rows == 0:
                        continue  # (an empty chunk past the count is no request left out)
                    self.capped = True
                    return
                self.capped = table.num_rows > left
                table = table.slice(0, left)
                left -= table.num_rows
            self.requests += table.num_rows
            yield self._workload(table)

    def _workload(self, table: pa.Table) -> Workload:
        n = table.num_rows
        prefix_ids = None
        if "prefix_ids" in table.column_names and self.trace.prefix_block_tokens:
            prefix_ids = np.empty(n, dtype=object)
            prefix_ids[:] = [ids or [] for ids in table["prefix_ids"].to_pylist()]
        return Workload(
            arrival_s=table["arrival_s"].to_numpy(),
            input_tokens=table["input_tokens"].to_numpy(),
            output_tokens=table["output_tokens"].to_numpy(),
            prefix_key=np.zeros(n, dtype=np.int64),
            prefix_tokens=np.zeros(n, dtype=np.int64),
            max_tokens=self._max_tokens(table),
            trace_ids=np.asarray(table["request_id"].to_pylist(), dtype=object),
            prefix_ids=prefix_ids,
            prefix_id_tokens=self.trace.prefix_block_tokens,
            endpoints=(np.asarray(table["endpoint"].to_pylist(), dtype=object)
                       if "endpoint" in table.column_names else None),
            **self._conversations(table),
        )

    def _conversations(self, table: pa.Table) -> dict[str, np.ndarray]:
        """Per row its session's number and its turn (-1: not a turn), when the trace numbers
        its sessions' turns; the intake chains each turn to the one before."""
        if "turn" not in table.column_names or "session_id" not in table.column_names:
            return {}
        numbers = self._session_numbers
        turns = table["turn"].to_pylist()
        sessions = [numbers.setdefault(sid, len(numbers)) if sid is not None and turn else -1
                    for sid, turn in zip(table["session_id"].to_pylist(), turns)]
        return {"sessions": np.asarray(sessions, dtype=np.int64),
                "turns": np.asarray([turn or -1 for turn in turns], dtype=np.int64)}

    def _max_tokens(self, table: pa.Table) -> np.ndarray:
        """Each request's max_tokens: the workload's cap and its endpoint's, the lower one.

        The endpoint caps have already cut the replies as the trace streamed; the engine still
        needs them to know what a request may come to hold (a contiguous KV reservation, a
        gateway grouping by max_tokens).
        """
        n = table.num_rows
        caps = np.full(n, self.max_tokens, dtype=np.int64)
        by_endpoint = self.spec.max_tokens_by_endpoint
        if not by_endpoint or "endpoint" not in table.column_names:
            return caps
        default = by_endpoint.get("*", 0)
        endpoint_caps = np.fromiter((by_endpoint.get(e, default) if e is not None else default
                                     for e in table["endpoint"].to_pylist()), np.int64, n)
        both = (caps > 0) & (endpoint_caps > 0)
        return np.where(both, np.minimum(caps, endpoint_caps), np.maximum(caps, endpoint_caps))

    def summary(self) -> dict:
        out = {
            "path": str(self.spec.path),
            "format": self.trace.format,
            "requests_replayed": self.requests,
            # the count stopped the replay before the trace (or its window) ended
            "capped_at_num_requests": self.num_requests if self.capped else None,
            "rows": self.trace.report.summary(),
        }
        if self.transform_stats is not None:
            out["transforms"] = self.transform_stats.summary()
        return out
