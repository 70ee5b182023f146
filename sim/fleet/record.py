"""Immutable per-request results; a run's records become one DataFrame at the end."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import pandas as pd

if TYPE_CHECKING:
    from sim.fleet.record_stream import RecordStream


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
CHUNK_RECORDS = 32_768


class RecordLog:
    """A run's records as they are made. Every ``CHUNK_RECORDS`` of them become a DataFrame
    chunk, so a long run holds columns rather than a tuple of Python objects per request.
    With a ``stream`` (``sim.fleet.record_stream``) the chunks are written out, not kept."""

    __slots__ = ("_pending", "_chunks", "_stream")

    def __init__(self, stream: RecordStream | None = None) -> None:
        self._pending: list[RequestRecord] = []
        self._chunks: list[pd.DataFrame] = []
        self._stream = stream

    def append(self, record: RequestRecord) -> None:
        pending = self._pending
        pending.append(record)
        if len(pending) >= CHUNK_RECORDS:
            if self._stream is None:
                self._chunks.append(_raw_frame(pending))
            else:
                self._stream.write(_derived(_raw_frame(pending)))
            self._pending = []

    def close_stream(self) -> None:
        """A streamed log's last records written, and its file closed."""
        assert self._stream is not None, "only a streamed record log has a file"
        if self._pending:
            self._stream.write(_derived(_raw_frame(self._pending)))
            self._pending = []
        self._stream.close()

    def frame(self) -> pd.DataFrame:
        """Every record so far: see ``records_frame``."""
        assert self._stream is None, "a streamed record log keeps no records"
        chunks = list(self._chunks)
        if self._pending or not chunks:  # (an empty frame's columns are untyped: no concat)
            chunks.append(_raw_frame(self._pending))
        raw = chunks[0] if len(chunks) == 1 else pd.concat(chunks, ignore_index=True)
        return _derived(raw)


def records_frame(records: list[RequestRecord]) -> pd.DataFrame:
    """One DataFrame, one row per request, ordered by request id, with derived latencies."""
    return _derived(_raw_frame(records))


def _raw_frame(records: list[RequestRecord]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(records, columns=RECORD_COLUMNS)
    return frame.astype({"session": "int64", "turn": "int64"})  # also when there are no rows


def _derived(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.sort_values("rid", kind="stable").reset_index(drop=True)
    frame["ttft_s"] = frame["first_token_s"] - frame["arrival_s"]
    frame["e2e_s"] = frame["finish_s"] - frame["arrival_s"]
    frame["queue_s"] = frame["first_scheduled_s"] - frame["arrival_s"]
    decode_tokens = (frame["output_tokens"] - 1).where(frame["output_tokens"] > 1)
    frame["tpot_s"] = (frame["finish_s"] - frame["first_token_s"]) / decode_tokens
    return frame
