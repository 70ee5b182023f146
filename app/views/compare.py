"""Compare: a baseline and up to three changes side by side — key figures with deltas, latency
against load, cost per million tokens at equal SLO, and a before/after report to share."""

import hashlib

import streamlit as st
import yaml

from app import compare_inputs as inputs
from app import compare_link
from app.link_state import read_link_once
from app.before_after_report import build_report
from app.compare_charts import X_AXES, cost_at_slo_chart, latency_bars, latency_chart
from app.compare_figures import (Column, coverage_note, figure_frame, figure_rows, format_change,
                                 format_value, latency_bar_frame, recommendation, seed_lines,
                                 uncertainty_lines)
from app.examples import example_names, example_text
from app.rate_curve import (best_at_slo, curve_frame, measured_rate, plan_sweep, point_row,
                            sweep_multipliers)
from app.scenario_io import download_scenario, file_stem, read_scenario_upload
from app.simulation import checked_document, simulate_yaml
from sim.config.scenario import parse_scenario
from sim.engine.errors import UserError
from traces.errors import TraceError

EXPLORE_KEY = "explore_scenario_yaml"  # the scenario the Explore page last ran
SOURCES = ["Bundled example", "Uploaded file", "Explore page's scenario"]
MISTAKES = (UserError, TraceError)  # what a user's scenario can raise: shown, not traced
# From light load to past saturation for the default chat baseline (one H100 at 5.5 req/s).
DEFAULT_SEEDS = 3
SWEEP_DEFAULTS = {"compare_sweep_low": 0.25, "compare_sweep_high": 5.0, "compare_sweep_points": 6}
COLOURS = {"better": "background-color: #e3f4e3; color: #185c18",
           "worse": "background-color: #fbe4e4; color: #8a1c1c", "": ""}

st.title("Compare scenarios")
st.caption("A baseline and up to three changes — another GPU, a weight format, a scheduler — "
           "under the same load and SLO. Each column is simulated from the scenario file you "
           "can download under it.")

read_link_once("compare", compare_link.read_link)  # a shared link's settings, once a session

# ---------------------------------------------------------------- baseline
st.subheader("Baseline")
options = SOURCES[:2] + ([SOURCES[2]] if st.session_state.get(EXPLORE_KEY) else [])
source = st.radio("Baseline from", options, horizontal=True, key="compare_baseline_source")
if source == "Uploaded file":
    upload = st.file_uploader("Baseline scenario (YAML)", type=["yaml", "yml"],
                              key="compare_baseline_upload")
    loaded = read_scenario_upload(upload)
    if loaded is None:
        if upload is None:
            st.info("Upload a scenario file, such as those in examples/, to compare against.")
        st.stop()
    base_text, where = loaded[0], upload.name
elif source == SOURCES[2]:
    base_text, where = st.session_state[EXPLORE_KEY], "the Explore page's scenario"
else:
    names = example_names(first=inputs.DEFAULT_EXAMPLE)
    example = st.selectbox("Example", names, key="compare_example")
    base_text, where = example_text(example), example

try:
    base_data = checked_document(base_text, where=where)
    base_scenario = parse_scenario(base_data)
except MISTAKES as exc:
    st.error(f"{where}: {exc}", icon=":material/error:")
    st.stop()

knob = inputs.load_knob(base_scenario)
own_slo = inputs.slo_of(base_scenario)
load_key = "compare_users" if knob is not None and knob.integer else "compare_load"
baseline_id = hashlib.sha256(base_text.encode()).hexdigest()
if st.session_state.get("compare_baseline_id") != baseline_id:
    # A new baseline brings its own load and SLO; the user's edits apply to one baseline.
    st.session_state["compare_baseline_id"] = baseline_id
    if knob is not None:
        st.session_state[load_key] = int(knob.value) if knob.integer else float(knob.value)
    st.session_state["compare_slo_ttft"] = float(own_slo.ttft_p95_ms or 0.0)
    st.session_state["compare_slo_tpot"] = float(own_slo.tpot_p95_ms or 0.0)
st.session_state.setdefault("compare_duration", inputs.DEFAULT_DURATION_S)

load_col, duration_col, ttft_col, tpot_col, seeds_col = st.columns(5)
if knob is not None:
    if knob.integer:
        value = load_col.number_input(knob.label, min_value=1, step=1, key=load_key)
    else:
        value = load_col.number_input(knob.label, min_value=0.01, step=0.5, format="%.2f",
                                      key=load_key)
    knob = inputs.LoadKnob(knob.kind, knob.label, float(value), knob.integer)
else:
    load_col.caption("All requests arrive at once: no rate to set or sweep.")
duration = duration_col.number_input(
    "Seconds of traffic per run", min_value=5.0, max_value=900.0, step=5.0,
    key="compare_duration", help="Each column and each point of the sweep simulates this much "
    "traffic (a trace: this window of it). Longer is steadier and slower.")
ttft = ttft_col.number_input("SLO: p95 TTFT (ms)", min_value=0.0, step=50.0,
                             key="compare_slo_ttft", help="0: no limit")
tpot = tpot_col.number_input("SLO: p95 TPOT (ms)", min_value=0.0, step=5.0,
                             key="compare_slo_tpot", help="0: no limit")
seed_count = int(seeds_col.number_input(
    "Seeds per setup", min_value=1, max_value=10, value=DEFAULT_SEEDS, step=1,
    key="compare_seeds", help="Each setup's key figures are simulated on this many seeds; a "
    "setup holds the SLO only if it does on every seed, and the spread across seeds is shown."))
slo = inputs.SloTarget(ttft or None, tpot or None, own_slo.e2e_p99_ms)
if not inputs.sets_slo(base_scenario):
    st.caption("The baseline sets no SLO; these are common chat targets. Every column is "
               "judged against the SLO above.")
settings = inputs.Settings(knob, duration, slo)

try:
    base_settled = inputs.settle(base_data, settings)
    columns_text = [("baseline", inputs.canonical_yaml(base_settled))]
    with st.spinner("Simulating the baseline…"):
        runs = [simulate_yaml(columns_text[0][1])]
except MISTAKES as exc:
    st.error(f"The baseline cannot run: {exc}", icon=":material/error:")
    st.stop()
documents = [base_settled]

# ---------------------------------------------------------------- changes
st.subheader("Changes")
st.caption("Write each change as overrides of the baseline, one `section.key=value` a line "
           "(keys as in docs/scenario.md), or upload a scenario file of its own; the load, "
           "duration and SLO above apply to every column.")
st.session_state.setdefault("compare_n_changes", len(inputs.DEFAULT_CHANGES))
for i, (name, overrides) in enumerate(inputs.DEFAULT_CHANGES):
    st.session_state.setdefault(f"compare_change{i}_name", name)
    st.session_state.setdefault(f"compare_change{i}_overrides", overrides)
count = st.number_input("Number of changes", min_value=1, max_value=3, step=1,
                        key="compare_n_changes")
for i, column in enumerate(st.columns(count)):
    with column:
        label = st.text_input("Name", key=f"compare_change{i}_name").strip() or f"change {i + 1}"
        while label in [name for name, _ in columns_text]:
            label += " (again)"
        text = st.text_area("Overrides", key=f"compare_change{i}_overrides", height=100)
        upload = st.file_uploader("…or a scenario file instead", type=["yaml", "yml"],
                                  key=f"compare_change{i}_upload")
        try:
            if upload is not None:
                loaded = read_scenario_upload(upload)  # shows its own error
                if loaded is None:
                    continue
                document = inputs.settle(yaml.safe_load(loaded[0]), settings)
            else:
                document = inputs.apply_change(base_settled, text)
                kept = inputs.kept_for_another_gpu(base_settled, document)
                if kept:
                    st.warning(f"{label} moves to another GPU but keeps the baseline's "
                               f"{', '.join(kept)}, set for the old one: add "
                               f"`{kept[0]}=null` to let the simulator work it out.")
            change_text = inputs.canonical_yaml(
                document, name=f"{base_scenario.name} ({label})")
            with st.spinner(f"Simulating {label}…"):
                run = simulate_yaml(change_text)
        except MISTAKES as exc:
            st.error(f"{label}: {exc}", icon=":material/error:")
            continue
        columns_text.append((label, change_text))
        documents.append(document)
        runs.append(run)

def other_seeds(text: str, first: dict) -> tuple[dict, ...]:
    """The setup's summaries on ``seed_count`` seeds (its own seed first)."""
    if seed_count == 1:
        return ()
    document = yaml.safe_load(text)
    summaries = [first]
    for k in range(1, seed_count):
        try:
            again = inputs.canonical_yaml({**document, "seed": int(document.get("seed", 0)) + k})
            summaries.append(simulate_yaml(again).summary)
        except MISTAKES as exc:  # (the first seed ran: another cannot fail for the scenario)
            st.error(f"{document.get('name')}, seed +{k}: {exc}", icon=":material/error:")
    return tuple(summaries)


with st.spinner(f"Simulating every setup on {seed_count} seeds…"):
    columns = [Column(name, text, run.summary, other_seeds(text, run.summary))
               for (name, text), run in zip(columns_text, runs)]
names = [column.name for column in columns]
if source == SOURCES[0]:  # the address reproduces a comparison on a bundled baseline
    st.query_params.from_dict(compare_link.link_of(
        example, None if knob is None else knob.value, duration, ttft, tpot, seed_count,
        [(st.session_state[f"compare_change{i}_name"],
          st.session_state[f"compare_change{i}_overrides"]) for i in range(count)]))
else:
    st.query_params.clear()

# ---------------------------------------------------------------- key figures
st.subheader("Key figures")
load_words = "" if knob is None else f"{inputs.describe_load(knob)}, "
rows = figure_rows(columns, slo)
by_label = {row["figure"]: row for row in rows}
decision = st.empty()  # the recommendation: at this load now, at equal SLO once swept
decision.info(recommendation(columns, rows), icon=":material/lightbulb:")
st.caption(f"At the baseline's load ({load_words}{duration:g} s of traffic); SLO: "
           f"{slo.describe()}. Green: better than the baseline; red: worse; a setup that "
           "misses the SLO or falls behind the load is never shown as a saving.")
for i, (column, box) in enumerate(zip(columns, st.columns(len(columns)))):
    cost = by_label["$ per 1M tokens"]
    holds = by_label["meets the SLO"]["values"][i] and \
        by_label["keeps up with the load"]["values"][i] is not False
    box.metric(f"{column.name}: $ per 1M tokens", format_value(cost["values"][i], "$"),
               (format_change(cost["change_pct"][i]) or None) if holds else None,
               delta_color="inverse",
               help="Input and output tokens, at the fleet's hourly price over the arrival "
               "window (the queue draining after it is lag, not billed).")
    if not holds:
        box.caption(":red[Misses the SLO or falls behind the load: not a saving.]")
table, marks = figure_frame(columns, rows)
colours = marks.map(lambda verdict: COLOURS.get(verdict, ""))
st.dataframe(table.style.apply(lambda _: colours, axis=None), hide_index=True, width="stretch")
for i, (column, box) in enumerate(zip(columns, st.columns(len(columns)))):
    with box:
        download_scenario(column.scenario_yaml, f"{base_scenario.name}-{column.name}",
                          key=f"compare_download_{i}", label=f"Scenario: {column.name}")
        note = coverage_note(column)
        if note:
            st.caption(note)
bars = latency_bar_frame(columns)
if not bars.empty:
    st.altair_chart(latency_bars(bars, names), width="content")
for line in uncertainty_lines(columns) + seed_lines(columns):
    st.caption(line)

# ---------------------------------------------------------------- latency against load
st.subheader("Latency against load")
curve = curve_frame([])
if knob is None:
    st.info("The baseline's requests all arrive at once, so there is no arrival rate to "
            "sweep: pick a scenario with a rate, stages, a trace or a closed loop.")
else:
    st.caption("Every column run again at loads from low to past saturation (× the load "
               "above); each point is cached, so asking again is instant.")
    for key, default in SWEEP_DEFAULTS.items():
        st.session_state.setdefault(key, default)
    low_col, high_col, points_col, x_col = st.columns(4)
    low = low_col.number_input("From (× the load)", min_value=0.05, max_value=10.0, step=0.05,
                               key="compare_sweep_low")
    high = high_col.number_input("To (× the load)", min_value=0.1, max_value=20.0, step=0.25,
                                 key="compare_sweep_high")
    points = points_col.slider("Points per line", min_value=3, max_value=10,
                               key="compare_sweep_points")
    x_axis = x_col.radio("Along x", list(X_AXES), key="compare_curve_x")
    try:
        multipliers = sweep_multipliers(low, high, points)
    except ValueError:
        st.error(f"The sweep goes from {low:g}× to {high:g}× the load: make the first "
                 "smaller than the second.", icon=":material/warning:")
        multipliers = []
    planned = []
    for name, document in zip(names, documents):
        own = inputs.load_knob(parse_scenario(document))
        if own is not None and multipliers:
            planned += plan_sweep(name, document, own, multipliers)
    progress = st.progress(0.0, text="Sweeping the load…")
    curve_rows, failures = [], []
    for k, point in enumerate(planned):
        progress.progress(k / len(planned), text=f"Simulating {point.scenario} at "
                                                 f"{point.level:g} ({k + 1} of {len(planned)})")
        try:
            run = simulate_yaml(point.scenario_yaml)
        except MISTAKES as exc:
            failures.append(f"{point.scenario} at {point.level:g}: {exc}")
            continue
        curve_rows.append(point_row(point, run.summary, measured_rate(run.records["arrival_s"]),
                                    slo))
    progress.empty()
    for failure in failures:
        st.error(failure, icon=":material/error:")
    curve = curve_frame(curve_rows)
    if not curve.empty:
        left, right = st.columns(2)
        left.altair_chart(latency_chart(curve, "ttft", slo.ttft_p95_ms, x_axis, names),
                          width="stretch")
        right.altair_chart(latency_chart(curve, "tpot", slo.tpot_p95_ms, x_axis, names),
                           width="stretch")
        with st.expander("Every point of the sweep"):
            st.dataframe(curve.drop(columns=["level"]).round(3), hide_index=True,
                         width="stretch")

# ---------------------------------------------------------------- cost at equal SLO
st.subheader("Cost per 1M tokens at equal SLO")
best = None
if curve.empty:
    st.info("No sweep to pick from; see above.")
elif not slo.is_set:
    st.info("Set an SLO above to find the load each scenario sustains within it.")
else:
    best = best_at_slo(curve, order=names)
    st.caption("For each column, the highest swept load before the SLO first fails, and what "
               "a million tokens cost with the fleet that busy. ≥: the SLO held at every "
               "swept load, so the column can take more.")
    chart_col, table_col = st.columns([3, 2])
    if best["usd_per_million_tokens"].notna().any():
        chart_col.altair_chart(cost_at_slo_chart(best, names), width="stretch")
    shown = best.assign(
        load=[("≥ " if row.past_sweep else "") + f"{row.offered_rps:.2f} req/s"
              if row.holds_at_lowest else "missed at every load" for row in best.itertuples()],
        cost=[format_value(v, "$") if v == v else "–" for v in best["usd_per_million_tokens"]],
        change=["" if i == 0 or v != v else format_change(v)
                for i, v in enumerate(best["change_pct"])],
    )[["scenario", "load", "cost", "change"]].rename(columns={
        "load": "highest load within the SLO", "cost": "$ per 1M tokens",
        "change": "Δ against baseline"})
    table_col.dataframe(shown, hide_index=True, width="stretch")
    decision.info(recommendation(columns, rows, best), icon=":material/lightbulb:")

# ---------------------------------------------------------------- report
st.subheader("Before/after report")
st.caption("A self-contained HTML page for finance and leadership: cost per 1M tokens, monthly "
           "bill, p95 latency, quality kept, the load each column sustains within the SLO, "
           "every assumption and the source of every price and latency figure. The ZIP adds "
           "the charts as PNG and the scenario files.")
notes = [f"Each run simulates {duration:g} s of traffic; the sweep runs {len(curve)} points."]
report: dict = {}  # built once, on the first download asked for


def _report():
    if "files" not in report:
        report["files"] = build_report(columns, slo, curve, best, notes=notes)
    return report["files"]


stem = file_stem(f"{base_scenario.name}-before-after")
html_col, zip_col = st.columns(2)
html_col.download_button("Download the report (HTML)", lambda: _report().html,
                         file_name=f"{stem}.html", mime="text/html", key="compare_report_html",
                         on_click="ignore")
zip_col.download_button("Download report, charts and scenarios (ZIP)",
                        lambda: _report().zip_bytes(), file_name=f"{stem}.zip",
                        mime="application/zip", key="compare_report_zip", on_click="ignore")
