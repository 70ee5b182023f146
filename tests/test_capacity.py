"""`servesim capacity`: the highest rate that holds, checked by re-running the loads around it,
the band from the latency error band, and clear refusals."""

from __future__ import annotations


import json
from pathlib import Path

import pytest
import yaml

from sim.commands.cli import main
from sim.config.scenario import parse_scenario
from sim.engine.errors import UserError
from sim.planning import capacity as cap
from sim.planning.capacity import find_capacity, scaled_scenario
from sim.results.saturation import MAX_BACKLOG_SHARE, backlog_share
from sim.runner.run import run_scenario
from tests.helpers import banded_profile

# llama-3.1-8b on one H100 with a small batch limit: it saturates near 70 requests/s, so a
# search from 60 needs few doublings and every run is a few hundred short requests
SCENARIO = {
    "name": "short-chat",
    "seed": 3,
    "model": "llama-3.1-8b",
    "hardware": {"gpu": "h100-sxm"},
    "engine": {"max_num_seqs": 32},
    "workload": {
        "arrivals": {"process": "poisson", "rate_per_s": 60},
        "duration_s": 4,
        "lengths": {"input": {"dist": "uniform", "min": 100, "max": 400},
                    "output": {"dist": "uniform", "min": 20, "max": 80}},
    },
    "slo": {"ttft_p95_ms": 300, "tpot_p95_ms": 40},
}


def with_(**changes: object) -> dict:
    return {**SCENARIO, **changes}


def holds(data: dict, scale: float) -> bool:
    """The SLO verdict of the load at ``scale``, re-run outside the search."""
    scenario = parse_scenario(data)
    outcome = run_scenario(scaled_scenario(scenario, scale, 0) if scale != 1 else scenario)
    summary = outcome.summary
    slo = summary["slo"]
    met = all(slo[k] is not False for k in ("ttft_p95_met", "tpot_p95_met", "e2e_p99_met")
              if k in slo)
    return (met and summary["requests"]["rejected"] <= 0.01 * summary["requests"]["arrived"]
            and backlog_share(outcome.result.records) <= MAX_BACKLOG_SHARE)


def test_the_rate_found_holds_and_ten_percent_more_does_not() -> None:
    result = find_capacity(parse_scenario(SCENARIO))
    scale = result.max_rate_per_s / 60
    assert result.limited_by == "ttft_p95"
    assert holds(SCENARIO, scale)
    assert not holds(SCENARIO, 1.1 * scale)
    failed = min(c.scale for c in result.checked if not c.holds(result.scenario, "predicted"))
    assert failed - scale <= cap.PRECISION * scale  # bisected to 2 %
    assert len(result.checked) <= cap.MAX_SIMULATIONS


def test_a_loose_tpot_target_is_limited_by_throughput_which_more_sequences_raise() -> None:
    # TPOT alone never sees the queue; keeping up does, and a larger batch serves more
    slo = {"tpot_p95_ms": 100}
    small = find_capacity(parse_scenario(with_(slo=slo, engine={"max_num_seqs": 8})))
    large = find_capacity(parse_scenario(with_(slo=slo, engine={"max_num_seqs": 64})))
    assert small.limited_by == large.limited_by == "backlog"
    assert large.max_rate_per_s > 1.5 * small.max_rate_per_s


def test_the_band_brackets_the_rate(tmp_path: Path) -> None:
    engine = {"max_num_seqs": 32, "latency_profile": str(banded_profile(tmp_path))}
    report = find_capacity(parse_scenario(with_(engine=engine))).to_json()
    band = report["band"]
    assert band["low"] <= report["max_rate_per_s"] <= band["high"]
    assert band["low"] < band["high"]
    assert report["band_basis"] == "test band"
    slow = [c for c in report["checked"] if c["holds"] and not c["holds_pessimistic"]]
    assert slow  # a load the predicted figures pass and the slow end of the band does not


def test_without_a_band_the_report_says_why_and_invents_none(capsys) -> None:
    engine = {"max_num_seqs": 32, "latency_profile": "roofline"}
    report = find_capacity(parse_scenario(with_(engine=engine))).to_json()
    assert report["band"] is None
    assert "no error band" in report["band_basis"]
    assert all("holds_pessimistic" not in c for c in report["checked"])


def test_json_output_and_one_progress_line_per_simulation(tmp_path: Path, capsys) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(SCENARIO))
    assert main(["capacity", str(path), "--format", "json"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["scenario"] == "short-chat"
    assert report["slo"] == {"ttft_p95_ms": 300, "tpot_p95_ms": 40, "max_rejected_share": 0.01}
    assert report["simulations"] == len(report["checked"])
    progress = [line for line in captured.err.splitlines() if line.startswith("capacity: ")]
    assert len(progress) == report["simulations"]
    assert any("holds (p95 TTFT" in line for line in progress)
    rates = [c["rate_per_s"] for c in report["checked"]]
    assert rates == sorted(rates) and 60 in rates
    assert set(report["checked"][0]) >= {"rate_per_s", "holds", "ttft_p95_ms", "tpot_p95_ms",
                                         "e2e_p99_ms", "rejected_share"}


def test_the_table_names_the_rate_and_what_limits_it(tmp_path: Path, capsys) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(SCENARIO))
    # the hand-set roofline carries no error band
    assert main(["capacity", str(path), "--set", "slo.ttft_p95_ms=250",
                 "--set", "engine.latency_profile=roofline"]) == 0
    out = capsys.readouterr().out
    assert "max rate:" in out and "limited by p95 TTFT" in out
    assert "band: none" in out


def test_a_target_below_one_prefill_holds_at_no_load() -> None:
    result = find_capacity(parse_scenario(with_(slo={"ttft_p95_ms": 5})))
    assert result.max_rate_per_s is None
    assert "cannot meet the SLO at any load" in result.message
    assert min(c.scale for c in result.checked) == cap.MIN_SCALE


def test_a_scenario_without_slo_is_refused(tmp_path: Path, capsys) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(with_(slo={})))
    assert main(["capacity", str(path)]) == 2
    assert "capacity needs at least one SLO" in capsys.readouterr().err


def test_a_closed_loop_workload_has_no_rate_to_scale() -> None:
    workload = {**SCENARIO["workload"], "arrivals": {"process": "closed_loop", "concurrency": 8},
                "num_requests": 100}
    del workload["duration_s"]
    with pytest.raises(UserError, match="closed-loop workload has none"):
        find_capacity(parse_scenario(with_(workload=workload)))


# ---- scaling the load, without simulating ------------------------------------------------------


def test_stages_scale_together_and_stretch_below_the_scenario_rate() -> None:
    workload = {**SCENARIO["workload"], "stages": [{"rate_per_s": 2, "duration_s": 10},
                                                   {"rate_per_s": 6, "duration_s": 20}]}
    del workload["duration_s"]
    workload["arrivals"] = {"process": "poisson"}
    base = parse_scenario(with_(workload=workload))
    up = scaled_scenario(base, 4, 100).workload
    assert [(s.rate_per_s, s.duration_s) for s in up.stages] == [(8, 10), (24, 20)]
    assert up.num_requests == cap.MAX_REQUESTS  # the duration bounds it, and so does the cap
    down = scaled_scenario(base, 0.5, 100).workload
    assert [(s.rate_per_s, s.duration_s) for s in down.stages] == [(1, 20), (3, 40)]


def test_a_request_count_scales_with_the_rate_within_bounds() -> None:
    workload = {**SCENARIO["workload"], "num_requests": 300}
    del workload["duration_s"]
    base = parse_scenario(with_(workload=workload))
    assert scaled_scenario(base, 2, 300).workload.num_requests == 600  # the same span
    assert scaled_scenario(base, 0.25, 300).workload.num_requests == 300  # never fewer
    assert scaled_scenario(base, 1000, 300).workload.num_requests == cap.MAX_REQUESTS


def test_a_trace_is_replayed_on_a_faster_clock() -> None:
    data = with_(workload={"trace": {"path": "azure-conv-2023", "time_scale": 2.0}})
    assert scaled_scenario(parse_scenario(data), 4, 0).workload.trace.time_scale == 0.5


def test_run_adds_the_capacity_to_its_summary(tmp_path: Path, capsys) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(SCENARIO))
    assert main(["run", str(path), "--capacity", "--format", "json", "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out)
    alone = find_capacity(parse_scenario(SCENARIO)).to_json()
    assert summary["capacity"]["max_rate_per_s"] == alone["max_rate_per_s"]
    assert summary["capacity"]["band"] == alone["band"]
    assert "checked" not in summary["capacity"]
    assert main(["run", str(path), "--capacity", "--no-progress"]) == 0
    assert f"capacity   {alone['max_rate_per_s']:,.2f} requests/s within the SLO" in \
        capsys.readouterr().out
