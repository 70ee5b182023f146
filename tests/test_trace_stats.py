"""Trace statistics: exact figures on small tables, the Mooncake paper's reuse ratios, reports."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from traces.errors import TraceError
from traces.schema import COLUMNS
from traces.stats import format_stats, trace_stats
from traces.trace import open_trace


def table(arrival_s, input_tokens=None, output_tokens=None, **optional) -> pa.Table:
    n = len(arrival_s)
    columns = {
        "arrival_s": arrival_s,
        "input_tokens": input_tokens or [100] * n,
        "output_tokens": output_tokens or [10] * n,
        "request_id": [str(i) for i in range(n)],
        "line": list(range(2, n + 2)),
        **optional,
    }
    return pa.table({c: pa.array(columns[c], COLUMNS[c]) for c in COLUMNS if c in columns})


def test_counts_span_rate_and_buckets() -> None:
    stats = trace_stats([table([0.0, 10.0, 70.0]), table([130.0, 150.0])], bucket_s=60)
    assert stats["rows"] == 5 and stats["span_s"] == 150.0
    assert stats["mean_rate_per_s"] == pytest.approx(5 / 150)
    assert stats["rate_over_time"]["counts"] == [2, 1, 2]
    assert stats["rate_over_time"]["peak_per_s"] == pytest.approx(2 / 60)
    assert stats["prefix"] is None and stats["sessions"] is None and stats["models"] is None


def test_evenly_spaced_arrivals_have_zero_burstiness() -> None:
    stats = trace_stats([table([0.0, 2.0, 4.0]), table([6.0, 8.0])])
    assert stats["inter_arrival_s"]["mean"] == pytest.approx(2.0)
    assert stats["burstiness_cv"] == pytest.approx(0.0)


def test_burstiness_of_poisson_arrivals_is_near_one_whatever_the_chunking() -> None:
    arrival = np.cumsum(np.random.default_rng(0).exponential(0.2, 50_000))
    whole = table(arrival.tolist())
    one = trace_stats([whole])
    many = trace_stats([whole.slice(i, 7_000) for i in range(0, 50_000, 7_000)])
    assert one["burstiness_cv"] == pytest.approx(1.0, abs=0.02)
    assert many["burstiness_cv"] == pytest.approx(one["burstiness_cv"], rel=1e-9)
    assert many["input_tokens"] == one["input_tokens"]


def test_length_percentiles() -> None:
    inputs = list(range(1, 101))
    stats = trace_stats([table([float(i) for i in range(100)], input_tokens=inputs)])
    figures = stats["input_tokens"]
    assert figures["mean"] == 50.5 and figures["p50"] == 50.5
    assert figures["p90"] == pytest.approx(90.1) and figures["p99"] == pytest.approx(99.01)
    assert (figures["min"], figures["max"], figures["total"]) == (1, 100, 5050)


def test_reuse_counts_tokens_of_blocks_seen_in_earlier_requests() -> None:
    # blocks of 4 tokens; the last id of a prompt covers only the prompt's share
    first = table([0.0, 1.0], input_tokens=[10, 6], prefix_ids=[[1, 2, 3], [1, 4]])
    second = table([2.0, 3.0], input_tokens=[9, 5], prefix_ids=[[1, 2, 5], None])
    stats = trace_stats([first, second], prefix_block_tokens=4)
    # request 1 reuses block 1 (4 tokens); request 2 reuses 1 and 2 (8); request 3 has no ids
    assert stats["prefix"] == {
        "block_tokens": 4, "unique_blocks": 5, "reusable_tokens": 12,
        "input_tokens": 30, "reuse_ratio": pytest.approx(12 / 30),
    }


def reuse_by_hand(inputs: list[int], ids: list[list[int]], block: int) -> int:
    seen: set[int] = set()
    reusable = 0
    for prompt, blocks in zip(inputs, ids):
        reusable += sum(max(0, min(block, prompt - k * block))
                        for k, i in enumerate(blocks) if i in seen)
        seen.update(blocks)
    return reusable


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(st.tuples(st.integers(1, 40), st.lists(st.integers(0, 12), max_size=6)),
                  min_size=1, max_size=40),
    cuts=st.lists(st.integers(1, 39), max_size=4),
)
def test_reuse_matches_counting_by_hand_whatever_the_chunking(rows, cuts) -> None:
    inputs, ids = [r[0] for r in rows], [r[1] for r in rows]
    whole = table([float(i) for i in range(len(rows))], input_tokens=inputs, prefix_ids=ids)
    edges = [0, *sorted({c for c in cuts if c < len(rows)}), len(rows)]
    chunks = [whole.slice(a, b - a) for a, b in zip(edges, edges[1:])]
    prefix = trace_stats(chunks, prefix_block_tokens=8)["prefix"]
    assert prefix["reusable_tokens"] == reuse_by_hand(inputs, ids, 8)
    assert prefix["unique_blocks"] == len({i for blocks in ids for i in blocks})


def test_an_id_repeated_inside_one_request_is_not_reuse() -> None:
    stats = trace_stats([table([0.0], input_tokens=[8], prefix_ids=[[7, 7]])], 4)
    assert stats["prefix"]["reusable_tokens"] == 0


def test_ids_beyond_the_prompt_add_no_tokens() -> None:
    chunk = table([0.0, 1.0], input_tokens=[4, 4], prefix_ids=[[1, 2], [1, 2]])
    assert trace_stats([chunk], 4)["prefix"]["reusable_tokens"] == 4


def test_prefix_ids_need_a_block_size() -> None:
    with pytest.raises(TraceError, match="prefix_block_tokens"):
        trace_stats([table([0.0], prefix_ids=[[1]])], prefix_block_tokens=0)


@pytest.mark.parametrize(
    ("name", "paper", "measured"),
    [
        # Mooncake (FAST'25), Table 2: ~40 % of conversation and ~66 % of synthetic prompt
        # tokens are reusable with an unbounded cache; measured here 37.36 % and 65.12 %
        ("mooncake-conversation", 0.40, 0.37362),
        ("mooncake-synthetic", 0.66, 0.65124),
    ],
)
def test_mooncake_reuse_ratios_match_the_paper(name: str, paper: float, measured: float) -> None:
    trace = open_trace(name, chunk_bytes=256 << 10)
    ratio = trace_stats(trace.chunks(), trace.prefix_block_tokens)["prefix"]["reuse_ratio"]
    assert ratio == pytest.approx(paper, abs=0.03)
    assert ratio == pytest.approx(measured, abs=5e-5)


def test_sessions_models_and_endpoints_are_counted() -> None:
    chunk = table([0.0, 1.0, 2.0], session_id=["a", "b", "a"], model=["m", "n", "m"],
                  endpoint=["chat", None, "chat"])
    stats = trace_stats([chunk])
    assert stats["sessions"] == 2
    assert stats["models"] == {"m": 2, "n": 1} and stats["endpoints"] == {"chat": 2}


def test_an_empty_trace_is_an_error() -> None:
    with pytest.raises(TraceError, match="no rows"):
        trace_stats([])


def test_bucket_size_is_checked() -> None:
    with pytest.raises(TraceError, match="bucket_s must be"):
        trace_stats([table([0.0])], bucket_s=0)


def test_report_shows_figures_and_a_sparkline_of_the_rate() -> None:
    trace = open_trace("mooncake-synthetic")
    report = format_stats(trace_stats(trace.chunks(), trace.prefix_block_tokens))
    assert "requests        3,993" in report
    assert "prefix reuse    65.1% of input tokens" in report
    assert "burstiness      CV of gaps" in report
    spark = next(line for line in report.splitlines() if line.strip().startswith("|"))
    assert len(spark.strip()) == 17 + 2  # 17 full minutes; the 18th, barely begun, is left out
    assert report.isascii()


def test_a_long_trace_is_drawn_in_at_most_sixty_columns() -> None:
    arrival = np.linspace(0, 24 * 3600 - 1, 5_000)
    report = format_stats(trace_stats([table(arrival.tolist())]))
    assert "requests/s per 24 min" in report and report.endswith(" 24 h")
    spark = next(line for line in report.splitlines() if line.strip().startswith("|"))
    assert len(spark.strip()) == 60 + 2
