"""The Explore page and the modules behind it: the settings -> scenario mapping, the run's
chart frames, the figure formatting, and the page itself through Streamlit's AppTest."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from app.explore_form import WORKLOADS, ExploreInputs, scenario_document
from app.run_figures import Figure, format_value, profile_lines, slo_lines
from app.simulation import TIMELINE_BUCKETS, _integral_to, scenario_from_yaml, simulate
from sim.config.scenario import parse_scenario
from sim.engine.errors import ScenarioError

ROOT = Path(__file__).resolve().parent.parent
PAGE = str(ROOT / "app" / "views" / "explore.py")


def small(**changes) -> ExploreInputs:
    return dataclasses.replace(ExploreInputs(duration_s=60.0), **changes)


# --- settings -> scenario -------------------------------------------------------------------

@pytest.mark.parametrize("workload", WORKLOADS)
def test_every_workload_choice_makes_a_valid_scenario(workload):
    scenario = parse_scenario(scenario_document(small(workload=workload)))
    assert scenario.model == "llama-3.1-8b"
    assert (scenario.workload.trace is not None) == workload.endswith("trace")


def test_request_level_batching_gets_batch_keys_and_no_token_budget():
    engine = scenario_document(small(scheduler="dynamic", static_batch_size=16,
                                     batch_timeout_ms=20.0))["engine"]
    assert engine["static_batch_size"] == 16 and engine["batch_timeout_ms"] == 20.0
    assert "max_num_seqs" not in engine


def test_token_budget_is_raised_to_cover_every_sequence():
    engine = scenario_document(small(max_num_seqs=1024, max_num_batched_tokens=512))["engine"]
    assert engine["max_num_batched_tokens"] == 1024  # vLLM needs a token per running sequence


def test_gateway_only_when_it_has_a_window_and_burstiness_picks_gamma():
    assert "gateway" not in scenario_document(small())
    doc = scenario_document(small(gateway_window_ms=20.0, gateway_max_batch=8,
                                  burstiness_cv=3.0))
    assert doc["gateway"] == {"window_ms": 20.0, "max_batch": 8}
    assert doc["workload"]["arrivals"] == {"process": "gamma", "rate_per_s": 8.0, "cv": 3.0}


def test_shared_prefix_has_enough_prompts_for_the_window():
    doc = scenario_document(small(workload="shared system prompt", rate_per_s=10.0,
                                  prefix_groups=4))
    spec = doc["workload"]["shared_prefix"]
    assert spec["num_groups"] * spec["prompts_per_group"] >= 10.0 * 60.0


# --- the run's frames -----------------------------------------------------------------------

def test_integral_of_intervals_is_exact():
    # [0, 2) at level 3 and [1, 4) at level 1, measured at 0..5
    points = np.arange(6, dtype=float)
    got = _integral_to(points, np.array([0.0, 1.0]), np.array([2.0, 4.0]), np.array([3.0, 1.0]))
    assert got.tolist() == [0.0, 3.0, 7.0, 8.0, 9.0, 9.0]


@pytest.fixture(scope="module")
def chat_run():
    return simulate(parse_scenario(scenario_document(small())))


def test_timeline_counts_every_request_once(chat_run):
    width = chat_run.timeline["time_s"].iloc[0] * 2
    assert len(chat_run.timeline) == TIMELINE_BUCKETS
    assert (chat_run.timeline["arrivals_per_s"] * width).sum() == pytest.approx(
        len(chat_run.records))


def test_timeline_shares_are_shares_and_batches_respect_the_limit(chat_run):
    timeline = chat_run.timeline
    assert timeline["kv_used_share"].between(0, 1).all()
    assert timeline["kv_used_share"].max() > 0
    batch = timeline["batch_size"].dropna()
    assert (batch > 0).all() and (batch <= 256).all()


def test_cdf_is_monotone_and_matches_the_summary(chat_run):
    cdf = chat_run.cdf
    assert set(cdf["metric"]) == {"TTFT", "TPOT", "E2E"}
    for _, part in cdf.groupby("metric"):
        assert part["latency_ms"].is_monotonic_increasing
    ttft = cdf[cdf["metric"] == "TTFT"]
    assert ttft["latency_ms"].max() == pytest.approx(
        chat_run.records["ttft_ms"].max())
    assert np.quantile(chat_run.records["ttft_ms"].dropna(), 0.5) == pytest.approx(
        chat_run.summary["ttft_ms"]["p50"])


def test_bad_yaml_is_a_scenario_error_naming_the_problem():
    with pytest.raises(ScenarioError, match="not valid YAML"):
        scenario_from_yaml("model: [unclosed")
    with pytest.raises(ScenarioError, match="hardware"):
        scenario_from_yaml("model: llama-3.1-8b\nhardware: {gpu: h100-sxm, replicas: 0}\n")


# --- figures --------------------------------------------------------------------------------

@pytest.mark.parametrize("value, unit, text", [
    (95.54, "ms", "95.5 ms"), (293.2, "ms", "293 ms"), (28_953, "ms", "29.0 s"),
    (2.64, "usd", "$2.64"), (0.04013, "usd", "$0.0401"), (1927.2, "usd_month", "$1,927"),
    (0.539, "percent", "53.9 %"), (18_354, "tok/s", "18.4k"),
    (4_550_184, "tok/usd", "4.55M"), (7_057.4, "tok/s", "7.06k"),
    (950.2, "tok/s", "950"), (None, "ms", "–"),
])
def test_values_are_printed_with_units_and_sensible_precision(value, unit, text):
    assert format_value(value, unit) == text


def test_changes_are_relative_or_in_points():
    assert Figure("TTFT p95", 150.0, "ms", "lower").change_text(300.0) == "-50.0 %"
    assert Figure("KV", 0.6, "percent").change_text(0.5) == "+10.0 pts"
    assert Figure("KV", 0.5001, "percent").change_text(0.5) is None  # below the shown precision
    assert Figure("x", 1.0, "ms").change_text(1.0) is None
    assert Figure("x", 1.0, "ms").change_text(None) is None


def test_slo_lines_and_profile_line(chat_run):
    lines = slo_lines(chat_run.summary)
    assert [met for _, met in lines] == [True, True, True]
    assert lines[0][0].startswith("p95 TTFT") and "800 ms" in lines[0][0]
    assert lines[2][0] == "0.0 % of requests rejected or unfinished vs at most 1 %"
    assert "not calibrated" in profile_lines(chat_run.summary)[0]


# --- the page -------------------------------------------------------------------------------

def _page() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    return at.number_input(key="explore_duration").set_value(60.0).run()  # a quicker run


def _metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_page_renders_numbers_and_the_profile_behind_them():
    at = _page()
    assert not at.exception
    assert _metric(at, "TTFT p95").endswith("ms")
    assert _metric(at, "Fleet $/hour") == "$2.64"
    assert any("latency profile" in info.value for info in at.info)
    assert len(at.get("download_button")) == 1
    assert scenario_from_yaml(at.session_state["explore_scenario_yaml"]).model == "llama-3.1-8b"


def test_changing_the_rate_and_the_gpu_changes_the_numbers():
    at = _page()
    ttft = _metric(at, "TTFT p95")
    at.number_input(key="explore_rate").set_value(2.0).run()
    assert not at.exception
    assert _metric(at, "TTFT p95") != ttft
    changed = next(m for m in at.metric if m.label == "TTFT p95")
    assert changed.delta.startswith("-")  # less load, shorter waits, shown against the last run
    at.selectbox(key="explore_gpu").set_value("a100-80gb").run()
    assert _metric(at, "Fleet $/hour") != "$2.64"


def test_a_scenario_that_cannot_run_shows_an_error_not_a_traceback():
    at = _page()
    at.selectbox(key="explore_model").set_value("llama-3.1-70b").run()
    at.selectbox(key="explore_gpu").set_value("l4").run()
    assert not at.exception
    assert at.error and "cannot run" in at.error[0].value


def test_uploading_a_scenario_file_runs_it_and_a_bad_one_shows_an_error():
    at = _page()
    at.radio(key="explore_source").set_value("a scenario file").run()
    at.file_uploader(key="explore_upload").set_value(
        ("broken.yaml", b"engine: {max_num_seqs: -1}\n", "application/x-yaml")).run()
    assert not at.exception
    assert any("broken.yaml" in e.value for e in at.error)

    fleet = (ROOT / "examples" / "fleet-route-classify-to-8b.yaml").read_bytes()
    at.file_uploader(key="explore_upload").set_value(
        ("fleet.yaml", fleet, "application/x-yaml")).run()
    assert not at.exception
    assert not at.error
    assert "Pool **small**" in " ".join(info.value for info in at.info)

    at.file_uploader(key="explore_upload").set_value(
        ("junk.yaml", bytes(range(256)), "application/x-yaml")).run()
    assert any("not UTF-8" in e.value for e in at.error)


def test_an_uploaded_trace_is_replayed_and_a_bad_one_is_named():
    at = _page()
    at.selectbox(key="explore_workload").set_value("uploaded trace").run()
    assert not at.exception
    assert any("Upload a trace file" in info.value for info in at.info)

    rows = "".join(f"2023-11-16 18:15:{i:02d}.0,{200 + i},{20 + i}\n" for i in range(40))
    good = ("TIMESTAMP,ContextTokens,GeneratedTokens\n" + rows).encode()
    at.file_uploader(key="explore_trace_upload").set_value(("mine.csv", good, "text/csv")).run()
    assert not at.exception and not at.error
    assert any("40 of 40 requests" in m.value for m in at.markdown)

    at.file_uploader(key="explore_trace_upload").set_value(("empty.csv", b"", "text/csv")).run()
    assert not at.exception
    assert any("empty.csv" in e.value for e in at.error)


def test_lognormal_lengths_follow_their_means():
    short = simulate(parse_scenario(scenario_document(small(
        workload="my own lengths (lognormal)", input_mean_tokens=200, output_mean_tokens=50))))
    long = simulate(parse_scenario(scenario_document(small(
        workload="my own lengths (lognormal)", input_mean_tokens=2000, output_mean_tokens=50))))
    assert short.records["prompt_tokens"].mean() == pytest.approx(200, rel=0.2)
    assert long.records["prompt_tokens"].mean() == pytest.approx(2000, rel=0.2)
    assert long.summary["ttft_ms"]["p50"] > short.summary["ttft_ms"]["p50"]


# --- honest verdicts, overload and billing (the page as a planner sees it) -------------------

HONEST = {
    "name": "honest", "model": "llama-3.1-8b", "hardware": {"gpu": "h100-sxm"},
    "slo": {"ttft_p95_ms": 1000, "tpot_p95_ms": 50},
    "workload": {"arrivals": {"process": "constant", "rate_per_s": 2.0}, "num_requests": 60,
                 "lengths": {"input": {"dist": "uniform", "min": 50, "max": 2_000},
                             "output": 50}},
}


def _explore(scenario: dict) -> AppTest:
    import yaml

    at = AppTest.from_file(PAGE, default_timeout=180)
    at.session_state["explore_source"] = "a scenario file"
    at.session_state["explore_yaml"] = yaml.safe_dump(scenario, sort_keys=False)
    return at.run()


def test_most_requests_rejected_is_a_missed_slo_not_a_green_banner():
    at = _explore(HONEST | {"engine": {"max_model_len": 256}})
    assert not at.exception
    assert not [s for s in at.success if s.value.startswith("SLO met")]
    [missed] = [e.value for e in at.error if e.value.startswith("SLO missed")]
    assert "of requests rejected or unfinished > 1 %" in missed


def test_a_served_load_is_met_and_its_bill_leaves_out_the_drain():
    at = _explore(HONEST)
    assert not at.exception and not at.error
    assert [s.value for s in at.success][0].startswith("SLO met")
    [note] = [c.value for c in at.caption if c.value.startswith("Billed for")]
    assert "(arrival window)" in note and "lag, not billed" in note


def test_an_overloaded_run_gets_a_banner_and_no_deltas():
    heavy = HONEST | {"workload": HONEST["workload"] | {
        "arrivals": {"process": "constant", "rate_per_s": 400.0}, "num_requests": 3_000,
        "lengths": {"input": 2_000, "output": 400}}}
    at = _explore(HONEST)
    import yaml

    at.text_area(key="explore_yaml").set_value(yaml.safe_dump(heavy, sort_keys=False)).run()
    assert not at.exception
    assert any(e.value.startswith("Overloaded: the fleet did not keep up") for e in at.error)
    assert all(m.delta in (None, "") for m in at.metric)  # no "+2,381,558 %"
    assert any(c.value.startswith("No changes from the previous setting") for c in at.caption)


def test_a_runaway_run_is_refused_before_any_work_with_its_size():
    huge = HONEST | {"workload": HONEST["workload"] | {
        "arrivals": {"process": "poisson", "rate_per_s": 10_000.0}, "duration_s": 300,
        "num_requests": None}}
    huge["workload"] = {k: v for k, v in huge["workload"].items() if v is not None}
    at = _explore(huge)
    assert not at.exception
    [error] = [e.value for e in at.error]
    assert "about 3,000,000 requests (10,000 requests/s × 300 s)" in error
    assert "more than the 1,000,000 one run of this app may simulate" in error
    assert not at.metric  # nothing stale is shown under the refusal


def test_the_cap_is_configurable_and_a_bad_setting_keeps_the_default(monkeypatch):
    from app.simulation import check_run_size, max_requests, size_text

    scenario = parse_scenario(HONEST)
    assert size_text(scenario) == "about 60 requests, ~1 s"
    monkeypatch.setenv("SERVESIM_APP_MAX_REQUESTS", "50")
    assert max_requests() == 50
    with pytest.raises(ScenarioError, match="about 60 requests"):
        check_run_size(scenario)
    monkeypatch.setenv("SERVESIM_APP_MAX_REQUESTS", "lots")
    assert max_requests() == 1_000_000


def test_a_price_typed_in_flows_into_every_cost_with_its_source():
    at = _page()
    at.number_input(key="explore_own_price").set_value(1.5).run()
    assert not at.exception
    assert _metric(at, "Fleet $/hour") == "$1.50"
    assert any(c.value == "Price: $1.50 per GPU-hour, your own (hardware.price_usd_per_hour)."
               for c in at.caption)
    at.number_input(key="explore_own_price").set_value(0.0).run()
    at.selectbox(key="explore_price_tier").set_value("reserved").run()
    at.slider(key="explore_reserved_discount").set_value(0.5).run()
    assert not at.exception
    [note] = [c.value for c in at.caption if c.value.startswith("Price: ")]
    assert "reserved (50 % off on-demand)" in note and "as of" in note
    on_demand = float(note.split("$")[1].split()[0])
    at.selectbox(key="explore_price_tier").set_value("on_demand").run()
    [note] = [c.value for c in at.caption if c.value.startswith("Price: ")]
    assert float(note.split("$")[1].split()[0]) == pytest.approx(2 * on_demand, abs=0.01)


# --- state that survives: the address and other pages ------------------------------------

MAIN = str(ROOT / "app" / "main.py")


def test_a_link_reproduces_the_setup_and_a_bad_value_is_named():
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.query_params.update({"gpu": "a100-80gb", "rate_per_s": "3.5", "duration_s": "60",
                            "replicas": "abc", "workload": "nonsense"})
    at.run()
    assert not at.exception
    assert at.selectbox(key="explore_gpu").value == "a100-80gb"
    assert at.number_input(key="explore_rate").value == 3.5
    [warning] = [w.value for w in at.warning if "address were not used" in w.value]
    assert "replicas: not a number (got 'abc')" in warning
    assert "workload: not one of" in warning
    assert "a100-80gb" in at.markdown[0].value or any("a100-80gb" in m.value for m in at.markdown)
    # the page writes its settings back: what differs from the defaults
    assert at.query_params["gpu"] in ("a100-80gb", ["a100-80gb"])
    at.number_input(key="explore_rate").set_value(4.0).run()
    assert at.query_params["rate_per_s"] in ("4.0", ["4.0"])


def test_settings_survive_a_visit_to_another_page():
    at = AppTest.from_file(MAIN, default_timeout=180).run()
    at.number_input(key="explore_duration").set_value(60.0).run()
    at.number_input(key="explore_rate").set_value(3.0).run()
    assert not at.exception
    at.switch_page("views/compare.py").run()
    assert not at.exception
    at.switch_page("views/explore.py").run()
    assert not at.exception
    assert at.number_input(key="explore_rate").value == 3.0
    assert at.number_input(key="explore_duration").value == 60.0


def test_a_rate_too_large_for_the_app_hides_the_old_results_and_says_why():
    at = _page()
    assert at.metric  # a first result on screen
    at.number_input(key="explore_rate").set_value(50_000.0).run()
    assert not at.exception
    [error] = [e.value for e in at.error]
    assert "about 3,000,000 requests (50,000 requests/s × 60 s)" in error
    assert not at.metric  # no stale figures under the refusal


def test_a_setup_saved_by_name_loads_again_later_in_the_session():
    at = _page()
    at.number_input(key="explore_rate").set_value(3.0).run()
    at.text_input(key="explore_save_name").input("three per second").run()
    at.button(key="explore_save_button").click().run()
    assert "three per second" in at.session_state["saved_setups"]
    saved = at.session_state["saved_setups"]["three per second"]
    at.number_input(key="explore_rate").set_value(6.0).run()  # move on
    at.radio(key="explore_source").set_value("a scenario file").run()
    at.selectbox(key="explore_saved_choice").set_value("three per second").run()
    at.button(key="explore_load_button").click().run()
    assert not at.exception
    assert at.text_area(key="explore_yaml").value == saved
    assert "rate_per_s: 3.0" in saved


def test_an_overloaded_runs_latency_over_time_is_drawn_on_a_log_scale():
    from app import run_charts

    steady = pd.DataFrame({"time_s": [0.0, 1.0, 2.0], "ttft_p50_ms": [40.0, 42.0, 41.0],
                           "ttft_p95_ms": [80.0, 90.0, 85.0]})
    growing = steady.assign(ttft_p95_ms=[80.0, 90_000.0, 8_000_000.0])
    axis = lambda frame: run_charts.latency_over_time(frame, "ttft").to_dict()["encoding"]["y"]
    assert "scale" not in axis(steady) and axis(steady)["title"] == "TTFT (ms)"
    assert axis(growing)["scale"] == {"type": "log"}
    assert axis(growing)["title"] == "TTFT (ms, log scale)"
