"""Whether the fleet kept up with the load it was offered, and how long it lagged behind.

A fleet that keeps up has only the latest arrivals waiting when the last request arrives; an
overloaded one falls further behind with every second, so the share of admitted requests still
waiting for their first step at that moment (the *backlog*) approaches 1 − its throughput over
the offered rate. Above ``MAX_BACKLOG_SHARE`` the run is called overloaded: its latencies grow
with the window's length and say nothing about the load, and it is billed until its queue
drains (``sim.results.cost``). The *drain* is the time from the last arrival to the last reply:
lag, reported, not a figure of the load.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

MAX_BACKLOG_SHARE = 0.1  # of the admitted requests, still waiting to start at the last arrival


def backlog_share(records: pd.DataFrame) -> float:
    """The share of the admitted requests still waiting for their first step when the last
    of them arrives. (Rejected requests are counted apart, as rejections.)"""
    admitted = records[records["status"] != "rejected"]
    if admitted.empty:
        return 0.0
    return _waiting(admitted, admitted["arrival_s"].max()) / len(admitted)


def backlog_share_of_file(path: str) -> float:
    """``backlog_share`` of a streamed run's records file, read one row group (one chunk of
    records) at a time, twice: memory holds a chunk, not the run."""
    records = pq.ParquetFile(path)
    columns = ["status", "arrival_s", "first_scheduled_s"]

    def admitted_chunks():
        for group in range(records.num_row_groups):
            frame = records.read_row_group(group, columns=columns).to_pandas()
            yield frame[frame["status"] != "rejected"]

    last, admitted = -np.inf, 0
    for frame in admitted_chunks():
        admitted += len(frame)
        if len(frame):
            last = max(last, float(frame["arrival_s"].max()))
    if admitted == 0:
        return 0.0
    return sum(_waiting(frame, last) for frame in admitted_chunks()) / admitted


def _waiting(admitted: pd.DataFrame, last_arrival_s: float) -> int:
    """Requests that arrived before the last one and had not started when it arrived (the
    last one itself has not started either, but that is no backlog: it just came)."""
    started = admitted["first_scheduled_s"]
    before = admitted["arrival_s"] < last_arrival_s
    return int((before & (started.isna() | (started > last_arrival_s))).sum())


def saturation_summary(backlog: float, first_arrival_s: float, last_arrival_s: float,
                       makespan_s: float) -> dict:
    """The summary's ``saturation`` entry. ``kept_up`` is None when every request arrived at
    once (a batch job: there is no rate to keep up with)."""
    at_once = not last_arrival_s > first_arrival_s
    return {
        "kept_up": None if at_once else backlog <= MAX_BACKLOG_SHARE,
        "backlog_share": backlog,
        "max_backlog_share": MAX_BACKLOG_SHARE,
        "last_arrival_s": last_arrival_s,
        "drain_s": max(makespan_s - last_arrival_s, 0.0),
    }
