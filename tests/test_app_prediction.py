"""How the app words and draws how far to trust a run's latencies (``summary["prediction"]``):
the range of each figure, the training coverage, the CDF error bars, the Compare bars and the
before/after report, on summaries made by hand."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import yaml
from streamlit.testing.v1 import AppTest

from app import prediction_note as pn
from app.before_after_report import build_report
from app.compare_charts import latency_bars, latency_chart
from app.compare_figures import (Column, coverage_note, latency_bar_frame, sources,
                                 uncertainty_lines)
from app.compare_inputs import SloTarget
from app.plan_view import winner_prediction
from app.rate_curve import curve_frame
from app.run_charts import latency_cdf
from app.run_figures import latency_figures
from sim.config.scenario import parse_scenario
from sim.planning.plan import Candidate, CandidatePlan

ROOT = Path(__file__).resolve().parent.parent
SLO = SloTarget(ttft_p95_ms=800.0, tpot_p95_ms=60.0)
NO_BAND = ("the latency profile carries no error band: it was not checked on runs it was not "
           "trained on (hand-set, fitted to one configuration, or trained without a held-out "
           "check)")


def band(ttft_p95: float, tpot_p95: float, low: float = 0.8, high: float = 1.25) -> dict:
    return {"ttft_ms": {"mean": {"low": ttft_p95 / 2 * low, "high": ttft_p95 / 2 * high},
                        "p95": {"low": ttft_p95 * low, "high": ttft_p95 * high}},
            "tpot_ms": {"p95": {"low": tpot_p95 * low, "high": tpot_p95 * high}},
            "e2e_ms": {"p95": {"low": 3000.0 * low, "high": 3000.0 * high},
                       "p99": {"low": 4000.0 * low, "high": 4000.0 * high}}}


def summary(ttft_p95: float = 182.0, tpot_p95: float = 25.0, *, seen: dict | list | None = None,
            banded: bool = True, profile: str = "trained") -> dict:
    """A run summary with the figures and the prediction section the app reads."""
    seen = {"model": True, "gpu": True, "tensor_parallel": True} if seen is None else seen
    return {
        "model": "llama-3.1-8b", "gpu": "h100-sxm", "tensor_parallel": 1, "replicas": 1,
        "weight_dtype": "bf16", "engine": {"scheduler": "continuous"},
        "latency_profile": {"name": profile, "source": "fitted to 42 runs"},
        "requests": {"arrived": 100},
        "ttft_ms": {"mean": ttft_p95 / 2, "p50": ttft_p95 / 3, "p95": ttft_p95},
        "tpot_ms": {"mean": tpot_p95 / 2, "p50": tpot_p95 / 2, "p95": tpot_p95},
        "e2e_ms": {"p95": 3000.0, "p99": 4000.0},
        "throughput": {"requests_per_s": 5.0, "input_tokens_per_s": 3000.0,
                       "output_tokens_per_s": 1000.0},
        "cost": {"gpus": 1, "usd_per_gpu_hour": 2.0, "usd_per_hour": 2.0,
                 "usd_per_million_tokens": 0.14, "usd_per_million_output_tokens": 0.56,
                 "output_tokens_per_usd": 1.8e6, "monthly_usd": 1460.0,
                 "price_tier": "on_demand", "price_source": "a price table",
                 "price_as_of": "2026-11"},
        "quality": {}, "quality_retention_percent": None,
        "prediction": {
            "profile": profile, "in_training_data": seen,
            "band": band(ttft_p95, tpot_p95) if banded else None,
            "band_basis": "leave-one-model-out errors on 42 vLLM H100 runs" if banded else NO_BAND,
        },
    }


def roofline() -> dict:
    s = summary(banded=False, profile="roofline")
    s["prediction"]["in_training_data"] = None
    return s


# ------------------------------------------------------------------ text

def test_band_text_and_figure_text_with_a_band():
    s = summary(182.0)
    assert pn.band_range(s, "ttft_ms", "p95") == pytest.approx((145.6, 227.5))
    assert pn.band_text(s, "ttft_ms", "p95") == "range 146–228 ms"
    assert pn.figure_text(s, "ttft_ms", "p95") == "p95 TTFT 182 ms (range 146–228 ms)"
    assert pn.band_text(s, "tpot_ms", "p95") == "range 20.0–31.2 ms"  # small: one decimal
    assert pn.band_text(s, "ttft_ms", "p50") is None  # the band has no median
    assert pn.band_text(s, "itl_ms", "mean") is None
    assert pn.range_text(9_000.0, 14_000.0) == "9.0–14.0 s"  # long ones in seconds, both ends


def test_no_band_gives_no_range_and_says_why():
    s = roofline()
    assert pn.band_text(s, "ttft_ms", "p95") is None
    assert pn.figure_text(s, "ttft_ms", "p95") == "p95 TTFT 182 ms"
    assert pn.coverage_text(s) == "not trained on measured runs"
    line = pn.trust_line(s)
    assert line.startswith("Latency model: roofline (not trained on measured runs)")
    assert "no range for the latencies: the latency profile carries no error band" in line


def test_a_summary_without_a_prediction_section_gives_nothing():
    s = summary()
    del s["prediction"]
    assert pn.band_text(s, "ttft_ms", "p95") is None
    assert pn.trust_line(s) is None and pn.coverage_text(s) == ""
    assert pn.within_uncertainty(s, s, "ttft_ms", "p95") is None
    assert pn.cdf_band_frame(s, "TTFT", pd.DataFrame(columns=["metric", "latency_ms",
                                                              "share"])).empty


def test_coverage_of_a_seen_setup_and_of_an_unseen_gpu():
    assert pn.coverage_text(summary()) == "model ✓ in training data, GPU ✓, TP ✓"
    unseen = summary(seen={"model": True, "gpu": False, "tensor_parallel": True})
    assert pn.coverage_text(unseen) == ("model ✓ in training data, GPU ✗ not in training data "
                                        "→ wider range, TP ✓")
    assert pn.trust_line(unseen) == ("Latency model: trained (model ✓ in training data, GPU ✗ "
                                     "not in training data → wider range, TP ✓)")
    new_tp = summary(seen={"model": False, "gpu": True, "tensor_parallel": False})
    assert pn.coverage_text(new_tp) == ("model ✗ not in training data, GPU ✓ in training data, "
                                        "TP ✗ (range not measured at this TP)")
    # a trained profile without a band: no "wider range" promised
    bare = summary(seen={"model": True, "gpu": False, "tensor_parallel": True}, banded=False)
    assert "wider range" not in pn.coverage_text(bare)
    assert "no range for the latencies" in pn.trust_line(bare)


def test_coverage_of_a_fleet_names_each_pool():
    s = summary(seen=[{"model": True, "gpu": True, "tensor_parallel": True},
                      {"model": False, "gpu": False, "tensor_parallel": True}])
    s["fleet"] = {"pools": ["chat", "code"]}
    assert pn.coverage_text(s) == (
        "pool chat: model ✓ in training data, GPU ✓, TP ✓; pool code: model ✗ not in "
        "training data, GPU ✗ → wider range, TP ✓ in training data")
    del s["fleet"]  # no names to go by: numbered
    assert pn.coverage_text(s).startswith("pool 1: ") and "; pool 2: " in pn.coverage_text(s)
    s["prediction"]["in_training_data"] = [None, None]
    assert pn.coverage_text(s) == ("pool 1: not trained on measured runs; "
                                   "pool 2: not trained on measured runs")


def test_within_uncertainty_compares_the_change_with_the_band_width():
    before, close, far = summary(200.0), summary(190.0), summary(100.0)
    # widths 90 ms (200 × 0.45) and 85.5 ms: a 10 ms change is inside, 100 ms is not
    assert pn.within_uncertainty(before, close, "ttft_ms", "p95") is True
    assert pn.within_uncertainty(before, far, "ttft_ms", "p95") is False
    assert pn.within_uncertainty(before, roofline(), "ttft_ms", "p95") is True  # one band
    assert pn.within_uncertainty(roofline(), roofline(), "ttft_ms", "p95") is None
    figures = [("ttft_ms", "p95"), ("tpot_ms", "p95"), ("e2e_ms", "p99")]
    assert pn.uncertainty_sentence("fp8", before, close, figures) == (
        "fp8: the change in p95 TTFT 200 ms → 190 ms (range 90.0 ms wide) is smaller than the "
        "latency model's range: within the model's uncertainty.")  # unchanged E2E left out
    assert pn.uncertainty_sentence("half", before, far, figures) is None
    faster = summary(190.0, 24.0)
    assert pn.uncertainty_sentence("both", before, faster, figures).startswith(
        "both: the changes in p95 TTFT 200 ms → 190 ms (range 90.0 ms wide) and p95 TPOT "
        "25.0 ms → 24.0 ms (range 11.2 ms wide) are smaller")


# ------------------------------------------------------------------ charts

def cdf_of(summary_: dict) -> pd.DataFrame:
    latencies = [summary_["ttft_ms"]["p95"] * f for f in (0.1, 0.3, 0.5, 0.7, 1.0, 1.2)]
    return pd.DataFrame({"metric": "TTFT", "latency_ms": latencies,
                         "share": [0.0, 0.2, 0.5, 0.8, 0.95, 1.0]})


def test_cdf_band_frame_puts_mean_and_p95_on_the_curve_and_the_chart_draws_them():
    s = summary(200.0)
    frame = pn.cdf_band_frame(s, "TTFT", cdf_of(s)).set_index("stat")
    assert list(frame.index) == ["mean", "p95"]
    assert frame.loc["p95", "share"] == 0.95 and frame.loc["p95", "low"] == pytest.approx(160.0)
    assert frame.loc["mean", "share"] == pytest.approx(0.5)  # the mean, 100 ms, sits at 50 %
    chart = latency_cdf(cdf_of(s), "TTFT", frame.reset_index()).to_dict()
    assert len(chart["layer"]) == 5 and "range" in str(chart["title"])
    assert "layer" not in latency_cdf(cdf_of(s), "TTFT",
                                      pn.cdf_band_frame(roofline(), "TTFT", cdf_of(s))).to_dict()


def test_latency_figures_name_the_summary_figure_they_show():
    sources_ = {f.label: f.source for f in latency_figures(summary())}
    assert sources_["TTFT p95"] == ("ttft_ms", "p95") and sources_["E2E p99"] == ("e2e_ms", "p99")


def test_compare_bars_carry_the_band_as_error_bars():
    columns = [Column("baseline", "", summary(200.0)), Column("hand-set", "", roofline())]
    frame = latency_bar_frame(columns)
    assert list(frame["figure"].unique()) == ["p95 TTFT", "p95 TPOT", "p99 E2E"]
    rows = frame.set_index(["scenario", "figure"])
    assert rows.loc[("baseline", "p95 TTFT"), "high"] == pytest.approx(250.0)
    assert rows.loc[("hand-set", "p95 TTFT"), "low"] != rows.loc[("hand-set", "p95 TTFT"), "low"]
    spec = latency_bars(frame, ["baseline", "hand-set"]).to_dict()
    marks = [layer["mark"]["type"] if isinstance(layer["mark"], dict) else layer["mark"]
             for layer in spec["spec"]["layer"]]
    assert marks == ["bar", "rule", "tick"]
    no_band = latency_bar_frame([Column("hand-set", "", roofline())])
    assert len(latency_bars(no_band).to_dict()["spec"]["layer"]) == 1
    assert coverage_note(columns[1]).startswith("hand-set: Latency model: roofline")


def test_sweep_lines_get_a_shaded_band_where_the_points_have_one():
    rows = [{"scenario": "a", "offered_rps": r, "output_tokens_per_s": 100.0 * r,
             "ttft_p95_ms": 100.0 * r, "ttft_p95_low_ms": 80.0 * r, "ttft_p95_high_ms": 130.0 * r,
             "tpot_p95_ms": 20.0, "slo_met": True} for r in (1.0, 2.0)]
    with_band = latency_chart(curve_frame(rows), "ttft", 800.0).to_dict()
    assert with_band["layer"][0]["mark"]["type"] == "area"
    plain = [{k: v for k, v in row.items() if "_low_" not in k and "_high_" not in k}
             for row in rows]
    assert latency_chart(curve_frame(plain), "ttft", 800.0).to_dict()["layer"][0]["mark"][
        "type"] == "line"


# ------------------------------------------------------------------ the report

def test_report_shows_ranges_and_says_when_a_change_is_within_the_uncertainty():
    columns = [Column("baseline", "name: a\n", summary(200.0)),
               Column("tweak", "name: b\n", summary(195.0)),
               Column("hand-set", "name: c\n", roofline())]
    lines = uncertainty_lines(columns)
    assert lines[0].startswith("tweak: the change in p95 TTFT 200 ms → 195 ms")
    assert lines[1].startswith("hand-set: the change in p95 TTFT 200 ms → 182 ms")
    page = build_report(columns, SLO).html
    assert "range 160–250 ms" in page  # the baseline's p95 TTFT
    assert "ranges 160–250 ms and 156–244 ms" in page  # the headline carries both ranges
    assert "within the model&#x27;s uncertainty" in page
    assert "model ✓ in training data, GPU ✓, TP ✓" in page  # the training coverage
    assert "leave-one-model-out errors on 42 vLLM H100 runs" in page
    facts = sources(columns[2])
    assert facts["latency model's training data"] == "roofline: not trained on measured runs"
    assert facts["latency ranges"].startswith("none: the latency profile carries no error band")


def test_report_without_prediction_sections_has_no_ranges():
    plain = summary(200.0)
    del plain["prediction"]
    page = build_report([Column("a", "x: 1\n", plain), Column("b", "x: 2\n", plain)], SLO).html
    assert "<span class='range'>" not in page and "; ranges" not in page
    assert "Range under a latency" not in page and "within the model" not in page


# ------------------------------------------------------------------ the plan's winner

def test_plan_winner_gets_the_range_its_profile_gives(tmp_path):
    profile = {"name": "banded", "form": "roofline", "coefficients": {
        "step_overhead_ms": 1.5, "per_seq_overhead_ms": 0.015, "per_prefill_seq_overhead_ms": 0.25,
        "compute_efficiency": 0.6, "memory_efficiency": 0.8, "allreduce_latency_us": 8.0,
        "allreduce_efficiency": 0.7},
        "training_data": {"models": ["llama-3.1-8b"], "gpus": ["h100-sxm"], "tensor_parallel": [1]},
        "error_band": {"basis": "held-out runs",
                       "seen_gpu": {"ttft_ms": {"p95": [0.9, 1.2]}, "tpot_ms": {"p95": [0.9, 1.1]}},
                       "unseen_gpu": {"ttft_ms": {"p95": [0.8, 1.5]},
                                      "tpot_ms": {"p95": [0.8, 1.4]}}}}
    path = tmp_path / "banded.yaml"
    path.write_text(yaml.safe_dump(profile))
    scenario = parse_scenario({
        "name": "chat", "model": "llama-3.1-8b", "hardware": {"gpu": "l40s"},
        "engine": {"latency_profile": str(path)},
        "workload": {"arrivals": {"process": "poisson", "rate_per_s": 4.0}, "num_requests": 50,
                     "lengths": {"input": 256, "output": 64}}})
    plan = CandidatePlan(Candidate("l40s", "bf16", 1), "ok", ttft_p95_ms_worst=400.0,
                         tpot_p95_ms_worst=30.0, scenario=scenario)
    shown = winner_prediction(plan)
    assert pn.band_text(shown, "ttft_ms", "p95") == "range 320–600 ms"  # unseen GPU: wide
    assert pn.coverage_text(shown) == ("model ✓ in training data, GPU ✗ not in training data "
                                       "→ wider range, TP ✓")
    on_h100 = replace(plan, scenario=scenario.model_copy(update={
        "hardware": scenario.hardware.model_copy(update={"gpu": "h100-sxm"})}))
    assert pn.band_text(winner_prediction(on_h100), "ttft_ms", "p95") == "range 360–480 ms"
    hand_set = replace(plan, scenario=scenario.model_copy(update={
        "engine": scenario.engine.model_copy(update={"latency_profile": "roofline"})}))
    assert pn.band_text(winner_prediction(hand_set), "ttft_ms", "p95") is None
    assert "no range" in pn.trust_line(winner_prediction(hand_set))
    assert winner_prediction(replace(plan, scenario=None)) is None


# ------------------------------------------------------------------ the pages

def banded_profile(tmp_path) -> str:
    """A copy of the hand-set profile that says what it was trained on and carries a band."""
    data = yaml.safe_load((ROOT / "sim" / "catalog" / "profiles" / "roofline.yaml").read_text())
    factors = {m: {"mean": [0.85, 1.2], "p95": [0.8, 1.3], "p99": [0.75, 1.4]}
               for m in ("ttft_ms", "tpot_ms", "e2e_ms")}
    data |= {"name": "banded",
             "training_data": {"models": ["llama-3.1-8b"], "gpus": ["a100-80gb"],
                               "tensor_parallel": [1]},
             "error_band": {"basis": "held-out runs for a test", "seen_gpu": factors,
                            "unseen_gpu": {m: {s: [lo * 0.9, hi * 1.2] for s, (lo, hi) in v.items()}
                                           for m, v in factors.items()}}}
    path = tmp_path / "banded.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def chat_scenario(profile: str) -> str:
    return yaml.safe_dump({
        "name": "chat", "model": "llama-3.1-8b", "hardware": {"gpu": "h100-sxm"},
        "engine": {"latency_profile": profile},
        "workload": {"arrivals": {"process": "poisson", "rate_per_s": 4.0}, "duration_s": 10.0,
                     "lengths": {"input": 256, "output": 64}}})


def test_explore_shows_the_ranges_and_the_training_coverage(tmp_path):
    at = AppTest.from_file(str(ROOT / "app" / "views" / "explore.py"), default_timeout=120)
    at.session_state["explore_source"] = "a scenario file"
    at.session_state["explore_yaml"] = chat_scenario(banded_profile(tmp_path))
    at.run()
    assert not at.exception and not at.error
    captions = [c.value for c in at.caption]
    assert sum(c.startswith("range ") for c in captions) == 4  # p95 TTFT, TPOT; p95, p99 E2E
    assert ("Latency model: banded (model ✓ in training data, GPU ✗ not in training data → "
            "wider range, TP ✓)") in captions
    at.text_area(key="explore_yaml").set_value(chat_scenario("roofline")).run()
    captions = [c.value for c in at.caption]
    assert not any(c.startswith("range ") for c in captions)
    assert any(c.startswith("Latency model: default-roofline (not trained on measured runs) · "
                            "no range") for c in captions)


def test_compare_notes_each_setups_coverage_and_draws_the_bars(tmp_path):
    at = AppTest.from_file(str(ROOT / "app" / "views" / "compare.py"), default_timeout=120)
    at.session_state["compare_duration"] = 10.0
    at.session_state["compare_sweep_points"] = 3
    at.session_state["explore_scenario_yaml"] = chat_scenario(banded_profile(tmp_path))
    at.session_state["compare_baseline_source"] = "Explore page's scenario"
    at.run()
    assert not at.exception and not at.error
    notes = [c.value for c in at.caption if "Latency model: banded" in c.value]
    assert notes[0].startswith("baseline: Latency model: banded (model ✓ in training data, "
                               "GPU ✗ not in training data → wider range")
    assert any(n.startswith("A100 80GB: ") and "GPU ✓" in n for n in notes)
    assert len(notes) == 4
