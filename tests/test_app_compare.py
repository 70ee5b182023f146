"""The Compare page: scenarios side by side, latency against load, cost at equal SLO and the
before/after report."""

from __future__ import annotations

import io
import math
import zipfile
from pathlib import Path

import pandas as pd
import pytest
import yaml
from streamlit.testing.v1 import AppTest

from app import compare_inputs as inputs
from app.before_after_report import PNG_SIGNATURE, build_report
from app.compare_figures import (Column, figure_frame, figure_rows, format_value, recommendation,
                                 seed_lines)
from app.rate_curve import (best_at_slo, curve_frame, measured_rate, plan_sweep, point_row,
                            sweep_multipliers)
from sim.config.scenario import parse_scenario
from sim.engine.errors import ScenarioError

PAGE = str(Path(__file__).resolve().parent.parent / "app" / "views" / "compare.py")
SLO = inputs.SloTarget(ttft_p95_ms=800.0, tpot_p95_ms=60.0)

CHAT = {
    "name": "chat", "model": "llama-3.1-8b", "hardware": {"gpu": "h100-sxm"},
    "workload": {"arrivals": {"process": "poisson", "rate_per_s": 4.0}, "num_requests": 50,
                 "lengths": {"input": 256, "output": 64}},
}


def page(**state) -> AppTest:
    """The page with short runs and a three-point sweep, so each test stays quick."""
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.session_state["compare_duration"] = 10.0
    at.session_state["compare_sweep_points"] = 3
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    assert not at.exception
    return at


def figures(at: AppTest) -> pd.DataFrame:
    return at.dataframe[0].value.set_index("figure")


def errors(at: AppTest) -> str:
    return "\n".join(str(e.value) for e in at.error)


def summary(ttft_p95: float, tpot_p95: float, usd_per_hour: float = 2.0,
            tokens_per_s: float = 1000.0, quality: float = 100.0) -> dict:
    """A run summary with the figures the page reads, made by hand."""
    return {
        "model": "llama-3.1-8b", "gpu": "h100-sxm", "tensor_parallel": 1, "replicas": 1,
        "weight_dtype": "bf16", "engine": {"scheduler": "continuous"},
        "latency_profile": {"name": "default-roofline", "source": "hand-set factors"},
        "requests": {"arrived": 100, "completed": 100, "rejected": 0},
        "ttft_ms": {"p50": ttft_p95 / 2, "p95": ttft_p95}, "tpot_ms": {"p50": tpot_p95 / 2,
                                                                    "p95": tpot_p95},
        "e2e_ms": {"p95": 3000.0, "p99": 4000.0},
        "throughput": {"requests_per_s": 5.0, "input_tokens_per_s": tokens_per_s * 3,
                       "output_tokens_per_s": tokens_per_s},
        "cost": {"gpus": 1, "usd_per_gpu_hour": usd_per_hour, "usd_per_hour": usd_per_hour,
                 "usd_per_million_tokens": usd_per_hour / (tokens_per_s * 4 * 3600) * 1e6,
                 "usd_per_million_output_tokens": usd_per_hour / (tokens_per_s * 3600) * 1e6,
                 "output_tokens_per_usd": tokens_per_s * 3600 / usd_per_hour,
                 "monthly_usd": usd_per_hour * 730, "price_tier": "on_demand",
                 "price_source": "a price table", "price_as_of": "2026-11"},
        "quality": {"llama-3.1-8b": {"model": "llama-3.1-8b", "weight_dtype": "bf16",
                                     "percent": quality, "basis": "reference", "source": ""}},
        "quality_retention_percent": quality,
    }


# ---------------------------------------------------------------- building the scenarios

def test_override_lines_skip_comments_and_name_a_bad_line():
    assert inputs.override_lines("# fp8\nengine.weight_dtype=fp8\n\n hardware.gpu=l4 ") == [
        "engine.weight_dtype=fp8", "hardware.gpu=l4"]
    with pytest.raises(ScenarioError, match=r"line 2 'nonsense'"):
        inputs.override_lines("engine.weight_dtype=fp8\nnonsense")
    with pytest.raises(ScenarioError, match="'gpu=l4'"):
        inputs.override_lines("gpu=l4")  # a key needs its section


def test_apply_change_sets_values_and_names_invalid_overrides():
    changed = inputs.apply_change(CHAT, "engine.weight_dtype=fp8\nhardware.replicas=2")
    assert changed["engine"] == {"weight_dtype": "fp8"}
    assert changed["hardware"] == {"gpu": "h100-sxm", "replicas": 2}
    assert "engine" not in CHAT  # the baseline is left alone
    with pytest.raises(ScenarioError, match="engine.max_num_seqs.*engine.max_num_seqs=-1"):
        inputs.apply_change(CHAT, "engine.max_num_seqs=-1")


def test_a_change_of_gpu_flags_settings_pinned_to_the_old_one():
    pinned = {**CHAT, "hardware": {"gpu": "rtx-4090", "price_usd_per_hour": 0.35},
              "engine": {"num_gpu_blocks": 2588}}
    moved = inputs.apply_change(pinned, "hardware.gpu=a100-80gb")
    assert inputs.kept_for_another_gpu(pinned, moved) == ["hardware.price_usd_per_hour",
                                                          "engine.num_gpu_blocks"]
    fixed = inputs.apply_change(pinned, "hardware.gpu=a100-80gb\nengine.num_gpu_blocks=null\n"
                                        "hardware.price_usd_per_hour=1.2")
    assert inputs.kept_for_another_gpu(pinned, fixed) == []
    same_gpu = inputs.apply_change(pinned, "engine.weight_dtype=fp8")
    assert inputs.kept_for_another_gpu(pinned, same_gpu) == []


def test_load_knob_and_with_load_for_each_kind_of_load():
    knob = inputs.load_knob(parse_scenario(CHAT))
    assert (knob.kind, knob.value) == ("rate", 4.0)
    assert inputs.with_load(CHAT, "rate", 9)["workload"]["arrivals"]["rate_per_s"] == 9.0

    staged = {**CHAT, "workload": {"stages": [{"rate_per_s": 2, "duration_s": 10},
                                              {"rate_per_s": 6, "duration_s": 30}],
                                   "lengths": CHAT["workload"]["lengths"]}}
    assert inputs.load_knob(parse_scenario(staged)).kind == "stages"
    doubled = inputs.with_load(staged, "stages", 2.0)
    assert [s["rate_per_s"] for s in doubled["workload"]["stages"]] == [4.0, 12.0]
    assert inputs.nominal_rate(parse_scenario(doubled)) == pytest.approx((4 * 10 + 12 * 30) / 40)

    trace = {**CHAT, "workload": {"trace": {"path": "azure-conv-2023", "rate_scale": 2.0}}}
    assert inputs.load_knob(parse_scenario(trace)).value == 2.0
    assert inputs.nominal_rate(parse_scenario(trace)) is None

    closed = {**CHAT, "workload": {"arrivals": {"process": "closed_loop", "concurrency": 8},
                                   "num_requests": 40, "lengths": CHAT["workload"]["lengths"]}}
    knob = inputs.load_knob(parse_scenario(closed))
    assert (knob.kind, knob.value, knob.integer) == ("concurrency", 8.0, True)
    assert inputs.with_load(closed, "concurrency", 2.6)["workload"]["arrivals"]["concurrency"] == 3

    at_once = {**CHAT, "workload": {"arrivals": {"process": "all_at_once"}, "num_requests": 10,
                                    "lengths": CHAT["workload"]["lengths"]}}
    assert inputs.load_knob(parse_scenario(at_once)) is None


def test_with_duration_shortens_each_kind_of_workload():
    rate = inputs.with_duration(CHAT, 12)["workload"]
    assert rate["duration_s"] == 12.0 and "num_requests" not in rate
    staged = {"stages": [{"rate_per_s": 2, "duration_s": 100},
                         {"rate_per_s": 6, "duration_s": 300}]}
    squeezed = inputs.with_duration({"workload": staged}, 20)["workload"]["stages"]
    assert [s["duration_s"] for s in squeezed] == [5.0, 15.0]
    trace = {"workload": {"trace": {"path": "t", "start_s": 100.0, "end_s": 110.0}}}
    assert inputs.with_duration(trace, 30)["workload"]["trace"]["end_s"] == 110.0
    assert inputs.with_duration(trace, 5)["workload"]["trace"]["end_s"] == 105.0
    at_once = {"workload": {"arrivals": {"process": "all_at_once"}, "num_requests": 10}}
    assert inputs.with_duration(at_once, 5) == at_once


def test_settle_puts_the_page_settings_on_a_scenario():
    knob = inputs.LoadKnob("rate", "rate", 7.5)
    settled = inputs.settle(CHAT, inputs.Settings(knob, 20.0, SLO))
    assert settled["workload"]["arrivals"]["rate_per_s"] == 7.5
    assert settled["workload"]["duration_s"] == 20.0
    assert settled["slo"] == {"ttft_p95_ms": 800.0, "tpot_p95_ms": 60.0}
    # a trace keeps its own kind of load when the baseline's load is a rate
    trace = {**CHAT, "workload": {"trace": {"path": "azure-conv-2023", "rate_scale": 2.0}}}
    assert inputs.settle(trace, inputs.Settings(knob, 20.0, SLO))["workload"]["trace"] == {
        "path": "azure-conv-2023", "rate_scale": 2.0, "end_s": 20.0}


def test_slo_of_falls_back_to_chat_targets_and_meets_slo_checks_every_limit():
    assert inputs.slo_of(parse_scenario(CHAT)) == inputs.SloTarget(1000.0, 50.0)
    own = parse_scenario({**CHAT, "slo": {"ttft_p95_ms": 500, "e2e_p99_ms": 9000}})
    assert inputs.slo_of(own) == inputs.SloTarget(500.0, None, 9000.0)
    assert inputs.meets_slo(summary(800.0, 60.0), SLO)  # at the limit still holds
    assert not inputs.meets_slo(summary(801.0, 10.0), SLO)
    assert not inputs.meets_slo(summary(100.0, 61.0), SLO)
    assert not inputs.meets_slo(summary(100.0, 10.0), inputs.SloTarget(None, None, 3999.0))
    assert not inputs.meets_slo(summary(800.0, 60.0) | {"ttft_ms": {"p95": float("nan")}}, SLO)
    assert inputs.meets_slo(summary(1e6, 1e6), inputs.SloTarget(None, None))
    # fast replies to the few requests served are not a met SLO: rejections count
    rejecting = summary(100.0, 10.0) | {"requests": {"arrived": 100, "completed": 17,
                                                      "rejected": 83}}
    assert not inputs.meets_slo(rejecting, SLO)
    assert inputs.meets_slo(rejecting | {"slo": {"max_rejected_share": 0.9}}, SLO)


# ---------------------------------------------------------------- figures

def test_figure_rows_give_values_changes_and_verdicts():
    columns = [Column("before", "", summary(400.0, 30.0, usd_per_hour=2.0)),
               Column("after", "", summary(900.0, 20.0, usd_per_hour=1.5, quality=99.0))]
    rows = {row["figure"]: row for row in figure_rows(columns, SLO)}
    assert rows["p95 TTFT"]["values"] == [400.0, 900.0]
    assert rows["p95 TTFT"]["change_pct"][1] == pytest.approx(125.0)
    assert rows["p95 TTFT"]["verdict"] == ["", "worse"]
    assert rows["fleet $/hour"]["change_pct"][1] == pytest.approx(-25.0)
    # cheaper, but "after" misses the SLO (p95 TTFT 900 > 800 ms): never shown as a saving
    assert rows["fleet $/hour"]["verdict"][1] == ""
    assert rows["monthly bill"]["values"] == [1460.0, 1095.0]
    assert rows["throughput, all tokens"]["values"] == [4000.0, 4000.0]
    assert rows["throughput, all tokens"]["verdict"][1] == ""  # no change
    assert rows["quality kept"]["verdict"][1] == "worse"
    assert rows["meets the SLO"]["values"] == [True, False]
    assert rows["meets the SLO"]["verdict"][1] == "worse"

    table, marks = figure_frame(columns, figure_rows(columns, SLO))
    assert list(table.columns) == ["figure", "before", "after", "Δ after"]
    row = table.set_index("figure").loc["p95 TTFT"]
    assert (row["before"], row["after"], row["Δ after"]) == ("400 ms", "900 ms", "+125.0 %")
    assert table.set_index("figure").loc["meets the SLO", "Δ after"] == "now missed"
    assert marks.set_index("figure").loc["p95 TTFT", "Δ after"] == "worse"
    assert "Keep before" in recommendation(columns, figure_rows(columns, SLO))


def test_the_recommendation_leads_with_the_cheapest_setup_that_holds_the_slo():
    base = Column("baseline", "", summary(400.0, 30.0, usd_per_hour=2.0))
    cheaper = Column("fp8", "", summary(500.0, 30.0, usd_per_hour=1.24))
    missing = Column("awq-l4", "", summary(9000.0, 30.0, usd_per_hour=0.5))
    rows = figure_rows([base, cheaper, missing], SLO)
    assert rows[-2]["values"] == [True, True, False]
    text = recommendation([base, cheaper, missing], rows)
    assert text.startswith("fp8 serves the same load within the SLO for 38 % less per 1M "
                           "tokens than baseline")
    assert "awq-l4" not in text  # the cheapest of all, but it misses: not a saving
    by_label = {row["figure"]: row for row in rows}
    assert by_label["$ per 1M tokens"]["verdict"] == ["", "better", ""]
    overloaded = Column("o", "", summary(100.0, 10.0, usd_per_hour=0.1)
                        | {"saturation": {"kept_up": False}})
    rows = figure_rows([base, overloaded], SLO)
    assert rows[-1]["values"] == [None, False] and "Keep baseline" in recommendation(
        [base, overloaded], rows)
    nobody = figure_rows([missing, missing], SLO)
    assert recommendation([missing, missing], nobody).startswith("No setup serves this load")


def test_format_value():
    assert format_value(1927.2, "$") == "$1,927"
    assert format_value(2.64, "$") == "$2.64"
    assert format_value(0.12345, "$") == "$0.1235"
    assert format_value(8.25, "ms") == "8.2 ms"
    assert format_value(1234.4, "ms") == "1,234 ms"
    assert format_value(99.531, "%") == "99.53 %"
    assert format_value(True, "") == "yes"
    assert format_value(None, "ms") == "–"


# ---------------------------------------------------------------- rate curves

def test_sweep_multipliers_and_plan():
    assert sweep_multipliers(0.25, 1.0, 4) == [0.25, 0.5, 0.75, 1.0]
    with pytest.raises(ValueError):
        sweep_multipliers(2.0, 1.0, 4)
    planned = plan_sweep("chat", CHAT, inputs.LoadKnob("rate", "rate", 4.0), [0.5, 1.0, 2.0])
    assert [p.level for p in planned] == [2.0, 4.0, 8.0]
    assert [p.offered_rps for p in planned] == [2.0, 4.0, 8.0]
    assert yaml.safe_load(planned[2].scenario_yaml)["workload"]["arrivals"]["rate_per_s"] == 8.0
    users = plan_sweep("chat", {**CHAT, "workload": {
        "arrivals": {"process": "closed_loop", "concurrency": 2}, "num_requests": 20,
        "lengths": CHAT["workload"]["lengths"]}},
        inputs.LoadKnob("concurrency", "users", 2.0, integer=True), [0.2, 0.5, 1.0, 1.2])
    assert [p.level for p in users] == [1.0, 2.0]  # 0.4 and 1.0 both round to one user
    assert users[0].offered_rps is None


def test_measured_rate():
    assert measured_rate(pd.Series([0.0, 0.5, 1.0, 2.0])) == pytest.approx(1.5)
    assert measured_rate(pd.Series([3.0])) is None


def hand_made_curve() -> pd.DataFrame:
    rows = []
    table = {  # scenario: [(rate, met, $ per 1M tokens)]
        "base": [(1, True, 0.5), (2, True, 0.3), (3, True, 0.2), (4, False, 0.15), (5, True, 0.1)],
        "never": [(1, False, 0.4), (2, False, 0.3)],
        "always": [(1, True, 0.4), (2, True, 0.1)],
    }
    for name, points in table.items():
        for rate, met, cost in points:
            rows.append({"scenario": name, "multiplier": rate / 3, "level": float(rate),
                         "offered_rps": float(rate), "slo_met": met, "usd_per_hour": 2.0,
                         "usd_per_million_tokens": cost, "output_tokens_per_usd": 1e6 / cost,
                         "ttft_p95_ms": 100.0 * rate, "tpot_p95_ms": 10.0})
    return curve_frame(rows)


def test_best_at_slo_takes_the_highest_rate_before_the_first_miss():
    best = best_at_slo(hand_made_curve()).set_index("scenario")
    # base holds at 1, 2, 3, misses at 4: the lucky point at 5 is not capacity
    assert best.loc["base", "offered_rps"] == 3.0
    assert best.loc["base", "usd_per_million_tokens"] == 0.2
    assert not best.loc["base", "past_sweep"]
    assert math.isnan(best.loc["never", "offered_rps"])
    assert not best.loc["never", "holds_at_lowest"]
    assert best.loc["always", "offered_rps"] == 2.0 and best.loc["always", "past_sweep"]
    assert best.loc["always", "change_pct"] == pytest.approx(-50.0)
    assert best.loc["base", "change_pct"] == 0.0


def test_a_load_the_fleet_falls_behind_is_not_capacity_even_within_the_slo():
    curve = hand_made_curve()
    behind = (curve["scenario"] == "always") & (curve["level"] == 2.0)
    curve["kept_up"] = [False if b else True for b in behind]  # its percentiles held, but
    # the queue kept growing at that load
    best = best_at_slo(curve).set_index("scenario")
    assert best.loc["always", "offered_rps"] == 1.0 and not best.loc["always", "past_sweep"]


def test_point_row_uses_the_nominal_rate_when_there_is_one():
    planned = plan_sweep("chat", CHAT, inputs.LoadKnob("rate", "rate", 4.0), [1.0])[0]
    row = point_row(planned, summary(900.0, 20.0), offered_rps=3.7, slo=SLO)
    assert (row["offered_rps"], row["ttft_p95_ms"], row["slo_met"]) == (4.0, 900.0, False)
    assert row["output_tokens_per_s"] == 1000.0


# ---------------------------------------------------------------- the report

def test_build_report_writes_the_figures_charts_and_scenarios():
    columns = [Column("baseline", "name: before\n", summary(400.0, 30.0, usd_per_hour=2.64)),
               Column("fp8 weights", "name: after\n",
                      summary(200.0, 20.0, usd_per_hour=2.64, tokens_per_s=1500.0, quality=99.53))]
    curve = hand_made_curve().replace({"scenario": {"base": "baseline", "always": "fp8 weights"}})
    curve = curve[curve["scenario"] != "never"]
    best = best_at_slo(curve, order=["baseline", "fp8 weights"])
    files = build_report(columns, SLO, curve, best, notes=["a note for the test"])

    page = files.html
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page
    for text in ("$1,927",  # monthly bill, $2.64 × 730
                 "$0.1833", "$0.1222", "-33.3 %",  # $ per 1M tokens and its change
                 "400 ms", "200 ms", "99.53 %", "p95 TTFT ≤ 800 ms",
                 "3.00 req/s", "≥ 2.00 req/s", "$0.2000", "$0.1000",  # at equal SLO
                 "a price table (as of 2026-11)", "default-roofline: hand-set factors",
                 "h100-sxm", "on-demand", "continuous", "a note for the test",
                 "scenarios/fp8-weights.yaml"):
        assert text in page, text
    assert page.count("data:image/png;base64,") == 3
    assert sorted(files.charts) == ["cost-per-1m-tokens-at-slo.png", "p95-tpot-vs-load.png",
                                    "p95-ttft-vs-load.png"]
    assert all(png.startswith(PNG_SIGNATURE) for png in files.charts.values())

    with zipfile.ZipFile(io.BytesIO(files.zip_bytes())) as archive:
        assert sorted(archive.namelist()) == [
            "charts/cost-per-1m-tokens-at-slo.png", "charts/p95-tpot-vs-load.png",
            "charts/p95-ttft-vs-load.png", "report.html", "scenarios/baseline.yaml",
            "scenarios/fp8-weights.yaml"]
        assert archive.read("scenarios/fp8-weights.yaml") == b"name: after\n"
        assert archive.read("charts/p95-ttft-vs-load.png").startswith(PNG_SIGNATURE)


def test_build_report_without_a_sweep_still_has_the_table():
    columns = [Column("a", "x: 1\n", summary(400.0, 30.0)),
               Column("a", "x: 2\n", summary(1.0, 1.0))]
    files = build_report(columns, SLO)
    assert "No rate sweep was run" in files.html and "400 ms" in files.html
    assert list(files.scenarios) == ["a.yaml", "a-2.yaml"]  # same names do not overwrite


# ---------------------------------------------------------------- the page

def test_page_renders_the_default_comparison():
    at = page()
    assert not at.error
    table = figures(at)
    assert list(table.columns) == ["baseline", "fp8 weights", "Δ fp8 weights", "A100 80GB",
                                   "Δ A100 80GB", "AWQ on L4", "Δ AWQ on L4"]
    assert table.loc["fleet $/hour", "baseline"] == "$2.64"
    assert table.loc["quality kept", "fp8 weights"] == "99.53 %"
    assert table.loc["p95 TTFT", "Δ fp8 weights"].startswith("-")
    assert len(at.metric) == 4
    # the cost at equal SLO: one row per scenario
    best = at.dataframe[-1].value
    assert list(best["scenario"]) == ["baseline", "fp8 weights", "A100 80GB", "AWQ on L4"]
    # the decision first, every setup on three seeds, and their spread said
    assert [i.value for i in at.info if " per 1M tokens" in i.value]
    seeds = [c.value for c in at.caption if " seeds × " in c.value]
    assert len(seeds) == 4 and all(line.split(": ")[1].startswith("3 seeds") for line in seeds)


def test_changing_the_load_or_a_change_changes_the_numbers():
    at = page()
    before = figures(at)
    at.number_input(key="compare_load").set_value(11.0).run()
    assert not at.exception
    after = figures(at)
    assert after.loc["p95 TTFT", "baseline"] != before.loc["p95 TTFT", "baseline"]
    assert after.loc["output throughput", "baseline"] != before.loc["output throughput", "baseline"]

    at.text_area(key="compare_change1_overrides").set_value("hardware.gpu=l40s").run()
    assert not at.exception
    changed = figures(at)
    assert changed.loc["fleet $/hour", "A100 80GB"] != after.loc["fleet $/hour", "A100 80GB"]
    assert changed.loc["fleet $/hour", "baseline"] == after.loc["fleet $/hour", "baseline"]


@pytest.mark.parametrize("line, named", [("hardware.gpu=no-such-gpu", "no-such-gpu"),
                                         ("nonsense", "'nonsense'")])
def test_a_bad_override_line_shows_an_error_naming_it(line, named):
    at = page()
    at.text_area(key="compare_change0_overrides").set_value(line).run()
    assert not at.exception
    assert named in errors(at) and "fp8 weights" in errors(at)
    assert "fp8 weights" not in figures(at).columns  # the others are still compared
    assert "A100 80GB" in figures(at).columns


def test_a_bad_baseline_upload_shows_an_error():
    at = page(compare_baseline_source="Uploaded file")
    assert not at.error and at.info  # asks for a file
    bad = yaml.safe_dump({**CHAT, "engine": {"max_num_seqs": -1}}).encode()
    at.file_uploader(key="compare_baseline_upload").set_value(
        ("bad.yaml", bad, "application/x-yaml")).run()
    assert not at.exception
    assert "max_num_seqs" in errors(at)
    assert not at.dataframe  # nothing is compared against a broken baseline


def test_a_junk_change_upload_shows_an_error():
    at = page()
    at.file_uploader(key="compare_change2_upload").set_value(
        ("junk.yaml", bytes(range(256)) * 4, "application/x-yaml")).run()
    assert not at.exception
    assert "junk.yaml" in errors(at) and "UTF-8" in errors(at)
    assert "AWQ on L4" not in figures(at).columns


def test_the_explore_scenario_can_be_the_baseline():
    text = yaml.safe_dump({**CHAT, "name": "from-explore"})
    at = page(explore_scenario_yaml=text, compare_baseline_source="Explore page's scenario")
    assert not at.error
    assert at.number_input(key="compare_load").value == 4.0  # the scenario's own rate
    assert figures(at).loc["fleet $/hour", "baseline"] == "$2.64"


def test_each_setup_keeps_its_colour_when_another_is_missing_from_a_chart():
    from app.compare_charts import PALETTE, cost_at_slo_chart

    order = ["baseline", "fp8 weights", "l4"]
    best = best_at_slo(hand_made_curve().assign(
        scenario=lambda f: f["scenario"].map({"base": "baseline", "never": "fp8 weights",
                                              "always": "l4"})), order=order)
    spec = cost_at_slo_chart(best, order).to_dict()
    scale = spec["layer"][0]["encoding"]["color"]["scale"]
    # "fp8 weights" has no bar (it missed at every load), yet "l4" keeps the third colour
    assert scale == {"domain": order, "range": PALETTE[:3]}


def test_a_setup_holds_only_if_it_holds_on_every_seed_and_its_spread_is_said():
    lucky = summary(700.0, 30.0)
    unlucky = summary(900.0, 30.0)  # the same setup on another seed misses p95 TTFT 800 ms
    base = Column("baseline", "", lucky, (lucky, summary(750.0, 30.0)))
    change = Column("change", "", lucky, (lucky, unlucky, lucky))
    rows = {row["figure"]: row for row in figure_rows([base, change], SLO)}
    assert rows["meets the SLO"]["values"] == [True, False]
    lines = seed_lines([base, change])
    assert lines[0].startswith("baseline: 2 seeds × 100 requests; across seeds p95 TTFT "
                               "700 ms–750 ms")
    assert "p95 TTFT 700 ms–900 ms" in lines[1] and lines[1].startswith("change: 3 seeds")
    assert seed_lines([Column("one", "", lucky)]) == ["one: 1 seed × 100 requests"]


def test_a_link_reproduces_a_comparison_and_a_bad_value_is_named():
    at = AppTest.from_file(PAGE, default_timeout=300)
    at.query_params.update({
        "example": "azure-conv-hour-h100.yaml", "load": "3", "duration_s": "30",
        "ttft_p95_ms": "700", "tpot_p95_ms": "40", "seeds": "40",
        "change1_name": "on L40S", "change1": "hardware.gpu=l40s"})
    at.run()
    assert not at.exception
    assert at.number_input(key="compare_load").value == 3.0
    assert at.number_input(key="compare_slo_ttft").value == 700.0
    assert at.number_input(key="compare_n_changes").value == 1
    assert at.text_input(key="compare_change0_name").value == "on L40S"
    [warning] = [w.value for w in at.warning if "address were not used" in w.value]
    assert "seeds: outside 1 to 10 (got '40')" in warning
    assert list(figures(at).columns) == ["baseline", "on L40S", "Δ on L40S"]
    # the page writes its settings back into the address
    query = {k: (v[0] if isinstance(v, list) else v) for k, v in at.query_params.items()}
    assert query["change1"] == "hardware.gpu=l40s" and query["load"] == "3"
    assert query["seeds"] == "3" and query["example"] == "azure-conv-hour-h100.yaml"
