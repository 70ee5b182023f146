"""Figures a planner acts on: the SLO verdict counts every request that arrived, the bill covers
the window the load was offered over (not the queue draining after it), and an overloaded run
is called overloaded."""

from __future__ import annotations

import pytest

from sim.commands.cli import main
from sim.config.scenario import parse_scenario
from sim.results.cost import billed_window_s
from sim.results.slo_verdict import slo_misses
from sim.runner.run import run_scenario

PRICE = 3.6  # $/h: one second costs $0.001

STEADY = {
    "name": "steady", "model": "llama-3.1-8b",
    "hardware": {"gpu": "h100-sxm", "price_usd_per_hour": PRICE},
    "slo": {"ttft_p95_ms": 1000, "tpot_p95_ms": 50},
    "workload": {"arrivals": {"process": "constant", "rate_per_s": 2.0}, "num_requests": 40,
                 "lengths": {"input": 500, "output": 300}},
}


def _run(spec: dict, **changes) -> dict:
    data = {**spec, **changes}
    return run_scenario(parse_scenario(data)).summary


# ---- the bill ---------------------------------------------------------------------------

def test_billing_by_hand() -> None:
    # five arrivals one second apart stand for five seconds of a 1-per-second load
    assert billed_window_s(5, 0.0, 4.0, 10.0, kept_up=True) == (5.0, "arrival window")
    assert billed_window_s(5, 0.0, 4.0, 4.5, kept_up=True)[0] == 4.5  # never past the end
    assert billed_window_s(5, 0.0, 4.0, 10.0, kept_up=False)[0] == 10.0  # fell behind
    assert billed_window_s(5, 2.0, 2.0, 10.0, kept_up=None)[0] == 10.0  # a batch at once
    assert billed_window_s(1, 0.0, 0.0, 3.0, kept_up=True)[0] == 3.0


def test_a_steady_load_is_billed_for_its_window_not_its_drain() -> None:
    """40 requests at 2 per second offer 20 s of load; each reply takes ~3 s, so the run ends
    after 21.5 s and more. The bill is 20 s at $3.60/h: $0.02."""
    summary = _run(STEADY)
    cost, saturation = summary["cost"], summary["saturation"]
    assert saturation["kept_up"] is True
    assert cost["billed_s"] == pytest.approx(20.0)
    assert cost["usd_total"] == pytest.approx(0.020)
    assert summary["duration_s"] > 21.5 and saturation["drain_s"] > 2.0
    assert cost["usd_per_million_output_tokens"] == pytest.approx(0.020 / (40 * 300) * 1e6)
    assert 0 < cost["busy_usd"] <= cost["usd_total"]


def test_an_overloaded_run_is_called_so_and_billed_until_its_queue_drains(capsys) -> None:
    heavy = {**STEADY["workload"], "arrivals": {"process": "constant", "rate_per_s": 400.0},
             "num_requests": 4_000, "lengths": {"input": 2_000, "output": 400}}
    summary = _run(STEADY, workload=heavy)
    saturation, cost = summary["saturation"], summary["cost"]
    assert saturation["kept_up"] is False and saturation["backlog_share"] > 0.5
    assert cost["billed_s"] == summary["duration_s"]
    assert "did not keep up" in cost["billed_basis"]
    assert summary["slo"]["met"] is False


def test_a_batch_arriving_at_once_has_no_rate_to_keep_up_with() -> None:
    batch = {**STEADY["workload"], "arrivals": {"process": "all_at_once"}}
    summary = _run(STEADY, workload=batch)
    assert summary["saturation"]["kept_up"] is None
    assert summary["cost"]["billed_s"] == summary["duration_s"]


# ---- the verdict --------------------------------------------------------------------------

def test_a_run_that_rejects_most_requests_misses_its_slo_and_says_why() -> None:
    """The defect: with max_model_len 256, most prompts are refused; the few short ones are
    served fast, so every latency target holds, and the run used to show "SLO met"."""
    mixed = {**STEADY["workload"], "lengths": {
        "input": {"dist": "uniform", "min": 50, "max": 2_000}, "output": 50}}
    summary = _run(STEADY, workload=mixed, engine={"max_model_len": 256})
    slo, requests = summary["slo"], summary["requests"]
    assert requests["rejected"] >= 0.75 * requests["arrived"]  # (256 of 50-2,000 tokens)
    assert slo["ttft_p95_met"] and slo["tpot_p95_met"]  # the latencies alone look fine
    assert slo["met"] is False and slo["rejections_met"] is False
    assert slo["rejected_share"] == requests["rejected"] / requests["arrived"]
    assert slo["reasons"] == [f"{100 * slo['rejected_share']:.1f} % of requests rejected or "
                              "unfinished > 1 %"]
    good = summary["goodput"]["fraction_meeting_slo"]
    assert good == pytest.approx(requests["completed"] / requests["arrived"])

    lenient = _run(STEADY | {"slo": STEADY["slo"] | {"max_rejected_share": 0.9}},
                   workload=mixed, engine={"max_model_len": 256})
    assert lenient["slo"]["met"] is True and lenient["slo"]["reasons"] == []


def test_the_cli_prints_the_one_verdict(tmp_path, capsys) -> None:
    import yaml

    mixed = {**STEADY["workload"], "lengths": {
        "input": {"dist": "uniform", "min": 50, "max": 2_000}, "output": 50}}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({**STEADY, "workload": mixed,
                                    "engine": {"max_model_len": 256}}))
    assert main(["run", str(path)]) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith("SLO"))
    assert "MISSED" in line and "rejected or unfinished > 1 %" in line
    assert "load       kept up" in out


def test_rejections_within_the_limit_hold_and_a_missing_figure_misses() -> None:
    slo = parse_scenario({**STEADY}).slo
    figures = {"ttft_p95_ms": 100.0, "tpot_p95_ms": 10.0, "e2e_p99_ms": None}
    assert slo_misses(slo, figures, rejected=0.01) == {}
    assert slo_misses(slo, figures, rejected=0.02) == {"rejections": pytest.approx(2.0)}
    assert slo_misses(slo, figures | {"ttft_p95_ms": None}) == {"ttft_p95_ms": float("inf")}


def test_no_latency_target_means_no_verdict() -> None:
    summary = _run({k: v for k, v in STEADY.items() if k != "slo"})
    assert summary["slo"]["met"] is None and summary["slo"]["reasons"] == []


@pytest.mark.parametrize("workload, expected", [
    ({"arrivals": {"process": "poisson", "rate_per_s": 10.0}, "duration_s": 60}, 600),
    ({"arrivals": {"process": "poisson", "rate_per_s": 10.0}, "duration_s": 60,
      "num_requests": 100}, 100),
    ({"stages": [{"rate_per_s": 2.0, "duration_s": 10}, {"rate_per_s": 5.0, "duration_s": 4}]},
     40),
    ({"arrivals": {"process": "all_at_once"}, "num_requests": 7}, 7),
    ({"arrivals": {"process": "poisson", "rate_per_s": 1.0},
      "shared_prefix": {"num_groups": 3, "prompts_per_group": 5, "system_prompt_tokens": 100,
                        "question_tokens": 10, "output_tokens": 10}}, 15),
    ({"trace": {"path": "azure-conv-2023", "end_s": 60}}, None),
])
def test_the_size_of_a_workload_is_known_before_it_is_drawn(workload, expected) -> None:
    lengths = {} if "shared_prefix" in workload or "trace" in workload else {
        "lengths": {"input": 100, "output": 10}}
    scenario = parse_scenario({**STEADY, "workload": {**workload, **lengths}})
    assert scenario.workload.expected_requests() == expected


def test_a_replay_says_when_its_count_cut_the_trace_short() -> None:
    def replayed(count: int) -> dict:
        spec = {**STEADY, "workload": {"trace": {"path": "azure-conv-2023", "end_s": 120},
                                       "num_requests": count}}
        return run_scenario(parse_scenario(spec)).summary["trace"]

    cut = replayed(100)
    assert cut["requests_replayed"] == 100 and cut["capped_at_num_requests"] == 100
    whole = replayed(100_000)  # the two minutes hold fewer than that
    assert whole["requests_replayed"] < 100_000 and whole["capped_at_num_requests"] is None
