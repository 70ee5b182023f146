"""Trace transforms: exact results on small tables, invariance to chunking, clear errors."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from traces.errors import TraceError
from traces.schema import COLUMNS
from traces.transforms import COPY_SPACING_S, TransformStats, transform


def table(arrival_s, output_tokens=None, **optional) -> pa.Table:
    """A normalized chunk: request i has id "i", line i + 2 and 100 input tokens."""
    n = len(arrival_s)
    columns = {
        "arrival_s": arrival_s,
        "input_tokens": [100] * n,
        "output_tokens": output_tokens or [10] * n,
        "request_id": [str(i) for i in range(n)],
        "line": [i + 2 for i in range(n)],
        **optional,
    }
    names = [c for c in COLUMNS if c in columns]
    return pa.table({c: pa.array(columns[c], COLUMNS[c]) for c in names})


def run(chunks, **options) -> pa.Table:
    out = list(transform(chunks, **options))
    return pa.concat_tables(out) if out else table([]).slice(0, 0)


def split(whole: pa.Table, cuts: list[int]) -> list[pa.Table]:
    edges = [0, *sorted(set(cuts)), whole.num_rows]
    return [whole.slice(a, b - a) for a, b in zip(edges, edges[1:])]


def test_window_is_half_open_and_rebased_to_its_start() -> None:
    out = run([table([0.0, 5.0, 10.0, 12.5, 20.0, 30.0])], start_s=10, end_s=20)
    assert out["arrival_s"].to_pylist() == [0.0, 2.5]
    assert out["request_id"].to_pylist() == ["2", "3"]


def test_time_scale_multiplies_the_gaps() -> None:
    out = run([table([10.0, 11.0, 13.0, 17.0])], start_s=10, time_scale=0.5)
    assert out["arrival_s"].to_pylist() == [0.0, 0.5, 1.5, 3.5]


def test_reading_stops_at_the_first_chunk_past_the_window() -> None:
    def chunks():
        yield table([0.0, 1.0])
        yield table([2.0, 3.0])
        raise AssertionError("read past end_s")

    stats = TransformStats()
    out = run(chunks(), end_s=2.5, stats=stats)
    assert out.num_rows == 3 and stats.rows_read == 4 and stats.rows_in_window == 3


def test_whole_rate_scale_repeats_each_request_with_tiny_ordered_offsets() -> None:
    stats = TransformStats()
    out = run([table([0.0, 1.0, 1.0])], rate_scale=3, stats=stats)
    assert out["request_id"].to_pylist() == ["0", "0#1", "0#2", "1", "1#1", "1#2",
                                             "2", "2#1", "2#2"]
    arrival = np.array(out["arrival_s"].to_pylist())
    assert np.all(np.diff(arrival) >= 0)
    assert arrival[:3] == pytest.approx([0.0, COPY_SPACING_S, 2 * COPY_SPACING_S])
    # the third request arrived with the second: its original waits behind the second's copies
    assert arrival[6] == pytest.approx(1.0 + 2 * COPY_SPACING_S)
    assert stats.copies_added == 6 and stats.rows_written == 9


def test_copies_stay_in_order_across_chunks() -> None:
    out = run([table([0.0, 1.0]), table([1.0, 2.0])], rate_scale=2)
    arrival = np.array(out["arrival_s"].to_pylist())
    assert len(arrival) == 8 and np.all(np.diff(arrival) >= 0)
    assert arrival.max() - 2.0 < 3 * COPY_SPACING_S


def test_copies_share_prefixes_among_themselves_never_with_their_originals() -> None:
    chunk = table([0.0, 1.0], prefix_ids=[[1, 2], [1, 3]], session_id=["a", "a"])
    out = run([chunk], rate_scale=2)
    ids = out["prefix_ids"].to_pylist()
    assert ids[0] == [1, 2] and ids[2] == [1, 3]  # originals unchanged
    assert ids[1][0] == ids[3][0]  # the copies keep their shared first block
    assert not set(ids[1]) & {1, 2, 3} and ids[1][1] != ids[3][1]
    assert out["session_id"].to_pylist() == ["a", "a#1", "a", "a#1"]


def test_fractional_rate_scale_keeps_about_that_share() -> None:
    arrival = np.arange(20_000, dtype=float)
    kept = run([table(arrival.tolist())], rate_scale=0.3, seed=5).num_rows
    assert abs(kept - 6_000) < 4 * np.sqrt(20_000 * 0.3 * 0.7)
    grown = run([table(arrival.tolist())], rate_scale=1.25, seed=5).num_rows
    assert abs(grown - 25_000) < 4 * np.sqrt(20_000 * 0.25 * 0.75)


def test_sample_keeps_about_that_fraction_and_the_seed_decides_which() -> None:
    chunk = table(np.arange(10_000, dtype=float).tolist())
    first = run([chunk], sample=0.1, seed=1)["request_id"].to_pylist()
    assert abs(len(first) - 1_000) < 4 * np.sqrt(10_000 * 0.1 * 0.9)
    assert run([chunk], sample=0.1, seed=1)["request_id"].to_pylist() == first
    assert run([chunk], sample=0.1, seed=2)["request_id"].to_pylist() != first


def test_widening_the_window_keeps_the_same_requests_where_they_overlap() -> None:
    chunk = table(np.arange(1_000, dtype=float).tolist())
    short = run([chunk], end_s=400, sample=0.5, rate_scale=1.5, seed=3)
    long = run([chunk], end_s=800, sample=0.5, rate_scale=1.5, seed=3)
    assert long.slice(0, short.num_rows).equals(short)


@settings(max_examples=40, deadline=None)
@given(cuts=st.lists(st.integers(1, 199), max_size=6), seed=st.integers(0, 2**32))
def test_chunk_boundaries_never_change_the_result(cuts: list[int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 200
    whole = table(
        np.sort(rng.uniform(0, 100, n)).round(1).tolist(),
        output_tokens=rng.integers(1, 500, n).tolist(),
        session_id=rng.choice(["a", "b", "c", None], n).tolist(),
        endpoint=rng.choice(["chat", "code"], n).tolist(),
        prefix_ids=[[int(i), int(i) + 1] for i in rng.integers(0, 5, n)],
    )
    options = dict(start_s=5, end_s=90, time_scale=0.7, rate_scale=1.6, sample=0.8,
                   endpoints=["chat", "code"], max_tokens_by_endpoint={"chat": 100, "*": 300},
                   session_gap_s=4.0, seed=seed)
    one, many = TransformStats(), TransformStats()
    expected = run([whole], **options, stats=one)
    got = run(split(whole, cuts), **options, stats=many)
    assert got.equals(expected)
    many.rows_read = one.rows_read  # reading stops at the first chunk past end_s
    assert one == many


def test_models_and_endpoints_filter_rows() -> None:
    chunk = table([0.0, 1.0, 2.0, 3.0], model=["a", "b", None, "a"],
                  endpoint=["chat", "chat", "code", "code"])
    assert run([chunk], models=["a"])["request_id"].to_pylist() == ["0", "3"]
    assert run([chunk], models=["a", "b"], endpoints=["code"])["request_id"].to_pylist() == ["3"]


def test_filtering_on_a_missing_column_names_the_option_and_the_fix() -> None:
    with pytest.raises(TraceError, match=r"models: the trace has no 'model' column.*remove models"):
        run([table([0.0])], models=["llama"])
    with pytest.raises(TraceError, match="endpoints: the trace has no 'endpoint' column"):
        run([table([0.0])], endpoints=["chat"])


def test_output_caps_per_endpoint_are_counted() -> None:
    chunk = table([0.0, 1.0, 2.0, 3.0], output_tokens=[50, 500, 500, 2000],
                  endpoint=["chat", "chat", "code", None])
    stats = TransformStats()
    out = run([chunk], max_tokens_by_endpoint={"chat": 100, "*": 1000}, stats=stats)
    assert out["output_tokens"].to_pylist() == [50, 100, 500, 1000]
    assert (stats.truncated_requests, stats.output_tokens_saved) == (2, 400 + 1000)


def test_capping_copies_counts_each_copy() -> None:
    stats = TransformStats()
    run([table([0.0], output_tokens=[30])], rate_scale=2, max_tokens_by_endpoint={"*": 10},
        stats=stats)
    assert (stats.truncated_requests, stats.output_tokens_saved) == (2, 40)


def test_caps_by_name_need_an_endpoint_column() -> None:
    with pytest.raises(TraceError, match=r"no 'endpoint' column; use '\*'"):
        run([table([0.0])], max_tokens_by_endpoint={"chat": 10})
    out = run([table([0.0], output_tokens=[30])], max_tokens_by_endpoint={"*": 10})
    assert out["output_tokens"].to_pylist() == [10]


def test_sessions_without_ids_split_the_stream_at_idle_gaps() -> None:
    stats = TransformStats()
    out = run([table([0.0, 1.0, 5.0]), table([5.5, 20.0])], session_gap_s=3, stats=stats)
    assert out["session_id"].to_pylist() == [
        "session-0", "session-0", "session-1", "session-1", "session-2"
    ]
    assert stats.sessions == 3


def test_sessions_with_ids_split_each_session_across_chunks() -> None:
    first = table([0.0, 1.0, 2.0], session_id=["a", "b", "a"])
    second = table([10.0, 11.0, 12.0], session_id=["a", "b", None])
    out = run([first, second], session_gap_s=8.5)
    # a: 2 -> 10 is within the gap; b: 1 -> 11 is not
    assert out["session_id"].to_pylist() == ["a", "b", "a", "a", "b/1", "session-0"]


def test_session_gaps_are_measured_in_trace_time_before_time_scale() -> None:
    out = run([table([0.0, 10.0])], session_gap_s=6, time_scale=0.5)
    assert out["arrival_s"].to_pylist() == [0.0, 5.0]
    assert out["session_id"].to_pylist() == ["session-0", "session-1"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"time_scale": 0}, r"time_scale must be a number > 0 \(0.5 replays"),
        ({"time_scale": "fast"}, "time_scale must be a number"),
        ({"rate_scale": -1}, "rate_scale must be a number > 0"),
        ({"sample": 0}, r"sample must be a fraction in \(0, 1\]"),
        ({"sample": 1.5}, "sample must be a fraction"),
        ({"start_s": -1}, "start_s must be a number >= 0"),
        ({"start_s": 10, "end_s": 5}, r"end_s \(5\) must be greater than start_s \(10\)"),
        ({"end_s": float("inf")}, "end_s must be a number"),
        ({"models": "llama"}, "models must be a list of names"),
        ({"endpoints": []}, "endpoints must be a non-empty list"),
        ({"max_tokens_by_endpoint": {"chat": 0}}, r"max_tokens_by_endpoint\['chat'\] must be"),
        ({"max_tokens_by_endpoint": [1]}, "max_tokens_by_endpoint must map endpoints"),
        ({"session_gap_s": 0}, "session_gap_s must be a number > 0"),
        ({"seed": -3}, "seed must be a whole number >= 0"),
        ({"seed": True}, "seed must be a whole number"),
    ],
)
def test_bad_options_are_refused_before_reading(options: dict, message: str) -> None:
    def chunks():
        raise AssertionError("read before checking the options")
        yield

    with pytest.raises(TraceError, match=message):
        transform(chunks(), **options)


def test_no_options_passes_chunks_through_unchanged() -> None:
    chunk = table([0.0, 1.5], session_id=["x", None])
    assert run([chunk]).equals(chunk)


def test_on_a_bundled_trace_an_hour_at_double_speed_fits_in_half_an_hour() -> None:
    from traces.trace import open_trace

    stats = TransformStats()
    trace = open_trace("azure-conv-2023", chunk_bytes=64 << 10)
    out = run(trace.chunks(), start_s=600, end_s=1200, time_scale=0.5, stats=stats)
    arrival = out["arrival_s"].to_numpy()
    assert out.num_rows == stats.rows_in_window > 2_000
    assert 0 <= arrival.min() and arrival.max() < 300
    assert stats.rows_read < 19_366  # stopped reading soon after the window
