"""Explore: one scenario — what users would see, what it costs, and what the engine did."""

import json

import streamlit as st

# The title first, before the simulator and the charts are imported: a new server's first visit
# sees the page at once, not after the imports.
st.title("Explore a serving setup")
st.caption("Pick a model, GPU tier, batching, quantization, caching and traffic in the sidebar; "
           "the simulator answers with the latency users would see and what it would cost. "
           "Deltas compare with your previous setting.")

import yaml  # noqa: E402

from app import capacity_view, run_charts  # noqa: E402
from app.explore_form import scenario_document  # noqa: E402
from app.explore_link import link_of, read_link  # noqa: E402
from app.link_state import read_link_once  # noqa: E402
from app.explore_widgets import sidebar_inputs  # noqa: E402
from app.prediction_note import band_basis, band_text, cdf_band_frame, trust_line  # noqa: E402
from app.run_figures import (billing_note, cost_figures, engine_figures,  # noqa: E402
                             latency_figures, overloaded, price_note, profile_lines,
                             saturation_banner, slo_banner, slo_lines)
from app.scenario_io import download_scenario, read_scenario_upload  # noqa: E402
from app.simulation import scenario_from_yaml, simulate_yaml, size_text  # noqa: E402
from sim.engine.errors import ScenarioError  # noqa: E402
from traces.errors import TraceError  # noqa: E402

read_link_once("explore", read_link)  # a shared link's settings, once a session

source = st.sidebar.radio("Scenario from", ["the settings below", "a scenario file"],
                          key="explore_source")
uploaded_trace = False
if source == "the settings below":
    inputs = sidebar_inputs()
    uploaded_trace = inputs.workload == "uploaded trace"
    text = yaml.safe_dump(scenario_document(inputs), sort_keys=False)
    st.session_state["explore_form_yaml"] = text
    st.query_params.from_dict(link_of(inputs))  # the address reproduces these settings
else:
    st.query_params.clear()  # a scenario file does not fit in an address: download it
    upload = st.sidebar.file_uploader("Scenario file (YAML)", type=["yaml", "yml"],
                                      key="explore_upload")
    loaded = read_scenario_upload(upload)
    if loaded is not None and st.session_state.get("explore_upload_id") != upload.file_id:
        st.session_state["explore_upload_id"] = upload.file_id
        st.session_state["explore_yaml"] = loaded[0]
    st.session_state.setdefault("explore_yaml", st.session_state.get("explore_form_yaml", ""))
    saved = st.session_state.get("saved_setups", {})
    if saved:
        chosen = st.sidebar.selectbox("…or a setup saved in this session", list(saved),
                                      key="explore_saved_choice")

        def load_saved() -> None:
            st.session_state["explore_yaml"] = st.session_state["saved_setups"][chosen]

        st.sidebar.button("Load it", key="explore_load_button", on_click=load_saved)
    text = st.sidebar.text_area("Scenario (YAML; edit and press Ctrl+Enter)", height=420,
                                key="explore_yaml")

try:
    size = size_text(scenario_from_yaml(text))
    with st.spinner(f"Simulating ({size})…" if size else "Simulating…"):
        run = simulate_yaml(text)
except (ScenarioError, TraceError) as exc:
    st.error(f"This scenario cannot run: {exc}", icon=":material/error:")
    st.stop()

last = st.session_state.get("explore_last")  # (scenario, summary) shown before this run
if last is not None and last[0] != text:
    st.session_state["explore_previous"] = last[1]  # what the deltas compare with
st.session_state["explore_last"] = (text, run.summary)
previous = st.session_state.get("explore_previous")
st.session_state["explore_scenario_yaml"] = text  # what Compare, Plan and Traces start from
summary = run.summary
before = ({f.label: f.value
           for f in latency_figures(previous) + cost_figures(previous) + engine_figures(previous)}
          if previous else {})


# an overloaded run's latencies grow with its window: a change in percent from or to one says
# nothing (and reads as "+2,381,558 %"), so no deltas then
comparable = not (overloaded(summary) or overloaded(previous))


def show_figures(figures, per_row=3, ranges=False):
    """The figures in rows of ``per_row`` (three fit a laptop screen beside the sidebar without
    cutting a label or a value short); with ``ranges``, the range the real latency may fall in
    (from the run's prediction band) under each latency that has one."""
    for first in range(0, len(figures), per_row):
        row = figures[first:first + per_row]
        for column, figure in zip(st.columns(per_row), row):
            change = figure.change_text(before.get(figure.label)) if comparable else None
            column.metric(figure.label, figure.text(), change,
                          help=figure.help or None,
                          delta_color="inverse" if figure.better == "lower" else
                          "normal" if figure.better == "higher" else "off")
            band = band_text(summary, *figure.source) if ranges and figure.source else None
            if band:
                column.caption(band)


requests = summary["requests"]
st.markdown(f"**{summary['model']}** on **{summary['replicas']} × {summary['gpu']}** "
            f"(TP {summary['tensor_parallel']}, {summary['weight_dtype']}) · "
            f"{requests['completed']:,} of {requests['arrived']:,} requests completed over "
            f"{summary['duration_s']:,.0f} s · simulated in {run.wall_s:.2f} s")
for line in profile_lines(summary):
    st.info(line[0].upper() + line[1:], icon=":material/tune:")
capped = (summary.get("trace") or {}).get("capped_at_num_requests")
if capped:
    st.info(f"The trace replay stopped at {capped:,} requests (Requests to replay): the trace "
            "holds more that were not replayed.", icon=":material/content_cut:")
banner = saturation_banner(summary)
if banner:
    st.error(banner, icon=":material/warning:")
verdict = slo_banner(summary)
if verdict is not None:
    (st.success if verdict[0] else st.error)(verdict[1])
if previous and not comparable:
    st.caption("No changes from the previous setting are shown: one of the two runs is "
               "overloaded, and its latencies depend on the window, not the setup.")

st.subheader("Latency")
show_figures(latency_figures(summary), ranges=True)
trust = trust_line(summary)
if trust:
    st.caption(trust, help=("Ranges: " + band_basis(summary))
               if summary["prediction"].get("band") else None)
for text_line, met in slo_lines(summary):
    st.caption(("✓ " if met else "✗ ") + text_line)

st.subheader("Cost")
show_figures(cost_figures(summary))
st.caption(billing_note(summary))
st.caption(price_note(summary))
quality = summary.get("quality_retention_percent")
if quality is not None:
    st.caption(f"Quality kept by the weight format: {quality:.1f} % of the unquantized model's "
               "accuracy")

st.subheader("Engine")
show_figures(engine_figures(summary))

slo = summary["slo"]
latency_tab, batch_tab, kv_tab, cdf_tab = st.tabs(
    ["Latency over time", "Batch size over time", "KV cache over time", "Latency CDFs"])
with latency_tab:
    left, right = st.columns(2)
    left.altair_chart(run_charts.latency_over_time(run.timeline, "ttft", slo.get("ttft_p95_ms")),
                      width="stretch")
    right.altair_chart(run_charts.latency_over_time(run.timeline, "e2e"),
                       width="stretch")
with batch_tab:
    left, right = st.columns(2)
    left.altair_chart(run_charts.batch_size_over_time(
        run.timeline, summary.get("engine", {}).get("max_num_seqs")), width="stretch")
    right.altair_chart(run_charts.arrivals_over_time(run.timeline), width="stretch")
with kv_tab:
    st.altair_chart(run_charts.kv_usage_over_time(run.timeline), width="stretch")
with cdf_tab:
    for column, metric in zip(st.columns(3), ("TTFT", "TPOT", "E2E")):
        column.altair_chart(run_charts.latency_cdf(run.cdf, metric,
                                                   cdf_band_frame(summary, metric, run.cdf)),
                            width="stretch")

st.subheader("Highest sustainable rate")
st.caption("The highest arrival rate at which this setup still meets the SLO (rejections "
           "within its limit) and the queue keeps up, and the headroom over the offered load: "
           "the load is scaled up and down, "
           "each load simulated once (about 8–14 runs of this scenario, a few more where the "
           "latency model has a range).")
capacity = st.session_state.get("explore_capacity")  # {"yaml": the scenario it answers, ...}
if capacity is not None and capacity["yaml"] != text:
    del st.session_state["explore_capacity"]  # the scenario changed: that answer is not its
    capacity = None
if capacity is None and st.button("Find the highest sustainable rate",
                                  key="explore_capacity_button", icon=":material/speed:"):
    scenario = scenario_from_yaml(text)
    tracker = capacity_view.SearchProgress(scenario)
    bar = st.progress(0.0, text="Searching for the highest rate that holds the SLO…")

    def show_progress(check, end):
        bar.progress(*tracker.update(check, end))

    capacity = capacity_view.capacity_search(text, scenario, show_progress)
    bar.empty()
    st.session_state["explore_capacity"] = capacity
if capacity is not None and capacity["error"] is not None:
    st.info(capacity["error"][0].upper() + capacity["error"][1:], icon=":material/info:")
elif capacity is not None:
    report = capacity["report"]
    st.markdown(f"**Highest sustainable rate: {capacity_view.answer_text(report)}**")
    headroom = capacity_view.headroom_text(report)
    if headroom:
        st.markdown(headroom)
    if report["max_rate_per_s"] is None:
        st.warning(report["message"][0].upper() + report["message"][1:] + ".",
                   icon=":material/warning:")
    for line in capacity_view.summary_lines(report):
        st.caption(line)
    st.altair_chart(capacity_view.capacity_chart(report), width="stretch")
    st.caption(f"{report['simulations']} simulations in {capacity['wall_s']:.1f} s.")
    st.download_button("Download the search (JSON)", json.dumps(report, indent=2),
                       file_name=f"{summary['scenario']}-capacity.json",
                       mime="application/json", key="explore_capacity_download")

with st.expander("The scenario behind these numbers"):
    st.code(run.scenario_yaml, language="yaml")
download_scenario(run.scenario_yaml, summary["scenario"], key="explore_download")
name_col, save_col = st.columns([3, 1], vertical_alignment="bottom")
save_name = name_col.text_input("Save this setup in the session as", key="explore_save_name",
                                placeholder=summary["scenario"])


def save_setup() -> None:
    """Keep the scenario behind these numbers under a name, to load again from the sidebar
    (a scenario file) later in this session; download it to keep it for good."""
    name = (st.session_state.get("explore_save_name") or summary["scenario"]).strip()
    st.session_state.setdefault("saved_setups", {})[name] = run.scenario_yaml


save_col.button("Save", key="explore_save_button", on_click=save_setup,
                icon=":material/bookmark_add:")
if st.session_state.get("saved_setups"):
    st.caption("Saved in this session: " + ", ".join(st.session_state["saved_setups"])
               + " (load one with *a scenario file* in the sidebar).")
if uploaded_trace:
    st.caption("This scenario reads your uploaded trace from this server's temporary copy; to "
               "run it elsewhere, put the trace file beside it and set workload.trace.path.")
