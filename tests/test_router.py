"""Routing across replicas."""

from __future__ import annotations

import numpy as np

from sim.fleet.simulation import simulate
from sim.workload.workload import Workload
from tests.helpers import LinearLatency, make_setup


def test_round_robin_alternates_replicas() -> None:
    workload = Workload.from_arrays(np.arange(6) * 0.001, [10] * 6, [5] * 6)
    records = simulate(make_setup(replicas=3, router="round_robin"), workload).records
    assert records["replica"].tolist() == [0, 1, 2, 0, 1, 2]


def test_least_outstanding_sends_work_to_the_idle_replica() -> None:
    # request 0 is long and keeps replica 0 busy; the short ones must avoid it
    workload = Workload.from_arrays([0.0, 0.1, 0.2, 0.3], [10, 10, 10, 10], [500, 2, 2, 2])
    setup = make_setup(replicas=2, router="least_outstanding", latency=LinearLatency(0.01, 0.0))
    records = simulate(setup, workload).records
    assert records["replica"].tolist() == [0, 1, 1, 1]


def test_two_replicas_halve_the_queueing_of_an_overloaded_one() -> None:
    rng = np.random.default_rng(2)
    n = 2000
    workload = Workload.from_arrays(np.cumsum(rng.exponential(1 / 15, n)), [200] * n, [50] * n)
    latency = LinearLatency(0.01, 0.0002)
    one = simulate(make_setup(replicas=1, max_num_seqs=4, latency=latency), workload)
    two = simulate(make_setup(replicas=2, max_num_seqs=4, latency=latency,
                              router="least_outstanding"), workload)
    assert two.records["queue_s"].mean() < 0.5 * one.records["queue_s"].mean()
    assert set(two.records["replica"]) == {0, 1}
