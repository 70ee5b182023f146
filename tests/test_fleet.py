"""Fleets of model pools: routing rules, per-pool and fleet figures, prefix-affinity routing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.config.scenario import RouteSpec, parse_scenario
from sim.engine.errors import ScenarioError
from sim.fleet.simulation import simulate
from sim.runner.fleet_run import NO_ROUTE
from sim.runner.route_table import UNROUTED, RouteTable, uniform
from sim.runner.run import run_scenario
from sim.workload.workload import Workload
from tests.helpers import LinearLatency, make_setup

CLASSES = [
    {"name": "classify", "share": 0.5,
     "lengths": {"input": {"dist": "uniform", "min": 50, "max": 400}, "output": 4}},
    {"name": "chat", "share": 0.5,
     "lengths": {"input": {"dist": "uniform", "min": 200, "max": 2000}, "output": 100}},
]
WORKLOAD = {"arrivals": {"process": "poisson", "rate_per_s": 4}, "num_requests": 300,
            "classes": CLASSES}
SMALL_POOL = {"name": "small", "model": "llama-3.1-8b", "hardware": {"gpu": "l4", "replicas": 2},
              "engine": {"weight_dtype": "awq-int4"}}
LARGE_POOL = {"name": "large", "model": "llama-3.1-8b", "hardware": {"gpu": "h100-sxm"}}


def fleet(routes: list[dict], pools: list[dict] | None = None, **extra) -> dict:
    return {"name": "f", "seed": 5, "fleet": {"pools": pools or [SMALL_POOL, LARGE_POOL],
                                                "routes": routes},
            "workload": WORKLOAD, **extra}


def endpoints_workload(endpoints: list[str | None], prompts: list[int]) -> Workload:
    n = len(prompts)
    base = Workload.from_arrays(np.arange(n) * 0.1, prompts, [5] * n)
    return Workload(**base.columns(), endpoints=np.array(endpoints, dtype=object))


# ---- routing rules ----------------------------------------------------------------------------


def test_first_matching_rule_wins_and_unmatched_requests_are_unrouted() -> None:
    workload = endpoints_workload(["classify", "chat", "chat", "summarise"], [100, 500, 3000, 50])
    table = RouteTable(
        [RouteSpec(to="small", endpoints=("classify",)),
         RouteSpec(to="large", endpoints=("chat",), min_prompt_tokens=1000),
         RouteSpec(to="small", max_prompt_tokens=100)],
        ["small", "large"], seed=0)
    assert table.assign(workload).tolist() == [0, UNROUTED, 1, 0]


def test_class_rules_match_nothing_in_a_workload_without_classes() -> None:
    workload = Workload.from_arrays([0.0, 1.0], [10, 20], [5, 5])
    table = RouteTable([RouteSpec(to="a", endpoints=("chat",)), RouteSpec(to="b")], ["a", "b"], 0)
    assert table.assign(workload).tolist() == [1, 1]


def test_fraction_takes_its_share_and_the_rest_falls_through() -> None:
    n = 20_000
    workload = Workload.from_arrays(np.arange(n) * 0.01, [100] * n, [5] * n)
    table = RouteTable([RouteSpec(to="a", fraction=0.3), RouteSpec(to="b", fraction=0.5),
                        RouteSpec(to="c")], ["a", "b", "c"], seed=11)
    counts = np.bincount(table.assign(workload), minlength=3) / n
    # 30 %, then half of the remaining 70 %, then the rest; 4 standard errors of slack
    for got, want in zip(counts, [0.30, 0.35, 0.35]):
        assert abs(got - want) < 4 * np.sqrt(want * (1 - want) / n)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 400), cut=st.integers(0, 400), seed=st.integers(0, 2**32))
def test_chunked_assignment_equals_whole(n: int, cut: int, seed: int) -> None:
    """A streamed trace is routed chunk by chunk: the split must not change any decision."""
    cut = min(cut, n)
    prompts = (np.arange(n) * 37) % 900 + 1
    workload = Workload.from_arrays(np.arange(n) * 0.01, prompts, [5] * n)
    table = RouteTable([RouteSpec(to="a", fraction=0.4, max_prompt_tokens=600),
                        RouteSpec(to="b", fraction=0.7)], ["a", "b"], seed)
    whole = table.assign(workload)
    first, second = workload.take(np.arange(cut)), workload.take(np.arange(cut, n))
    parts = np.concatenate([table.assign(first, 0), table.assign(second, cut)])
    assert parts.tolist() == whole.tolist()


def test_uniform_draws_differ_by_seed_and_stream() -> None:
    rows = np.arange(1000, dtype=np.uint64)
    assert not np.array_equal(uniform(1, 0, rows), uniform(2, 0, rows))
    assert not np.array_equal(uniform(1, 0, rows), uniform(1, 1, rows))
    assert np.array_equal(uniform(1, 0, rows), uniform(1, 0, rows))


# ---- scenario validation ----------------------------------------------------------------------


@pytest.mark.parametrize("data, message", [
    (fleet([{"to": "medium"}]), "unknown pool.*medium"),
    (fleet([{"to": "small"}]), "large receive no requests"),
    (fleet([]), "needs routes"),
    (fleet([{"to": "small"}], pools=[SMALL_POOL, {**LARGE_POOL, "name": "small"}]),
     "unique; repeated: small"),
    (fleet([{"to": "small"}], pools=[{**SMALL_POOL, "engine": {"max_num_seq": 4}}]),
     r"pools\[small\].engine.*max_num_seq"),
    ({**fleet([{"to": "small"}], pools=[SMALL_POOL]), "model": "llama-3.1-8b"}, "not both"),
    ({"workload": WORKLOAD}, "missing model and hardware"),
    (fleet([{"to": "small", "min_prompt_tokens": 900, "max_prompt_tokens": 10}],
           pools=[SMALL_POOL]), "swap them"),
])
def test_bad_fleets_are_named(data: dict, message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        parse_scenario(data)


def test_a_pool_inherits_the_top_level_engine_and_overrides_it() -> None:
    scenario = parse_scenario(fleet([{"to": "small", "endpoints": ["classify"]}, {"to": "large"}],
                                    engine={"max_num_seqs": 32, "block_size": 32}))
    pools = dict(scenario.pool_scenarios())
    assert pools["small"].engine.weight_dtype == "awq-int4"
    assert pools["small"].engine.max_num_seqs == 32 and pools["large"].engine.block_size == 32
    assert pools["large"].engine.weight_dtype == "bf16"


# ---- fleet runs -------------------------------------------------------------------------------


def test_one_pool_fleet_equals_the_plain_scenario() -> None:
    plain = parse_scenario({"name": "p", "seed": 5, "model": "llama-3.1-8b",
                            "hardware": {"gpu": "h100-sxm", "replicas": 2}, "workload": WORKLOAD})
    pool = {"name": "only", "model": "llama-3.1-8b", "hardware": {"gpu": "h100-sxm", "replicas": 2}}
    as_fleet = parse_scenario(fleet([{"to": "only"}], pools=[pool]))
    a = run_scenario(plain).result.records
    b = run_scenario(as_fleet).result.records.drop(columns="pool")
    columns = ["arrival_s", "ttft_s", "e2e_s", "replica", "output_tokens"]
    pd.testing.assert_frame_equal(a[columns].reset_index(drop=True),
                                  b[columns].reset_index(drop=True))


def test_fleet_routes_classes_and_adds_up_per_pool() -> None:
    scenario = parse_scenario(fleet([{"to": "small", "endpoints": ["classify"]},
                                     {"to": "large", "endpoints": ["chat"]}]))
    outcome = run_scenario(scenario)
    records, summary = outcome.result.records, outcome.summary
    by_pool = records.groupby("pool")["endpoint"].unique()
    assert set(by_pool["small"]) == {"classify"} and set(by_pool["large"]) == {"chat"}
    pools = summary["pools"]
    assert sum(p["requests"]["arrived"] for p in pools.values()) == summary["requests"]["arrived"]
    assert summary["requests"]["arrived"] == 300
    assert summary["cost"]["usd_per_hour"] == pytest.approx(
        sum(p["cost"]["usd_per_hour"] for p in pools.values()))
    assert summary["cost"]["gpus"] == 3 and summary["replicas"] == 3
    # the small pool's latency is that of its own requests
    small = records[records["pool"] == "small"]
    assert pools["small"]["ttft_ms"]["p50"] == pytest.approx(small["ttft_s"].median() * 1e3)


def test_requests_no_rule_matches_are_rejected_and_counted() -> None:
    scenario = parse_scenario(fleet([{"to": "small", "endpoints": ["classify"]}],
                                    pools=[SMALL_POOL]))
    summary = run_scenario(scenario).summary
    chat = summary["by_endpoint"]["chat"]
    assert summary["requests"]["rejected_reasons"][NO_ROUTE] == chat["arrived"] > 0
    assert summary["requests"]["arrived"] == 300
    assert summary["requests"]["completed"] == 300 - chat["arrived"]


def test_a_pool_that_does_not_fit_is_named() -> None:
    big = {"name": "big", "model": "llama-3.1-70b", "hardware": {"gpu": "l4"}}
    scenario = parse_scenario(fleet([{"to": "small", "endpoints": ["classify"]}, {"to": "big"}],
                                    pools=[SMALL_POOL, big]))
    with pytest.raises(ScenarioError, match="fleet pool 'big'.*tensor_parallel"):
        run_scenario(scenario)


def test_closed_loop_fleets_are_refused() -> None:
    workload = {**WORKLOAD, "arrivals": {"process": "closed_loop", "concurrency": 4}}
    scenario = parse_scenario({**fleet([{"to": "small"}], pools=[SMALL_POOL]),
                               "workload": workload})
    with pytest.raises(ScenarioError, match="closed-loop"):
        run_scenario(scenario)


# ---- prefix affinity ---------------------------------------------------------------------------


def shared_prefix_workload(n: int, groups: int, rate: float, seed: int = 0) -> Workload:
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(1 / rate, n))
    keys = rng.integers(1, groups + 1, n)
    return Workload.from_arrays(arrivals, [1100] * n, [20] * n, prefix_key=keys,
                                prefix_tokens=[1000] * n)


def test_prefix_affinity_keeps_a_prefix_on_one_replica() -> None:
    workload = shared_prefix_workload(400, groups=4, rate=5)
    records = simulate(make_setup(replicas=4, router="prefix_affinity",
                                  latency=LinearLatency(0.005, 0.00002)), workload).records
    first_key = np.asarray(workload.prefix_key)[records["rid"].to_numpy()]
    replicas_per_key = pd.Series(records["replica"].to_numpy()).groupby(first_key).nunique()
    assert (replicas_per_key == 1).all()  # light load: never a reason to move a prefix


def test_prefix_affinity_beats_least_outstanding_on_cache_hits() -> None:
    # 16 prefixes of 1,000 tokens, 4 replicas whose caches hold only ~6 prefixes each
    workload = shared_prefix_workload(1500, groups=16, rate=30)

    def hit_rate(router: str) -> float:
        setup = make_setup(replicas=4, router=router, num_gpu_blocks=400,
                           latency=LinearLatency(0.005, 0.00002))
        return simulate(setup, workload).prefix_cache_hit_rate

    affinity, spread = hit_rate("prefix_affinity"), hit_rate("least_outstanding")
    assert affinity > spread + 0.1


def test_prefix_affinity_gives_up_a_holder_that_is_far_busier() -> None:
    # every request shares one prefix; one replica cannot keep up, so work must spill over
    workload = shared_prefix_workload(300, groups=1, rate=200)
    setup = make_setup(replicas=3, router="prefix_affinity", max_num_seqs=2,
                       latency=LinearLatency(0.01, 0.0001))
    records = simulate(setup, workload).records
    assert set(records["replica"]) == {0, 1, 2}


def test_a_replicas_outstanding_count_is_its_schedulers(monkeypatch) -> None:
    """The router reads a counter the replica keeps; it must be the number of requests the
    scheduler still holds (waiting, prefilling or decoding) whenever a request is routed."""
    from sim.config.deployment import resolve
    from sim.config.scenario import parse_scenario
    from sim.engine.replica import Replica
    from sim.runner.pool_run import simulate_pool, workload_source

    checked = []
    submit = Replica.submit

    def checking_submit(self, request):
        checked.append(self.num_outstanding == self.scheduler.num_outstanding)
        submit(self, request)

    monkeypatch.setattr(Replica, "submit", checking_submit)
    for scheduler in ("continuous", "dynamic"):
        scenario = parse_scenario({
            "model": "llama-3.1-8b", "hardware": {"gpu": "h100-sxm", "replicas": 3},
            "engine": {"scheduler": scheduler, "max_num_seqs": 8},
            "workload": {"arrivals": {"rate_per_s": 40}, "num_requests": 400,
                         "lengths": {"input": {"dist": "uniform", "min": 10, "max": 3000},
                                     "output": {"dist": "uniform", "min": 1, "max": 400}}},
        })
        simulate_pool(resolve(scenario), workload_source(scenario))
    assert len(checked) == 800 and all(checked)
