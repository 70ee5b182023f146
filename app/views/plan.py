"""Plan: the cheapest fleets that hold a workload's SLO targets.

Pick a scenario (its model and workload), set the targets, the load and the candidates, and
press the button: every GPU tier x weight format x TP degree is sized to the fewest replicas
that hold the targets in every seed, and ranked by cost (see docs/planning.md).
"""

from __future__ import annotations

import hashlib

import streamlit as st

from sim.engine.errors import UserError
from sim.planning.plan import check_plannable
from traces.errors import TraceError

from app import plan_link
from app.examples import example_names, example_text
from app.link_state import read_link_once
from app.plan_chart import pareto_chart
from app.plan_run import cached_plan, candidate_keys
from app.plan_view import (
    DEFAULT_EXAMPLE, DEFAULT_FORMATS, DEFAULT_GPUS, DEFAULT_SEEDS, FORMAT_CHOICES, METRICS,
    TP_CHOICES, candidate_label, chart_points, check_page_plannable, check_targets,
    expected_simulations, gpu_label, ms_text, plan_csv, plan_seeds, plan_space, plan_table,
    planned_yaml, prefill, price_tier, priced_gpus, screened_table, tp_degrees,
    winner, winner_prediction, winner_yaml,
)
from app.prediction_note import band_text, trust_line
from app.scenario_io import download_scenario, file_stem, read_scenario_upload
from app.simulation import check_run_size, scenario_from_yaml

EXPLORE_KEY = "explore_scenario_yaml"
LAST_PLAN = "plan_last"
PREFILLED = ("plan_ttft", "plan_tpot", "plan_e2e", "plan_rate", "plan_window", "plan_gpus")
SOURCES = {"example": "Example", "upload": "Upload a scenario",
           "explore": "Explore page's scenario"}
CHART_METRICS = {"ttft": "p95 TTFT", "tpot": "p95 TPOT", "tokens_per_usd": "tokens per $"}

st.title("Plan a fleet")
st.caption("The cheapest fleets that hold your latency targets: each GPU tier × weight format "
           "× TP degree gets the fewest replicas that meet the targets in every seed, and the "
           "candidates are ranked by cost. Same planner as `servesim plan`.")

read_link_once("plan", plan_link.read_link)  # a shared link's settings, once a session

# --- the scenario: model, workload, and the targets it already states ----------------------
sources = ["example", "upload"] + (["explore"] if st.session_state.get(EXPLORE_KEY) else [])
source = st.radio("Scenario to plan for", sources, format_func=SOURCES.get, horizontal=True,
                  key="plan_source")
if source == "example":
    example = st.selectbox("Example scenario", example_names(first=DEFAULT_EXAMPLE),
                           key="plan_example")
    base_text = example_text(example)
elif source == "upload":
    upload = st.file_uploader("Scenario YAML (an `slo` section sets the targets)",
                              type=["yaml", "yml"], key="plan_upload")
    loaded = read_scenario_upload(upload)
    if loaded is None:
        if upload is None:
            st.info("Upload a one-pool scenario, e.g. one downloaded from the Explore page.")
        st.stop()
    base_text = loaded[0]
else:
    base_text = st.session_state[EXPLORE_KEY]

try:
    base = scenario_from_yaml(base_text)
    check_page_plannable(base)
except UserError as exc:
    st.error(f"This scenario cannot be planned: {exc}", icon=":material/error:")
    st.stop()

fill = prefill(base)
gpu_options = priced_gpus(base)
digest = hashlib.sha256(base_text.encode()).hexdigest()
# A new scenario refills the inputs it determines; so does a return to this page, which
# drops the state of widgets that were not on screen.
if (st.session_state.get("plan_loaded") != digest
        or any(key not in st.session_state for key in PREFILLED)):
    st.session_state.update({
        "plan_ttft": fill.ttft_p95_ms, "plan_tpot": fill.tpot_p95_ms,
        "plan_e2e": fill.e2e_p99_ms, "plan_rate": fill.rate_per_s, "plan_window": fill.window_s,
        "plan_gpus": [g for g in DEFAULT_GPUS if g in gpu_options] or gpu_options[:3],
        "plan_loaded": digest,
    })

st.caption(f"**{base.name}**: {base.model}, priced {price_tier(base).replace('_', '-')}.")

# --- targets and load ---------------------------------------------------------------------
st.subheader("Targets and load")
c1, c2, c3, c4, c5 = st.columns(5)
ttft = c1.number_input("p95 TTFT target (ms)", min_value=1.0, step=50.0, value=None,
                       format="%.0f", key="plan_ttft", help="Time to first token; empty: none")
tpot = c2.number_input("p95 TPOT target (ms)", min_value=0.1, step=5.0, value=None,
                       format="%.1f", key="plan_tpot",
                       help="Time per output token after the first; empty: none")
e2e = c3.number_input("p99 E2E target (ms, optional)", min_value=1.0, step=500.0, value=None,
                      format="%.0f", key="plan_e2e", help="Whole reply; empty: none")
rate = c4.number_input("Arrival rate (requests/s)", min_value=0.01, step=5.0, value=None,
                       format="%.2f", key="plan_rate", disabled=fill.rate_per_s is None,
                       help="Overrides the scenario's rate" if fill.rate_per_s is not None else
                       "These arrivals have no single rate (stages or a trace): the "
                       "scenario's own are used")
window = c5.number_input("Simulated window (s)", min_value=5.0, max_value=3600.0, step=10.0,
                         value=None, format="%.0f", key="plan_window",
                         disabled=fill.window_s is None,
                         help="Seconds of traffic per simulation; longer is steadier and slower"
                         if fill.window_s is not None else
                         "Staged arrivals: the stages set the length")

# --- candidates ---------------------------------------------------------------------------
st.subheader("Candidates")
g1, g2, g3, g4 = st.columns([3, 2, 1.3, 1])
gpus = g1.multiselect("GPU tiers ($ per GPU-hour)", gpu_options,
                      format_func=lambda gpu: gpu_label(base, gpu), key="plan_gpus")
formats = g2.multiselect("Weight formats", FORMAT_CHOICES, default=list(DEFAULT_FORMATS),
                         key="plan_formats")
tps = g3.multiselect("TP degree", TP_CHOICES, default=["auto"], key="plan_tp",
                     help="auto: the smallest of 1, 2, 4, 8 at which the model fits")
seed_count = g4.number_input("Seeds", min_value=1, max_value=10, value=DEFAULT_SEEDS, step=1,
                             key="plan_seeds", help="Every answer must hold in each seed")
if source == "example":  # the address asks this planning question again
    st.query_params.from_dict(plan_link.link_of(
        example, {"ttft_p95_ms": ttft, "tpot_p95_ms": tpot, "e2e_p99_ms": e2e,
                  "rate_per_s": rate, "window_s": window, "seeds": seed_count},
        {"gpus": gpus, "formats": formats, "tp": tps}))
else:
    st.query_params.clear()

problem = None
try:
    check_targets(ttft, tpot, e2e)
    text = planned_yaml(base_text, ttft_p95_ms=ttft, tpot_p95_ms=tpot, e2e_p99_ms=e2e,
                        rate_per_s=rate if fill.rate_per_s is not None else None,
                        window_s=window if fill.window_s is not None else None)
    scenario = scenario_from_yaml(text)
    check_plannable(scenario)
    check_run_size(scenario)  # per simulation: a plan runs many
    space = plan_space(gpus, formats, tp_degrees(tps))
    seeds = plan_seeds(scenario, int(seed_count))
except UserError as exc:
    problem = str(exc)

if problem:
    st.error(problem, icon=":material/error:")
else:
    st.caption(f"{len(space)} candidates × {len(seeds)} seeds: about "
               f"{expected_simulations(len(space), len(seeds))} simulations"
               + (f" of {window:,.0f} s of traffic" if fill.window_s is not None else "")
               + ". Candidates that cannot fit or are too slow at any size take none.")

if st.button("Find cheapest fleets", type="primary", key="plan_run", disabled=bool(problem)):
    try:
        st.session_state[LAST_PLAN] = cached_plan(text, candidate_keys(space), seeds)
    except (UserError, TraceError) as exc:
        st.error(f"Planning stopped: {exc}", icon=":material/error:")

# --- the answer ---------------------------------------------------------------------------
outcome = st.session_state.get(LAST_PLAN)
if outcome is None:
    st.info("Set the targets and candidates, then press **Find cheapest fleets**.")
    st.stop()

if problem or (outcome.scenario_yaml, outcome.space, outcome.seeds) != (
        text, candidate_keys(space), seeds):
    st.info("These results are for earlier inputs: press **Find cheapest fleets** to plan "
            "again.")

plans = list(outcome.plans)
planned = scenario_from_yaml(outcome.scenario_yaml)
best = winner(plans)
screened = [p for p in plans if p.status != "ok"]
st.subheader("Cheapest fleets")
if best is None:
    st.warning("No candidate holds the targets; the table says why for each. Loosen a target, "
               "lower the rate, or add faster GPU tiers, formats or TP degrees.", icon=":material/warning:")
else:
    m1, m2, m3, m4, m5, m6 = st.columns([2.2, 1, 1, 1, 1, 1])
    m1.metric("Cheapest fleet", candidate_label(best),
              help=f"Holds the targets in {best.seeds_held} of {best.seeds} seeds")
    m2.metric("Cost per hour", f"${best.usd_per_hour:,.2f}")
    m3.metric("Monthly bill", f"${best.monthly_usd:,.0f}")
    m4.metric("p95 TTFT (worst seed)", ms_text(best.ttft_p95_ms_worst))
    m5.metric("p95 TPOT (worst seed)", ms_text(best.tpot_p95_ms_worst, 1))
    m6.metric("$ per 1M output tokens", "–" if best.usd_per_million_output_tokens is None
              else f"${best.usd_per_million_output_tokens:,.3f}")
    trust = winner_prediction(best)
    for box, metric in ((m4, "ttft_ms"), (m5, "tpot_ms")):
        band = band_text(trust, metric, "p95")
        if band:
            box.caption(band)
    line = trust_line(trust)
    if line:
        st.caption(f"Cheapest fleet — {line[0].lower()}{line[1:]}")
st.caption(f"{len(plans)} candidates, {outcome.simulations} simulations in "
           f"{outcome.wall_s:.1f} s; {len(screened)} screened out (below, with the reason). "
           "Latencies are the worst seed's. Pareto: no other candidate is both cheaper and "
           "faster at p95 TTFT. Quality kept: share of the unquantized model's benchmark "
           "score (~: borrowed from other models).")

table = plan_table(plans)
if not table.empty:
    styled = (table.style
              .apply(lambda row: ["background-color: rgba(44, 160, 44, 0.18)"
                                  if row.name == 0 else "" for _ in row], axis=1)  # the winner
              .format({"$/hour": "${:,.2f}", "$/month": "${:,.0f}",
                       "$/1M output tokens": "${:,.3f}", "output tokens/$": "{:,.0f}",
                       "p95 TTFT (ms)": "{:,.0f}", "p95 TPOT (ms)": "{:,.1f}",
                       "p99 E2E (ms)": "{:,.0f}"}))
    st.dataframe(styled, hide_index=True, width="stretch", key="plan_table",
                 height=min(45 + 35 * len(table), 640))  # every row in view up to ~17
if screened:
    st.markdown(f"**Screened out** ({len(screened)}): these cannot hold the targets at any "
                "fleet size, or cannot run at all.")
    st.dataframe(screened_table(plans), hide_index=True, width="stretch",
                 key="plan_screened")

metric = st.radio("Chart cost against", list(CHART_METRICS), format_func=CHART_METRICS.get,
                  horizontal=True, key="plan_chart_y")
points = chart_points(plans, metric)
if points.empty:
    st.caption("No feasible candidate to chart.")
else:
    target = {"ttft": planned.slo.ttft_p95_ms, "tpot": planned.slo.tpot_p95_ms}.get(metric)
    st.altair_chart(pareto_chart(points, metric, target,
                                 f"{planned.name}: cost against {METRICS[metric][0]}"),
                    width="stretch")

d1, d2 = st.columns(2)
with d1:
    text_winner = winner_yaml(plans)
    if text_winner is not None:
        download_scenario(text_winner, best.scenario.name, key="plan_winner_download",
                          label="Download the winner's scenario (YAML)")
with d2:
    st.download_button("Download the plan (CSV)", plan_csv(plans),
                       file_name=f"{file_stem(planned.name)}-plan.csv", mime="text/csv",
                       key="plan_csv_download", help="Every candidate's figures, as "
                       "`servesim plan` writes plan.csv")
