"""SLO-constrained planning: the replica search, ranking, and whole plans checked by re-running
their answers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from sim.commands.cli import main
from sim.config.scenario import load_scenario, parse_scenario
from sim.engine.errors import UserError
from sim.planning import plan as planning
from sim.planning.executor import make_executor
from sim.planning.plan import Candidate, CandidatePlan, Trial, candidates, plan, rank
from sim.runner.run import run_scenario

SCENARIO = {
    "name": "chat",
    "seed": 7,
    "model": "llama-3.1-8b",
    "hardware": {"gpu": "h100-sxm"},
    "workload": {
        "arrivals": {"process": "poisson", "rate_per_s": 6},
        "duration_s": 40,
        "lengths": {"input": {"dist": "lognormal", "mean": 600, "sigma": 0.6, "max": 4000},
                    "output": {"dist": "exponential", "mean": 120, "max": 600}},
    },
    "slo": {"ttft_p95_ms": 400, "tpot_p95_ms": 45},
}
INLINE = make_executor("local", workers=1)


def trial(replicas: int, holds: bool, ttft: float = 100.0, rejected: int = 0) -> Trial:
    return Trial(replicas, 0, holds, ttft, 10.0, None, rejected, 1.0, 730.0, 1e6, 1.0,
                 target_ttft_p95_ms=200.0, queue_p95_ms=0.0 if ttft < 1e3 else ttft / 2)


# ---- the search -------------------------------------------------------------------------------


@given(threshold=st.integers(1, planning.MAX_REPLICAS))
def test_search_finds_the_smallest_count_that_holds(threshold: int) -> None:
    tried: list[int] = []

    def run(r: int) -> Trial:
        tried.append(r)
        return trial(r, r >= threshold, ttft=1e4 / r)  # queueing: more replicas, less latency

    assert planning._search(run) == threshold
    assert len(tried) <= 2 * threshold.bit_length() + 1  # doubling then bisection


def test_search_gives_up_past_the_replica_limit() -> None:
    assert planning._search(lambda r: trial(r, False, ttft=1e6 / r)) is None


def test_search_stops_when_more_replicas_do_not_help() -> None:
    tried: list[int] = []

    def run(r: int) -> Trial:
        tried.append(r)
        return trial(r, False, ttft=900.0)  # one request's own prefill: no queueing to remove

    with pytest.raises(planning._Hopeless, match="ttft p95 stays at 900 ms"):
        planning._search(run)
    assert tried == [1, 2]


def test_search_keeps_doubling_while_the_queue_shrinks() -> None:
    # overloaded: every batch is full, so TPOT stays put while TTFT (the queue) falls
    def run(r: int) -> Trial:
        return Trial(r, 0, r >= 12, 5000.0 / r, 90.0 if r < 12 else 40.0, None, 0, 1.0, 730.0,
                     1e6, 1.0, target_ttft_p95_ms=500.0, target_tpot_p95_ms=50.0,
                     queue_p95_ms=4000.0 / r)

    assert planning._search(run) == 12


def test_rejected_prompts_end_the_search_at_once() -> None:
    with pytest.raises(planning._Hopeless, match="3 requests are rejected"):
        planning._search(lambda r: trial(r, False, rejected=3))


def test_confirm_adds_replicas_until_every_seed_holds() -> None:
    needs = {0: 3, 1: 5, 2: 4}  # the replicas each seed's traffic needs

    def run(r: int, seed: int) -> Trial:
        return trial(r, r >= needs[seed])

    assert planning._confirm(3, [0, 1, 2], run) == 5


# ---- ranking ----------------------------------------------------------------------------------


def candidate_plan(gpu: str, usd: float, ttft: float, quality: float = 100.0,
                   status: str = "ok") -> CandidatePlan:
    return CandidatePlan(Candidate(gpu, "bf16", 1), status, usd_per_hour=usd, ttft_p95_ms=ttft,
                         quality_retention_percent=quality, output_tokens_per_usd=1.0)


def test_rank_orders_by_cost_then_quality_and_marks_the_pareto_front() -> None:
    ranked = rank([
        candidate_plan("slow-cheap", 1.0, 400),
        candidate_plan("dominated", 3.0, 300),
        candidate_plan("fast", 2.0, 100),
        candidate_plan("cheap-lossy", 1.0, 400, quality=97.0),
        candidate_plan("broken", 0.5, 50, status="does_not_fit"),
        candidate_plan("fastest", 5.0, 50),
    ])
    assert [p.candidate.gpu for p in ranked] == [
        "slow-cheap", "cheap-lossy", "fast", "dominated", "fastest", "broken"]
    front = {p.candidate.gpu for p in ranked if p.pareto}
    # cheap-lossy ties slow-cheap on both axes: neither dominates the other
    assert front == {"slow-cheap", "cheap-lossy", "fast", "fastest"}
    assert [p.rank for p in ranked] == [1, 2, 3, 4, 5, None]


# ---- whole plans --------------------------------------------------------------------------------


def test_plan_answers_hold_and_one_replica_fewer_does_not() -> None:
    scenario = parse_scenario(SCENARIO)
    space = candidates(["l4"], ["bf16", "awq-int4"], [1])
    seeds = [7, 8]
    plans = plan(scenario, space, seeds, INLINE)
    assert [p.status for p in plans] == ["ok", "cannot_hold"] or all(p.status == "ok"
                                                                     for p in plans)
    for p in plans:
        if p.status != "ok":
            continue
        assert p.seeds_held == len(seeds)
        for seed in seeds:  # re-run the answer independently of the planner
            summary = run_scenario(p.scenario.with_seed(seed)).summary
            assert summary["slo"]["ttft_p95_met"] and summary["slo"]["tpot_p95_met"]
        if p.replicas > 1:
            fewer = p.scenario.model_copy(update={"hardware": p.scenario.hardware.model_copy(
                update={"replicas": p.replicas - 1})})
            held = [run_scenario(fewer.with_seed(s)).summary["slo"] for s in seeds]
            assert not all(h["ttft_p95_met"] and h["tpot_p95_met"] for h in held)
            assert p.seeds_held_one_fewer == sum(h["ttft_p95_met"] and h["tpot_p95_met"]
                                                 for h in held)
        assert p.usd_per_hour == pytest.approx(p.replicas * 0.8669, rel=1e-3)  # L4 on demand


def test_candidates_that_cannot_run_say_why() -> None:
    scenario = parse_scenario({**SCENARIO, "model": "llama-3.1-70b"})
    plans = {(p.candidate.gpu, p.candidate.tensor_parallel): p for p in plan(
        scenario, candidates(["l4", "rtx-4090"], ["bf16"], [1]), [7], INLINE)}
    assert plans[("l4", 1)].status == "does_not_fit"
    assert "tensor_parallel" in plans[("l4", 1)].message
    assert plans[("rtx-4090", 1)].status == "no_price"


def test_auto_tp_picks_the_smallest_degree_that_fits() -> None:
    scenario = parse_scenario({**SCENARIO, "model": "llama-3.1-70b",
                               "workload": {**SCENARIO["workload"], "duration_s": 10}})
    [result] = plan(scenario, candidates(["h100-sxm"], ["bf16"], [planning.AUTO_TP]), [7], INLINE)
    assert result.candidate.tensor_parallel == 2  # 141 GB of weights: two 80 GB GPUs


def test_auto_tp_reports_a_gpu_without_a_price_at_tp_1() -> None:
    # no TP degree gives the GPU a price, so searching the degrees would only mislabel it TP 8
    [result] = plan(parse_scenario(SCENARIO),
                    candidates(["rtx-4090"], ["bf16"], [planning.AUTO_TP]), [7], INLINE)
    assert (result.status, result.candidate.tensor_parallel) == ("no_price", 1)


def test_plan_refuses_a_scenario_without_slo() -> None:
    scenario = parse_scenario({**SCENARIO, "slo": {}})
    with pytest.raises(UserError, match="at least one SLO"):
        plan(scenario, candidates(["l4"], ["bf16"], [1]), [0], INLINE)


def test_plan_command_json_and_files(tmp_path: Path, capsys) -> None:
    path = tmp_path / "chat.yaml"
    path.write_text(yaml.safe_dump(SCENARIO))
    out = tmp_path / "plan"
    code = main(["plan", str(path), "--gpus", "h100-sxm,a100-80gb", "--formats", "bf16,fp8",
                 "--tp", "1", "--seeds", "2", "--workers", "1", "--format", "json",
                 "--out", str(out)])
    assert code == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 4
    required = {"gpu", "weight_dtype", "tensor_parallel", "replicas", "usd_per_hour",
                "output_tokens_per_usd", "ttft_p95_ms", "tpot_p95_ms", "seeds_held", "seeds",
                "quality_retention_percent", "pareto", "status"}
    assert required <= set(rows[0])
    assert rows[0]["rank"] == 1 and rows[0]["seeds_held"] == rows[0]["seeds"] == 2
    assert [r["usd_per_hour"] for r in rows] == sorted(r["usd_per_hour"] for r in rows)
    assert (out / "pareto.png").stat().st_size > 10_000
    winner = load_scenario(out / "winner.yaml")
    assert winner.hardware.gpu == rows[0]["gpu"] and winner.hardware.replicas == rows[0]["replicas"]
    assert run_scenario(winner).summary["slo"]["ttft_p95_met"]


def test_plan_command_names_bad_options(tmp_path: Path, capsys) -> None:
    path = tmp_path / "chat.yaml"
    path.write_text(yaml.safe_dump(SCENARIO))
    assert main(["plan", str(path), "--gpus", "h100,l4"]) == 2
    assert "unknown GPU id(s) h100" in capsys.readouterr().err
    assert main(["plan", str(path), "--formats", "int3"]) == 2
    assert "unknown format(s) int3" in capsys.readouterr().err
    assert main(["plan", str(path), "--tp", "one"]) == 2
    assert "whole numbers" in capsys.readouterr().err
