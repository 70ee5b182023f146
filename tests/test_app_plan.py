"""The Plan page: its logic (scenario edits, candidate space, table, Pareto points) and the page
itself driven through Streamlit's AppTest on tiny plans."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml
from streamlit.testing.v1 import AppTest

from sim.config.scenario import parse_scenario
from sim.engine.errors import UserError
from sim.planning.plan import AUTO_TP, Candidate, CandidatePlan, rank

from app import plan_view as pv
from app.examples import example_text
from app.plan_chart import pareto_chart
from app.simulation import scenario_from_yaml

PAGE = str(Path(__file__).resolve().parent.parent / "app" / "views" / "plan.py")


def feasible(gpu: str, dtype: str, usd: float, ttft: float, *, replicas: int = 2,
             tokens_per_usd: float = 1e6, quality: float = 99.5,
             borrowed: bool = False) -> CandidatePlan:
    return CandidatePlan(
        Candidate(gpu, dtype, 1), "ok", replicas=replicas, gpus=replicas, seeds=3,
        seeds_held=3, seeds_held_one_fewer=1, usd_per_hour=usd, monthly_usd=usd * 730,
        output_tokens_per_usd=tokens_per_usd, usd_per_million_output_tokens=1e6 / tokens_per_usd,
        ttft_p95_ms=ttft, ttft_p95_ms_worst=ttft + 10, tpot_p95_ms=20.0, tpot_p95_ms_worst=25.0,
        e2e_p99_ms=5000.0, quality_retention_percent=quality, quality_borrowed=borrowed,
        simulations=8)


HAND_MADE = rank([
    feasible("l40s", "fp8", 9.0, 300.0, tokens_per_usd=3e6),
    feasible("h100-sxm", "fp8", 10.0, 90.0, tokens_per_usd=4e6),
    feasible("h100-sxm", "bf16", 12.0, 200.0, tokens_per_usd=3.5e6, quality=100.0),
    CandidatePlan(Candidate("t4", "bf16", 1), "does_not_fit",
                  "llama-3.1-8b in bf16 needs 15.0 GiB\nsecond line",
                  quality_retention_percent=100.0),
    feasible("a100-80gb", "awq-int4", 9.0, 250.0, borrowed=True, quality=98.9),
])


# --- logic ---------------------------------------------------------------------------------

def test_pareto_mask_keeps_points_no_other_beats_on_both() -> None:
    costs, latencies = [1.0, 2.0, 3.0, 2.0, 0.5], [5.0, 3.0, 4.0, 3.0, 9.0]
    # (3, 4) loses to (2, 3); the two equal (2, 3) points do not beat each other
    assert pv.pareto_mask(costs, latencies) == [True, True, False, True, True]
    costs, values = [1.0, 2.0, 3.0], [3.0, 5.0, 4.0]
    assert pv.pareto_mask(costs, values) == [True, False, False]
    assert pv.pareto_mask(costs, values, higher_is_better=True) == [True, True, False]
    assert pv.pareto_mask([], []) == []


def test_chart_points_mark_the_same_ttft_front_as_the_planner() -> None:
    points = pv.chart_points(HAND_MADE, "ttft")
    feasible_plans = [p for p in HAND_MADE if p.status == "ok"]
    assert points["pareto"].tolist() == [p.pareto for p in feasible_plans]
    # ranked by $/hour, quality breaking the 9.0 tie: l40s fp8 (99.5%) before a100 awq (98.9%)
    assert points["candidate"].tolist() == ["2 × l40s fp8 TP1", "2 × a100-80gb awq-int4 TP1",
                                            "2 × h100-sxm fp8 TP1", "2 × h100-sxm bf16 TP1"]
    assert points["pareto"].tolist() == [False, True, True, False]
    assert points["winner"].tolist() == [True, False, False, False]
    by_tokens = pv.chart_points(HAND_MADE, "tokens_per_usd")
    assert by_tokens["pareto"].tolist() == [True, False, True, False]  # 3M at $9, 4M at $10


def test_plan_table_ranks_the_feasible_and_lists_the_screened_with_reasons() -> None:
    table = pv.plan_table(HAND_MADE)
    assert list(table.columns) == pv.TABLE_COLUMNS
    assert table["GPU"].tolist() == ["l40s", "a100-80gb", "h100-sxm", "h100-sxm"]
    assert table["#"].tolist() == [1, 2, 3, 4]
    first = table.iloc[0]
    assert first["replicas"] == 2 and first["GPUs"] == 2
    assert first["$/hour"] == 9.0 and first["$/month"] == 6570.0
    assert first["p95 TTFT (ms)"] == 310.0  # the worst seed's
    assert first["$/1M output tokens"] == pytest.approx(1 / 3)
    assert first["seeds held"] == "3/3" and first["held with one fewer"] == "1/3"
    assert first["quality kept"] == "99.5%"
    assert table.iloc[1]["quality kept"] == "~98.9%"  # borrowed from other models
    screened = pv.screened_table(HAND_MADE)
    assert screened.to_dict("records") == [{
        "GPU": "t4", "format": "bf16", "TP": 1, "status": "does not fit",
        "quality kept": "100.0%", "why screened out": "llama-3.1-8b in bf16 needs 15.0 GiB"}]
    assert pv.plan_table(HAND_MADE[4:]).empty  # ranked: the screened one comes last


def test_csv_and_winner_yaml() -> None:
    text = example_text(pv.DEFAULT_EXAMPLE)
    planned = pv.planned_yaml(text, ttft_p95_ms=800, tpot_p95_ms=60, e2e_p99_ms=None,
                              rate_per_s=10, window_s=10)
    plans = pv.run_plan(planned, pv.plan_space(["h100-sxm", "t4"], ["bf16"], [1]), (0,))
    csv = pd.read_csv(pd.io.common.StringIO(pv.plan_csv(plans)))
    assert csv["gpu"].tolist() == ["h100-sxm", "t4"]
    assert csv["status"].tolist() == ["ok", "does_not_fit"]
    winner = scenario_from_yaml(pv.winner_yaml(plans))
    assert winner.hardware.gpu == "h100-sxm" and winner.hardware.replicas == plans[0].replicas
    assert pv.winner_yaml(plans[1:]) is None


def test_planned_yaml_writes_targets_rate_and_window() -> None:
    text = example_text(pv.DEFAULT_EXAMPLE)
    out = yaml.safe_load(pv.planned_yaml(text, ttft_p95_ms=500, tpot_p95_ms=None,
                                         e2e_p99_ms=9000, rate_per_s=12.5, window_s=20))
    assert out["slo"] == {"ttft_p95_ms": 500.0, "e2e_p99_ms": 9000.0,  # the empty one dropped
                          "max_rejected_share": 0.01}
    assert out["workload"]["arrivals"]["rate_per_s"] == 12.5
    assert out["workload"]["duration_s"] == 20.0
    sized = example_text("rtx4090-llama3-8b-sharegpt.yaml")  # sized by num_requests
    out = yaml.safe_load(pv.planned_yaml(sized, ttft_p95_ms=1, tpot_p95_ms=None,
                                         e2e_p99_ms=None, rate_per_s=None, window_s=15))
    assert out["workload"]["duration_s"] == 15.0 and "num_requests" not in out["workload"]
    assert out["workload"]["arrivals"]["rate_per_s"] == 10.0  # None keeps the scenario's
    trace = example_text("azure-conv-2023-replay-h100.yaml")
    out = yaml.safe_load(pv.planned_yaml(trace, ttft_p95_ms=1, tpot_p95_ms=None,
                                         e2e_p99_ms=None, rate_per_s=None, window_s=30))
    assert out["workload"]["trace"]["end_s"] == 30.0


def test_prefill_from_scenarios() -> None:
    def fill(name: str) -> pv.Prefill:
        return pv.prefill(scenario_from_yaml(example_text(name)))

    assert fill("plan-chat-8b.yaml") == pv.Prefill(800.0, 60.0, None, 40.0, 30.0)
    staged = fill("mixtral-a100-staged.yaml")
    assert staged.rate_per_s is None and staged.window_s is None
    trace = fill("azure-conv-2023-replay-h100.yaml")
    assert trace.rate_per_s is None and trace.window_s == 30.0


def test_unplannable_scenarios_name_the_fix() -> None:
    fleet = scenario_from_yaml(example_text("fleet-route-classify-to-8b.yaml"))
    with pytest.raises(UserError, match="fleet"):
        pv.check_page_plannable(fleet)
    closed = parse_scenario({
        "model": "llama-3.1-8b", "hardware": {"gpu": "h100-sxm"},
        "workload": {"arrivals": {"process": "closed_loop", "concurrency": 8},
                     "num_requests": 50, "lengths": {"input": 100, "output": 10}}})
    with pytest.raises(UserError, match="rate_per_s"):
        pv.check_page_plannable(closed)
    pv.check_page_plannable(scenario_from_yaml(example_text(pv.DEFAULT_EXAMPLE)))


def test_space_and_tp_choices() -> None:
    assert pv.tp_degrees(["auto"]) == (AUTO_TP,)
    assert pv.tp_degrees(["4", "1"]) == (1, 4)
    for bad in ([], ["auto", "2"]):
        with pytest.raises(UserError):
            pv.tp_degrees(bad)
    with pytest.raises(UserError, match="GPU"):
        pv.plan_space([], ["bf16"], [1])
    space = pv.plan_space(["h100-sxm", "l4"], ["bf16", "fp8"], [1])
    assert [(c.gpu, c.weight_dtype) for c in space] == [
        ("h100-sxm", "bf16"), ("h100-sxm", "fp8"), ("l4", "bf16"), ("l4", "fp8")]
    assert pv.expected_simulations(len(space), 2) == 24
    with pytest.raises(UserError, match="no latency target"):
        pv.check_targets(None, None, None)
    pv.check_targets(None, None, 9000.0)


def test_priced_gpus_follow_the_tier_and_the_scenario_price() -> None:
    chat = scenario_from_yaml(example_text(pv.DEFAULT_EXAMPLE))
    assert {"h100-sxm", "a100-80gb", "l40s", "mi300x"} <= set(pv.priced_gpus(chat))
    assert "rtx-4090" not in pv.priced_gpus(chat)  # no catalog price
    own = scenario_from_yaml(example_text("rtx4090-llama3-8b-sharegpt.yaml"))
    assert pv.priced_gpus(own)[0] == "rtx-4090"  # the scenario prices it
    assert pv.gpu_label(own, "rtx-4090") == "rtx-4090 $0.35 (the scenario's)"
    assert pv.gpu_label(own, "h100-sxm") == "h100-sxm $2.64"
    spot = chat.model_copy(update={"hardware": chat.hardware.model_copy(
        update={"price_tier": "spot"})})
    assert "mi300x" not in pv.priced_gpus(spot)  # on-demand only in the catalog


def test_pareto_chart_has_title_and_axis_units() -> None:
    spec = pareto_chart(pv.chart_points(HAND_MADE, "ttft"), "ttft", 800.0, "t").to_dict()
    encodings = [layer["encoding"] for layer in spec["layer"] if "encoding" in layer]
    assert spec["title"] == "t"
    assert encodings[0]["x"]["title"] == "fleet cost ($/hour)"
    assert encodings[0]["y"]["title"] == "p95 TTFT (ms, median over seeds)"
    assert len(spec["layer"]) == 6  # front, points, winner ring, labels, SLO rule and label


# --- the page ------------------------------------------------------------------------------

def page() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.run()
    assert not at.exception
    return at


def tiny(at: AppTest) -> AppTest:
    """One candidate, one seed, ten seconds of traffic: a plan in about a second."""
    at.multiselect(key="plan_gpus").set_value(["h100-sxm"])
    at.multiselect(key="plan_formats").set_value(["fp8"])
    at.multiselect(key="plan_tp").set_value(["1"])
    at.number_input(key="plan_seeds").set_value(1)
    at.number_input(key="plan_window").set_value(10.0)
    return at.run()


def press(at: AppTest) -> AppTest:
    at.button(key="plan_run").click().run()
    assert not at.exception
    return at


def test_page_renders_with_prefilled_inputs() -> None:
    at = page()
    values = {w.key: w.value for w in at.number_input}
    assert values["plan_ttft"] == 800 and values["plan_tpot"] == 60
    assert values["plan_rate"] == 40 and values["plan_window"] == 30 and values["plan_seeds"] == 2
    assert at.multiselect(key="plan_gpus").value == list(pv.DEFAULT_GPUS)
    assert any("6 candidates × 2 seeds: about 36 simulations" in c.value for c in at.caption)
    assert not at.error and not at.dataframe


def test_button_plans_and_inputs_change_the_answer() -> None:
    at = press(tiny(page()))
    table = at.dataframe[0].value
    assert table["GPU"].tolist() == ["h100-sxm"] and len(at.dataframe) == 1  # none screened
    busy_replicas, busy_cost = table["replicas"][0], table["$/hour"][0]
    assert busy_replicas > 1
    assert at.metric[0].value == f"{busy_replicas} × h100-sxm fp8 TP1"
    assert len(at.get("vega_lite_chart")) == 1
    assert [b.label for b in at.get("download_button")] == [
        "Download the winner's scenario (YAML)", "Download the plan (CSV)"]

    at.number_input(key="plan_rate").set_value(10.0).run()
    assert any("earlier inputs" in i.value for i in at.info)  # shown until planned again
    assert at.dataframe[0].value["replicas"][0] == busy_replicas
    table = press(at).dataframe[0].value
    assert table["replicas"][0] < busy_replicas and table["$/hour"][0] < busy_cost

    # back to the first inputs: the cached plan is replayed (its progress bar included)
    at.number_input(key="plan_rate").set_value(40.0).run()
    assert press(at).dataframe[0].value["replicas"][0] == busy_replicas
    at.number_input(key="plan_rate").set_value(10.0).run()
    table = press(at).dataframe[0].value

    # a TTFT target below what one fp8 H100 can do at 10 requests/s needs a bigger fleet
    before = table["p95 TTFT (ms)"][0]
    at.number_input(key="plan_ttft").set_value(round(before * 0.8)).run()
    after = press(at).dataframe[0].value
    assert after["p95 TTFT (ms)"][0] != before
    assert after["replicas"][0] > table["replicas"][0]


def test_bad_upload_shows_an_error() -> None:
    at = page()
    at.radio(key="plan_source").set_value("upload").run()
    at.file_uploader(key="plan_upload").set_value(
        ("bad.yaml", b"model: [unclosed\nhardware: {", "application/x-yaml")).run()
    assert not at.exception
    assert at.error and "not valid YAML" in at.error[0].value


def test_unplannable_example_and_empty_choices_show_the_fix() -> None:
    at = page()
    at.selectbox(key="plan_example").set_value("fleet-route-classify-to-8b.yaml").run()
    assert not at.exception and "fleet" in at.error[0].value
    at.selectbox(key="plan_example").set_value(pv.DEFAULT_EXAMPLE).run()
    assert not at.error
    at.multiselect(key="plan_gpus").set_value([]).run()
    assert "no GPU tier chosen" in at.error[0].value
    assert at.button(key="plan_run").disabled
    at.multiselect(key="plan_gpus").set_value(["l4"])
    for key in ("plan_ttft", "plan_tpot"):
        at.number_input(key=key).set_value(None)
    at.run()
    assert "no latency target" in at.error[0].value


def test_explore_scenario_is_offered_and_prefills() -> None:
    at = AppTest.from_file(PAGE, default_timeout=120)
    text = example_text(pv.DEFAULT_EXAMPLE).replace("rate_per_s: 40", "rate_per_s: 12")
    at.session_state["explore_scenario_yaml"] = text
    at.run()
    at.radio(key="plan_source").set_value("explore").run()
    assert not at.exception
    assert at.number_input(key="plan_rate").value == 12


def test_candidates_that_cannot_work_are_listed_with_the_reason() -> None:
    at = tiny(page())
    at.multiselect(key="plan_gpus").set_value(["t4"])
    at.multiselect(key="plan_formats").set_value(["bf16"])
    press(at.run())
    assert at.warning and "No candidate holds the targets" in at.warning[0].value
    assert len(at.dataframe) == 1  # no ranked table, only the screened one
    screened = at.dataframe[0].value
    assert screened["GPU"].tolist() == ["t4"] and screened["status"].tolist() == ["does not fit"]
    assert "GiB" in screened["why screened out"][0]
    assert [b.label for b in at.get("download_button")] == ["Download the plan (CSV)"]


def test_a_runaway_rate_is_refused_before_planning_with_its_size() -> None:
    at = page()
    at.number_input(key="plan_rate").set_value(1_000_000.0).run()
    assert not at.exception
    [error] = [e.value for e in at.error]
    assert "about 30,000,000 requests (1,000,000 requests/s × 30 s)" in error
    assert "more than the 1,000,000 one run of this app may simulate" in error


def test_the_plan_ranks_by_cost_and_its_token_costs_agree() -> None:
    """Billed over the arrival window, a cheaper fleet per hour is also cheaper per token at
    the same load (the drain no longer makes a faster fleet look dearer)."""
    at = press(tiny(page()))
    at.multiselect(key="plan_gpus").set_value(["h100-sxm", "a100-80gb"]).run()
    table = press(at).dataframe[0].value
    feasible = table.dropna(subset=["$/hour"])
    assert len(feasible) == 2
    by_hour = feasible.sort_values("$/hour")["GPU"].tolist()
    by_token = feasible.sort_values("$/1M output tokens")["GPU"].tolist()
    assert by_hour == by_token


def test_a_link_asks_the_same_planning_question_and_a_bad_value_is_named() -> None:
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.query_params.update({"example": "plan-chat-8b.yaml", "ttft_p95_ms": "500",
                            "rate_per_s": "12", "gpus": "h100-sxm,l4", "formats": "fp8",
                            "tp": "1", "seeds": "1", "window_s": "abc"})
    at.run()
    assert not at.exception
    assert at.number_input(key="plan_ttft").value == 500.0
    assert at.number_input(key="plan_rate").value == 12.0
    assert at.multiselect(key="plan_gpus").value == ["h100-sxm", "l4"]
    assert at.multiselect(key="plan_tp").value == ["1"]
    [warning] = [w.value for w in at.warning if "address were not used" in w.value]
    assert "window_s: not a number (got 'abc')" in warning
    query = {k: (v[0] if isinstance(v, list) else v) for k, v in at.query_params.items()}
    assert query["gpus"] == "h100-sxm,l4" and query["rate_per_s"] == "12"
