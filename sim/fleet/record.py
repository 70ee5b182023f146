"""Immutable per-request results; a run's records become one DataFrame at the end."""

from __future__ import annotations

from typing import NamedTuple

import pandas as pd


class RequestRecord(NamedTuple):
    """What happened to one request. Times are simulated seconds from the start of the run.

    A rejected request (its prompt reaches ``max_model_len``, which never exceeds the KV cache)
    has ``status == "rejected"`` and NaN times.
    """

    rid: int
    replica: int
    status: str  # "completed" | "rejected"
    arrival_s: float
    first_scheduled_s: float
    first_token_s: float
    finish_s: float
    prompt_tokens: int
    output_tokens: int
    cached_tokens: int
    preemptions: int
    trace_id: str  # the request's id in its trace (its index for generated workloads)
    endpoint: str | None = None  # its endpoint or request class, when the workload has them
    session: int = -1  # its conversation's number in the run (first turns in order); -1: none
    turn: int = -1  # its turn in that conversation, from 1; -1 outside a conversation


RECORD_COLUMNS = list(RequestRecord._fields)


def records_frame(records: list[RequestRecord]) -> pd.DataFrame:
    """One DataFrame, one row per request, ordered by request id, with derived latencies."""
    frame = pd.DataFrame.from_records(records, columns=RECORD_COLUMNS)
    frame = frame.astype({"session": "int64", "turn": "int64"})  # also when there are no rows
    frame = frame.sort_values("rid", kind="stable").reset_index(drop=True)
    frame["ttft_s"] = frame["first_token_s"] - frame["arrival_s"]
    frame["e2e_s"] = frame["finish_s"] - frame["arrival_s"]
    frame["queue_s"] = frame["first_scheduled_s"] - frame["arrival_s"]
    decode_tokens = (frame["output_tokens"] - 1).where(frame["output_tokens"] > 1)
    frame["tpot_s"] = (frame["finish_s"] - frame["first_token_s"]) / decode_tokens
    return frame
