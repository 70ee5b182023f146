"""Long runs keep their step log and records compact (numbers in blocks, records in column
chunks); the results must be exactly those of keeping every row as it was made."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sim.config.deployment import resolve
from sim.config.scenario import parse_scenario
from sim.engine import row_blocks
from sim.engine.row_blocks import RowBlocks
from sim.fleet import record
from sim.fleet.simulation import simulate
from sim.workload.workload import generate_workload


def test_row_blocks_keep_every_row_in_order(monkeypatch) -> None:
    monkeypatch.setattr(row_blocks, "BLOCK_ROWS", 3)
    rows = RowBlocks(2)
    for i in range(10):
        rows.rows.append((i, 0.5 * i))
        if len(rows.rows) >= row_blocks.BLOCK_ROWS:
            rows.compact()
    assert len(rows) == 10
    np.testing.assert_array_equal(rows.array(), [(i, 0.5 * i) for i in range(10)])
    rows.rows.append((10, 5.0))  # more after reading
    assert rows.array().shape == (11, 2) and rows.array()[-1].tolist() == [10, 5.0]
    assert RowBlocks(3).array().shape == (0, 3)


def _run():
    scenario = parse_scenario({
        "model": "llama-3.1-8b", "hardware": {"gpu": "h100-sxm", "replicas": 2},
        "workload": {"arrivals": {"rate_per_s": 20}, "num_requests": 300,
                     "lengths": {"input": {"dist": "uniform", "min": 10, "max": 9000},
                                 "output": {"dist": "uniform", "min": 1, "max": 300}}},
        "engine": {"max_model_len": 8192},  # some prompts are rejected: records of both kinds
    })
    workload = generate_workload(scenario.workload, np.random.default_rng(scenario.seed))
    return simulate(resolve(scenario).setup, workload)


@pytest.mark.parametrize("block", [1, 7, 64])
def test_compacted_results_equal_the_plain_ones(monkeypatch, block: int) -> None:
    plain = _run()
    monkeypatch.setattr(row_blocks, "BLOCK_ROWS", block)
    monkeypatch.setattr(record, "CHUNK_RECORDS", block)
    compact = _run()
    assert (plain.records["status"] == "rejected").any()
    pd.testing.assert_frame_equal(compact.records, plain.records)
    pd.testing.assert_frame_equal(compact.steps, plain.steps)
    np.testing.assert_array_equal(compact.itl_durations_s, plain.itl_durations_s)
    np.testing.assert_array_equal(compact.itl_weights, plain.itl_weights)
