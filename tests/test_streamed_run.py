"""A streamed run (records written as it goes, steps kept as totals) reports what the same run
kept in memory reports: counts and sums exactly, means to float rounding, percentiles within
the histogram's 0.05 %; and it keeps no rows."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.commands.cli import main
from sim.config.scenario import load_scenario, parse_scenario
from sim.engine import row_blocks
from sim.engine.errors import ScenarioError
from sim.engine.log_histogram import LogHistogram, RELATIVE_WIDTH
from sim.engine.replica import Replica
from sim.results.metrics import weighted_distribution_ms
from sim.runner.run import run_scenario

PERCENTILE = RELATIVE_WIDTH / 2 + 1e-9  # a bin's centre is within half its width of any value
PERCENTILE_KEYS = {"p50", "p90", "p95", "p99", "low", "high"}  # (the error band scales p95s)

MIX = {
    "name": "mix", "model": "llama-3.1-8b", "hardware": {"gpu": "h100-sxm", "replicas": 2},
    "slo": {"ttft_p95_ms": 300, "tpot_p95_ms": 30},
    "workload": {
        "arrivals": {"process": "poisson", "rate_per_s": 40}, "num_requests": 5_000,
        "classes": [
            {"name": "chat", "share": 0.7,
             "lengths": {"input": {"dist": "lognormal", "mean": 800, "sigma": 0.8},
                         "output": {"dist": "lognormal", "mean": 200, "sigma": 0.8}}},
            {"name": "classify", "share": 0.3, "max_tokens": 4,
             "lengths": {"input": 300, "output": 4}},
        ],
    },
}
SESSIONS = {
    "name": "sessions", "model": "llama-3.1-8b", "hardware": {"gpu": "h100-sxm"},
    "engine": {"prefix_caching": True},
    "workload": {"arrivals": {"process": "poisson", "rate_per_s": 2.0}, "num_requests": 400,
                 "sessions": {"turns": 4, "think_time_s": 5, "first_turn_tokens": 1_000,
                              "new_tokens": 60, "reply_tokens": 150}},
}


def _agree(streamed, kept, path: str = "") -> list[str]:
    """Where two summaries differ by more than the streamed run's tolerances."""
    if isinstance(kept, dict):
        return [problem for key in kept if key != "wall_s"
                for problem in _agree(streamed[key], kept[key], f"{path}.{key}")]
    if isinstance(kept, list):
        return [p for i, (a, b) in enumerate(zip(streamed, kept)) for p in _agree(a, b, path)]
    if isinstance(kept, float) and isinstance(streamed, float):
        last = path.rsplit(".", 1)[-1]
        tolerance = PERCENTILE if last in PERCENTILE_KEYS else 1e-9
        return [] if math.isclose(streamed, kept, rel_tol=tolerance, abs_tol=1e-12) else [
            f"{path}: {streamed} streamed, {kept} kept"]
    return [] if streamed == kept else [f"{path}: {streamed!r} streamed, {kept!r} kept"]


@pytest.mark.parametrize("spec", [MIX, SESSIONS], ids=["endpoints", "conversations"])
def test_a_streamed_run_reports_what_the_run_kept_in_memory_reports(spec, tmp_path) -> None:
    scenario = parse_scenario(spec)
    kept = run_scenario(scenario)
    streamed = run_scenario(scenario, stream_to=tmp_path / "requests.parquet")

    assert streamed.result.records is None and streamed.result.steps is None
    assert "percentiles" in streamed.summary
    streamed.summary.pop("percentiles")
    assert _agree(streamed.summary, kept.summary) == []

    written = pd.read_parquet(tmp_path / "requests.parquet").sort_values("rid")
    table = kept.result.records
    assert len(written) == len(table) == kept.summary["requests"]["arrived"]
    for column in table.columns:  # (a missing endpoint reads back as NaN, not None)
        assert _values(written[column]) == _values(table[column]), column


def _values(column: pd.Series) -> list:
    return [None if pd.isna(v) else v for v in column.tolist()]


def test_the_endpoint_split_and_turn_hits_are_the_streamed_ones() -> None:
    """(The comparison above holds only if both runs report these at all.)"""
    assert run_scenario(parse_scenario(MIX)).summary["by_endpoint"].keys() == {"chat", "classify"}
    turns = run_scenario(parse_scenario(SESSIONS)).summary["kv"]["prefix_cache_hit_rate_by_turn"]
    assert list(turns) == ["1", "2", "3", "4"] and turns["4"] > 0.5


def test_a_streamed_run_keeps_no_rows(tmp_path, monkeypatch) -> None:
    """Memory does not grow with the run: at the end no replica holds a step row or piece
    (every block was folded into totals), and the record log holds no chunk."""
    logs = []
    original = Replica.__init__

    def keep_log(self, *args, **kwargs) -> None:
        original(self, *args, **kwargs)
        logs.append(self.log)

    monkeypatch.setattr(Replica, "__init__", keep_log)
    spec = MIX | {"workload": MIX["workload"] | {"num_requests": 3_000}}
    outcome = run_scenario(parse_scenario(spec), stream_to=tmp_path / "r.parquet")
    assert outcome.result.streamed.steps.rows > row_blocks.BLOCK_ROWS  # blocks were folded
    assert len(logs) == 2
    for log in logs:
        assert len(log) == 0 and len(log.itl_pieces()) == 0
    assert outcome.summary["requests"]["arrived"] == 3_000


def test_streaming_needs_an_out_folder_and_one_pool(tmp_path, capsys) -> None:
    assert main(["run", "examples/azure-conv-hour-h100.yaml", "--stream"]) == 2
    assert "give --out DIR" in capsys.readouterr().err
    with pytest.raises(ScenarioError, match="one pool"):
        run_scenario(load_scenario("examples/fleet-route-classify-to-8b.yaml", []),
                     stream_to=tmp_path / "r.parquet")


# ---- the histogram ----------------------------------------------------------------------

samples = st.lists(st.floats(min_value=0.0, max_value=1e4, allow_nan=False), min_size=1,
                   max_size=300)


@settings(max_examples=200)
@given(samples, st.sampled_from([0.01, 0.5, 0.9, 0.95, 0.99, 1.0]))
def test_histogram_percentiles_are_within_half_a_bin_of_the_listed_ones(values, q) -> None:
    values = np.array(values)
    histogram = LogHistogram()
    histogram.add(values)
    exact = float(np.percentile(values, 100 * q))
    assert math.isclose(histogram.quantile(q, linear=True), exact, rel_tol=PERCENTILE,
                        abs_tol=2e-7)
    assert math.isclose(histogram.mean(), values.mean(), rel_tol=1e-12, abs_tol=1e-300)


@settings(max_examples=200)
@given(st.lists(st.tuples(st.floats(min_value=1e-6, max_value=10.0),
                          st.integers(min_value=1, max_value=50)), min_size=1, max_size=200),
       st.sampled_from([0.5, 0.9, 0.95, 0.99]))
def test_weighted_histogram_percentiles_match_the_lower_weighted_ones(pairs, q) -> None:
    values = np.array([v for v, _ in pairs])
    weights = np.array([w for _, w in pairs], dtype=float)
    halves = LogHistogram(), LogHistogram()
    halves[0].add(values[::2], weights[::2])
    halves[1].add(values[1::2], weights[1::2])
    halves[0].merge(halves[1])  # merging equals adding everything to one
    exact = weighted_distribution_ms(values, weights)[f"p{round(100 * q)}"] / 1e3
    assert math.isclose(halves[0].quantile(q), exact, rel_tol=PERCENTILE)
    assert halves[0].total == weights.sum()


def test_a_histogram_refuses_negative_durations_and_skips_nan() -> None:
    histogram = LogHistogram()
    histogram.add(np.array([np.nan, 1.0]))
    assert histogram.total == 1 and histogram.quantile(0.5) == 1.0
    with pytest.raises(ValueError, match="negative"):
        histogram.add(np.array([-1.0]))
    assert LogHistogram().quantile(0.5) is None and LogHistogram().mean() is None
