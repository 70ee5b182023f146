"""Explore's "Highest sustainable rate": the capacity search on the page's scenario, its answer
in words, its chart and progress (``app.capacity_view``), and the button on the page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from streamlit.testing.v1 import AppTest

from app import capacity_view as cv
from sim.config.scenario import parse_scenario

ROOT = Path(__file__).resolve().parent.parent
PAGE = str(ROOT / "app" / "views" / "explore.py")

# llama-3.1-8b on one H100 with short requests: each run takes well under half a second, and
# the default (trained) latency profile has an error band, so the search has a band too
SMALL = {
    "name": "small-chat", "model": "llama-3.1-8b", "hardware": {"gpu": "h100-sxm"},
    "workload": {"arrivals": {"process": "poisson", "rate_per_s": 4.0}, "duration_s": 10.0,
                 "lengths": {"input": 256, "output": 64}},
    "slo": {"ttft_p95_ms": 500},
}


@pytest.fixture(scope="module")
def searched():
    """One search on SMALL, with the progress it reported."""
    scenario = parse_scenario(SMALL)
    tracker = cv.SearchProgress(scenario)
    updates = []
    outcome = cv.capacity_search("the text", scenario,
                                 lambda check, end: updates.append(tracker.update(check, end)))
    return outcome, updates


def hand_report(**changes) -> dict:
    """A search report shaped like ``Capacity.to_json()``, made by hand."""
    def row(rate, holds, ttft, tpot=20.0, rejected=0.0, backlog=0.01):
        return {"rate_per_s": rate, "holds": holds, "ttft_p95_ms": ttft, "tpot_p95_ms": tpot,
                "e2e_p99_ms": 3000.0, "rejected_share": rejected, "backlog_share": backlog,
                "requests": int(rate * 10)}
    report = {
        "scenario": "chat", "max_rate_per_s": 12.4, "rate_unit": "requests/s",
        "band": None, "band_basis": "the latency profile carries no error band (hand-set)",
        "slo": {"ttft_p95_ms": 500.0, "tpot_p95_ms": 50.0}, "limited_by": "tpot_p95",
        "message": "", "simulations": 4,
        "checked": [row(4.0, True, 100.0), row(8.0, True, 150.0), row(12.4, True, 300.0, 45.0),
                    row(16.0, False, 900.0, 64.0)],
    }
    return report | changes


# ------------------------------------------------------------------ the search

def test_headroom_is_the_rate_found_over_the_offered_one():
    assert cv.headroom_text(hand_report(headroom=0.55, offered_rate_per_s=8.0)) == (
        "Headroom: +55 % over the offered 8 req/s")
    assert cv.headroom_text(hand_report(headroom=-0.2, offered_rate_per_s=15.5)) == (
        "No headroom: the offered 15.5 req/s is 25 % above what this setup sustains")
    assert cv.headroom_text(hand_report()) is None


def test_the_search_gives_a_rate_with_its_band_and_what_limits_it(searched):
    outcome, _ = searched
    assert outcome["yaml"] == "the text" and outcome["error"] is None
    report = outcome["report"]
    best, band = report["max_rate_per_s"], report["band"]
    assert band["low"] <= best <= band["high"]
    text = cv.answer_text(report)
    assert re.fullmatch(r"[\d,]+\.\d req/s \(band [\d,]+\.\d–[\d,]+\.\d\)", text)
    assert text.startswith(f"{best:,.1f} req/s")
    assert report["limited_by"] == "ttft_p95"
    limit = cv.limit_text(report)
    assert limit.startswith("Limited by p95 TTFT: at the next rate tried, ")
    assert limit.endswith("against the 500 ms target.")
    assert cv.band_note(report).startswith("Band: the same search")


def test_the_chart_has_every_load_tried_and_the_slo_line(searched):
    report = searched[0]["report"]
    frame = cv.chart_frame(report)
    assert len(frame) == report["simulations"] and frame["rate_per_s"].is_monotonic_increasing
    assert set(frame["verdict"]) == {"holds", "fails"}
    best = frame[frame["rate_per_s"] == report["max_rate_per_s"]]
    assert list(best["verdict"]) == ["holds"]
    spec = cv.capacity_chart(report).to_dict()
    assert "p95 TTFT" in spec["title"]
    values = [v for data in spec["datasets"].values() for v in data]
    assert {"value": 500.0, "label": "SLO p95 TTFT 500 ms"} in values
    assert any(v.get("label", "").startswith("max ") for v in values)


def test_progress_moves_forward_and_names_each_load(searched):
    outcome, updates = searched
    assert len(updates) == outcome["report"]["simulations"]
    shares = [share for share, _ in updates]
    assert shares == sorted(shares) and 0 < shares[0] and shares[-1] < 1
    assert updates[0][1] == ("Simulation 1: 4 req/s holds "
                             f"(p95 TTFT {outcome['report']['checked'][0]['ttft_p95_ms']:.1f} ms "
                             "≤ 500 ms target)")
    assert any("fails" in line for _, line in updates)
    assert any("at the range's slow end" in line for _, line in updates)


@pytest.mark.parametrize("change, words", [
    ({"slo": {}}, "capacity needs at least one SLO"),
    ({"workload": {"arrivals": {"process": "closed_loop", "concurrency": 4}, "num_requests": 20,
                   "lengths": {"input": 256, "output": 64}}}, "closed-loop workload has none"),
    ({"workload": {"arrivals": {"process": "all_at_once"}, "num_requests": 20,
                   "lengths": {"input": 256, "output": 64}}}, "all_at_once"),
])
def test_a_scenario_without_an_slo_or_a_rate_gets_the_reason(change, words):
    outcome = cv.capacity_search("x", parse_scenario(SMALL | change))
    assert outcome["report"] is None and words in outcome["error"]


# ------------------------------------------------------------------ the words, by hand

def test_without_a_band_the_answer_has_none_and_says_why():
    report = hand_report()
    assert cv.answer_text(report) == "12.4 req/s"
    assert cv.band_note(report) == ("No band: the latency profile carries no error band "
                                    "(hand-set).")
    assert cv.limit_text(report) == ("Limited by p95 TPOT: at the next rate tried, 16.0 req/s, "
                                     "p95 TPOT is 64.0 ms against the 50.0 ms target.")
    assert cv.chart_figure(report) == "tpot_p95_ms"  # the limiting figure is drawn
    both = hand_report(band={"low": 11.8, "high": 13.1})
    assert cv.answer_text(both) == "12.4 req/s (band 11.8–13.1)"
    slow_end_fails = hand_report(band={"low": None, "high": 13.1})
    assert cv.answer_text(slow_end_fails) == "12.4 req/s (band none–13.1)"
    sessions = hand_report(rate_unit="conversations/s", max_rate_per_s=2.5)
    assert cv.answer_text(sessions) == "2.5 conversations/s"


def test_rejections_backlog_and_the_search_top():
    rejected = hand_report(limited_by="rejections")
    rejected["checked"][-1]["rejected_share"] = 0.034
    assert cv.limit_text(rejected) == (
        "Limited by rejections (over 1 % of the requests): at the next rate tried, 16.0 req/s, "
        "3.4 % of the requests are rejected.")
    assert cv.chart_figure(rejected) == "ttft_p95_ms"  # no SLO figure limits: the first target
    backlog = hand_report(limited_by="backlog")
    backlog["checked"][-1]["backlog_share"] = 0.25
    assert "25 % of the requests still wait to start" in cv.limit_text(backlog)
    top = hand_report(limited_by="search_limit",
                      message="the SLO still holds at 1024 x the scenario's rate, the top of "
                              "the search: the capacity is at least this")
    assert cv.limit_text(top).startswith("Limited by nothing found: the top of the search")
    assert cv.summary_lines(top)[-1].startswith("The SLO still holds at 1024 x")


def test_no_rate_holds():
    report = hand_report(max_rate_per_s=None, limited_by="ttft_p95",
                         message="the configuration cannot meet the SLO at any load: ...")
    for row in report["checked"]:
        row["holds"], row["ttft_p95_ms"] = False, 900.0
    assert cv.answer_text(report) == "No rate holds the SLO"
    assert cv.limit_text(report).startswith("Limited by p95 TTFT: at the lowest rate tried, "
                                            "4 req/s, p95 TTFT is 900 ms")
    assert len(cv.summary_lines(report)) == 2  # the message is shown apart, as a warning
    spec = cv.capacity_chart(report).to_dict()
    assert not any(str(v.get("label", "")).startswith("max ")
                   for data in spec["datasets"].values() for v in data)


# ------------------------------------------------------------------ the page

def explore(scenario: dict) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=180)
    at.session_state["explore_source"] = "a scenario file"
    at.session_state["explore_yaml"] = yaml.safe_dump(scenario, sort_keys=False)
    at.run()
    assert not at.exception and not at.error
    return at


def headline(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown if "Highest sustainable rate:" in m.value]


def test_the_button_finds_the_rate_and_a_new_scenario_clears_it():
    at = explore(SMALL)
    assert not headline(at)
    at.button(key="explore_capacity_button").click().run()
    assert not at.exception and not at.error
    [shown] = headline(at)
    assert re.fullmatch(r"\*\*Highest sustainable rate: [\d,]+\.\d req/s "
                        r"\(band [\d,]+\.\d–[\d,]+\.\d\)\*\*", shown)
    assert any(re.fullmatch(r"Headroom: \+\d+ % over the offered [\d.,]+ req/s", m.value)
               for m in at.markdown)
    assert any(c.value.startswith("Limited by p95 TTFT") for c in at.caption)
    assert any("Loads tried" in str(c.proto.spec) for c in at.get("vega_lite_chart"))
    at.run()  # a rerun keeps the answer, without searching again
    assert headline(at) == [shown]
    assert at.session_state["explore_capacity"]["yaml"] == at.text_area(key="explore_yaml").value
    at.text_area(key="explore_yaml").set_value(
        yaml.safe_dump(SMALL | {"slo": {"ttft_p95_ms": 300}}, sort_keys=False)).run()
    assert not headline(at) and "explore_capacity" not in at.session_state
    assert at.button(key="explore_capacity_button")


def test_without_an_slo_the_page_says_why():
    at = explore(SMALL | {"slo": {}})
    at.button(key="explore_capacity_button").click().run()
    assert not at.exception and not at.error
    assert any(i.value.startswith("Capacity needs at least one SLO") for i in at.info)
    assert not headline(at)
