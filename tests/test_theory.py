"""The engine checked against queueing theory and conservation laws."""

from __future__ import annotations

import numpy as np
import pytest

from sim.fleet.simulation import simulate
from sim.workload.workload import Workload
from tests.helpers import LinearLatency, make_setup


def poisson_workload(rate: float, n: int, prompt: int, output: int, seed: int) -> Workload:
    gaps = np.random.default_rng(seed).exponential(1 / rate, n)
    return Workload.from_arrays(np.cumsum(gaps), [prompt] * n, [output] * n)


def test_batch_of_one_with_fixed_lengths_is_an_md1_queue() -> None:
    """One sequence at a time and deterministic service: mean wait = rho D / (2 (1 - rho))."""
    latency = LinearLatency(base=0.005, per_token=0.0001, per_context=0.0)
    prompt, output = 200, 20
    service = (0.005 + 0.0001 * prompt) + (output - 1) * (0.005 + 0.0001)
    rate = 0.7 / service
    workload = poisson_workload(rate, 40_000, prompt, output, seed=11)
    result = simulate(make_setup(latency=latency, max_num_seqs=1), workload)
    records = result.records
    np.testing.assert_allclose(records["e2e_s"] - records["queue_s"], service, rtol=1e-9)
    rho = rate * service
    expected_wait = rho * service / (2 * (1 - rho))
    assert records["queue_s"].mean() == pytest.approx(expected_wait, rel=0.05)


def test_light_load_has_no_queueing_and_full_throughput() -> None:
    latency = LinearLatency(base=0.010, per_token=0.0)
    workload = poisson_workload(0.5, 500, 100, 10, seed=3)
    result = simulate(make_setup(latency=latency), workload)
    records = result.records
    # every request finds an idle engine or joins at the next step boundary (< one step)
    assert records["queue_s"].max() <= 0.010 + 1e-12
    assert len(records) / records["arrival_s"].max() == pytest.approx(0.5, rel=0.1)


@pytest.mark.parametrize("macro", [True, False])
def test_littles_law_links_the_step_log_and_the_records(macro: bool) -> None:
    """Mean number running (from the steps) = throughput x mean time running (from records)."""
    latency = LinearLatency(base=0.008, per_token=0.00002, per_context=1e-7)
    rng = np.random.default_rng(5)
    n = 3000
    workload = Workload.from_arrays(
        np.cumsum(rng.exponential(1 / 20, n)), rng.integers(50, 800, n), rng.integers(1, 300, n)
    )
    setup = make_setup(latency=latency, macro_steps=macro, num_gpu_blocks=20_000)
    result = simulate(setup, workload)
    assert result.preemptions == 0
    steps, records = result.steps, result.records
    horizon = records["finish_s"].max()
    running_from_steps = ((steps["decode_seqs"] + steps["prefill_seqs"]) * steps["duration_s"]).sum()
    time_running = (records["finish_s"] - records["first_scheduled_s"]).sum()
    assert running_from_steps / horizon == pytest.approx(time_running / horizon, rel=1e-9)


def test_work_is_conserved_tokens_in_equals_tokens_computed() -> None:
    """Without prefix hits or preemption, the steps compute exactly every prompt token once."""
    rng = np.random.default_rng(8)
    n = 800
    workload = Workload.from_arrays(
        np.cumsum(rng.exponential(1 / 30, n)), rng.integers(1, 3000, n), rng.integers(1, 200, n)
    )
    result = simulate(make_setup(max_num_batched_tokens=512, num_gpu_blocks=5000), workload)
    steps = result.steps
    assert result.preemptions == 0
    assert steps["prefill_tokens"].sum() == workload.input_tokens.sum()
    decode_tokens = (steps["decode_seqs"] * steps["num_steps"]).sum()
    assert decode_tokens == (workload.output_tokens - 1).sum()
