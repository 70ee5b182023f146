"""Gateway micro-batching and closed-loop clients: exact timelines and invariants."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.engine.batching_policy import BatchingPolicy
from sim.fleet.gateway import GatewayPolicy, release_groups
from sim.fleet.simulation import simulate
from sim.workload.workload import Workload
from tests.helpers import make_setup


def _groups(times, policy, keys=None):
    rows = [(t, i) for i, t in enumerate(times)]
    key_of = (lambda row: keys[row[1]]) if keys else (lambda row: ())
    return [(release, [row[1] for row in group])
            for release, group in release_groups(rows, policy, key_of)]


def test_a_group_goes_when_full_or_when_its_window_closes() -> None:
    policy = GatewayPolicy(window_s=0.010, max_batch=3)
    got = _groups([0.000, 0.004, 0.006, 0.007, 0.030, 0.040, 0.041], policy)
    assert got == [
        (0.006, [0, 1, 2]),  # full at the third arrival
        (pytest.approx(0.017), [3]),  # 7 ms + 10 ms: the window closes with one request
        (pytest.approx(0.040), [4, 5]),  # 30 ms + 10 ms: the request at 40 ms still joins
        (pytest.approx(0.051), [6]),  # the last group closes after the stream ends
    ]


def test_groups_only_hold_requests_with_the_same_key() -> None:
    policy = GatewayPolicy(window_s=0.010, max_batch=8, group_by=("max_tokens",))
    got = _groups([0.0, 0.001, 0.002, 0.003], policy, keys=[64, 256, 64, 256])
    assert got == [(0.010, [0, 2]), (pytest.approx(0.011), [1, 3])]


def test_window_zero_only_groups_simultaneous_arrivals() -> None:
    got = _groups([0.0, 0.0, 0.5, 0.7], GatewayPolicy(window_s=0.0, max_batch=8))
    assert got == [(0.0, [0, 1]), (0.5, [2]), (0.7, [3])]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.floats(0, 0.05), min_size=1, max_size=60),
    st.floats(0, 0.05),
    st.integers(1, 6),
    st.lists(st.integers(0, 2), min_size=60, max_size=60),
)
def test_the_gateway_never_holds_a_request_past_its_window(gaps, window, max_batch, keys) -> None:
    times = np.cumsum(gaps).tolist()
    policy = GatewayPolicy(window_s=window, max_batch=max_batch, group_by=("endpoint",))
    got = _groups(times, policy, keys=keys)
    released = sorted(i for _, members in got for i in members)
    assert released == list(range(len(times)))  # every request, once
    releases = [release for release, _ in got]
    assert releases == sorted(releases)
    for release, members in got:
        assert len(members) <= max_batch
        assert len({keys[i] for i in members}) == 1
        first = min(times[i] for i in members)
        assert release <= first + window + 1e-12
        assert all(times[i] <= release + 1e-12 for i in members)


def test_the_window_shows_in_ttft_and_fills_static_batches() -> None:
    """Step = 10 ms + 1 ms/token. Four requests 5 ms apart; a dynamic batcher with no delay.

    Without a gateway the first request runs alone (prompt step 20 ms) and the other three
    queue behind it. A 20 ms window opened by request 0 closes at 20 ms holding all four, so
    one batch of four starts at 20 ms; request 0 was held 20 ms, request 3 5 ms.
    """
    workload = Workload.from_arrays([0.0, 0.005, 0.010, 0.015], [10] * 4, [1] * 4)
    batching = BatchingPolicy(max_batch=4, timeout_s=0.0)
    plain = simulate(make_setup(batching=batching, kv_allocation="contiguous",
                                max_model_len=100), workload)
    assert plain.records["first_scheduled_s"].tolist() == pytest.approx([0, 0.02, 0.02, 0.02])
    gated = simulate(make_setup(batching=batching, kv_allocation="contiguous", max_model_len=100,
                                gateway=GatewayPolicy(0.020, 8)), workload)
    records = gated.records.sort_values("rid")
    assert records["first_scheduled_s"].tolist() == pytest.approx([0.02] * 4)
    # one prompt step of 40 tokens: 50 ms; TTFT counts from the client's send time
    assert records["ttft_s"].tolist() == pytest.approx([0.07, 0.065, 0.06, 0.055])
    assert gated.gateway_groups == 1
    assert gated.gateway_hold_s.tolist() == pytest.approx([0.02, 0.015, 0.01, 0.005])


def test_one_closed_loop_client_sends_each_request_when_the_last_reply_ends() -> None:
    """Step = 10 ms + 1 ms/token; each request 10 prompt + 2 output tokens takes 20 + 11 ms."""
    workload = Workload(**Workload.from_arrays([0.0] * 3, [10] * 3, [2] * 3).columns(),
                        concurrency=1)
    result = simulate(make_setup(), workload)
    records = result.records.sort_values("rid")
    assert records["arrival_s"].tolist() == pytest.approx([0.0, 0.031, 0.062])
    assert records["finish_s"].tolist() == pytest.approx([0.031, 0.062, 0.093])


@pytest.mark.parametrize("replicas", [1, 3])
def test_closed_loop_keeps_exactly_concurrency_requests_in_flight(replicas: int) -> None:
    """Little's law holds exactly for a closed loop: in flight = throughput x latency."""
    rng = np.random.default_rng(5)
    n, concurrency = 300, 6
    columns = Workload.from_arrays(np.zeros(n), rng.integers(5, 200, n),
                                   rng.integers(1, 60, n)).columns()
    result = simulate(make_setup(replicas=replicas, router="least_outstanding"),
                      Workload(**columns, concurrency=concurrency))
    records = result.records
    assert len(records) == n
    events = np.concatenate([np.c_[records["arrival_s"], np.ones(n)],
                             np.c_[records["finish_s"], -np.ones(n)]])
    events = events[np.lexsort((events[:, 1], events[:, 0]))]  # ends before sends at ties
    in_flight = np.cumsum(events[:, 1])
    assert in_flight.max() == concurrency
    # until the rows run out, every reply's end sends the next request at the same instant
    times = events[:, 0]
    settled = in_flight[np.r_[times[1:] != times[:-1], True]]  # after each instant's events
    instants = np.unique(times)
    assert (settled[instants < records["arrival_s"].max()] == concurrency).all()
