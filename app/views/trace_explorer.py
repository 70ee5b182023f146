"""Traces: what a request log looks like, and what it does to a fleet when replayed."""

from pathlib import Path

import altair as alt
import streamlit as st

from sim.engine.errors import ScenarioError
from sim.engine.gpu import list_gpus
from traces.bundled import sources_and_licenses
from traces.bundled import names as bundled_names
from traces.errors import TraceError
from traces.trace import FORMATS, detect_format

from app.scenario_io import download_scenario, file_stem
from app.simulation import simulate_yaml
from app.trace_replay import (DEFAULT_MAX_REQUESTS, DEFAULT_WINDOW_S, base_scenarios,
                              pool_hardware, replay_figures, replay_yaml, trace_spec)
from app.trace_upload import SUFFIXES, formats_help, max_upload_mb, store_upload
from app.trace_view import (duration_text, file_fingerprint, histogram_chart, label_chart,
                            label_counts, length_table, load_figures, rate_chart,
                            readable_error)

DEFAULT_TRACE = "azure-conv-2023"  # an hour of chat traffic, 19k rows: quick to read and replay
BUNDLED, UPLOAD = "Bundled trace", "Upload a file"
DETECT = "detect from the file"
EXPLORE_KEY = "explore_scenario_yaml"  # the Explore page's last scenario
EXPLORE_LABEL = "Explore page's last scenario"


def show_error(message: str, with_formats: bool = False) -> None:
    """An error that says what to do; with the accepted formats when the format is the issue."""
    if with_formats:
        message += ("\n\nChoose the format under **Format**, or pick **generic** and name the "
                    "columns. Accepted formats:\n\n" + formats_help())
    st.error(message, icon=":material/error:")


def is_format_problem(message: str) -> bool:
    return any(text in message for text in ("cannot tell the trace format", "ambiguous",
                                            "missing column", "not a Parquet file",
                                            "probably in another format", "not valid JSON"))


st.title("Traces")
st.caption("Look at a request log — its rate over time, prompt and reply lengths, prefix "
           "reuse — then replay it on a fleet of your choice. Pick a bundled public trace or "
           "upload your own.")

# ---- the trace ------------------------------------------------------------------------------
source = st.radio("Trace", [BUNDLED, UPLOAD], horizontal=True, key="traces_source")
columns: dict[str, str] = {}
upload_path: Path | None = None
left, middle, right = st.columns([2, 1, 1])
policy = right.radio("Bad rows", ["error", "skip"], horizontal=True, key="traces_bad_rows",
                     help="error: stop at the first bad row (a missing, negative or "
                          "non-integer length, a time out of order) and say where it is; "
                          "skip: drop bad rows and count them.")

if source == BUNDLED:
    names = bundled_names()
    trace_name = left.selectbox("Bundled trace", names, index=names.index(DEFAULT_TRACE),
                                key="traces_bundled")
    origin, license_ = sources_and_licenses().get(trace_name, ("", ""))
    if origin:
        left.caption(f"Source: {origin} ({license_}); see traces/bundled/PROVENANCE.md.")
    trace_source, shown_name, chosen_format = trace_name, trace_name, None
else:
    limit_mb = max_upload_mb()
    upload = left.file_uploader(
        "Trace file", type=[suffix.lstrip(".") for suffix in SUFFIXES], key="traces_upload",
        help=f"CSV, JSON lines, a vLLM benchmark JSON or Parquet, up to {limit_mb:,} MB.")
    with left.expander("Accepted formats and their columns"):
        st.markdown(formats_help())
    picked = middle.selectbox("Format", [DETECT, *sorted(FORMATS)], key="traces_format",
                              help="Detected from the file's name and first lines; choose it "
                                   "when detection fails or is ambiguous.")
    if picked == "generic":
        with st.expander("Columns of the generic file", expanded=True):
            mapping = st.columns(4)
            columns = {
                "arrival": mapping[0].text_input("Arrival time column", "arrival_s",
                                                 key="traces_col_arrival"),
                "arrival_unit": mapping[1].selectbox("Arrival unit",
                                                     ["s", "ms", "us", "ns", "datetime"],
                                                     key="traces_col_unit"),
                "input": mapping[2].text_input("Input tokens column", "input_tokens",
                                               key="traces_col_input"),
                "output": mapping[3].text_input("Output tokens column", "output_tokens",
                                                key="traces_col_output"),
            }
    if upload is None:
        st.info(f"Upload a trace file (up to {limit_mb:,} MB) to see its figures, or pick a "
                "bundled trace.")
        st.stop()
    try:
        upload_path = store_upload(upload, st.session_state, limit_mb)
    except TraceError as exc:
        show_error(str(exc))
        st.stop()
    trace_source, shown_name = str(upload_path), upload.name
    chosen_format = None if picked == DETECT else picked
    if chosen_format is None:
        try:
            chosen_format = detect_format(upload_path)
        except TraceError as exc:
            show_error(readable_error(str(exc), upload_path, shown_name), with_formats=True)
            st.stop()
        middle.caption(f"Detected: **{chosen_format}**")

with st.spinner(f"Reading {shown_name}…"):
    fingerprint = file_fingerprint(upload_path) if upload_path else shown_name
    figures, problem = load_figures(trace_source, chosen_format, policy,
                                    tuple(sorted(columns.items())), fingerprint)
if figures is None:
    message = readable_error(problem, upload_path, shown_name)
    show_error(message, with_formats=upload_path is not None and is_format_problem(message))
    st.stop()

stats = figures.stats
st.subheader(f"{shown_name} ({figures.format})")
cells = st.columns(6)
cells[0].metric("requests", f"{stats['rows']:,}")
cells[1].metric("duration", duration_text(stats["span_s"]),
                help="Last arrival less the first.")
rate = stats["mean_rate_per_s"]
cells[2].metric("mean rate", "–" if rate is None else f"{rate:,.1f} req/s")
cv = stats["burstiness_cv"]
cells[3].metric("burstiness (CV)", "–" if cv is None else f"{cv:.2f}",
                help="Coefficient of variation of the gaps between arrivals: 1 for Poisson "
                     "traffic, above 1 for bursts.")
cells[4].metric("peak rate", f"{figures.rate['requests_per_s'].max():,.1f} req/s",
                help=f"The busiest {duration_text(figures.rate_bucket_s)} of the trace.")
prefix = stats["prefix"]
if prefix is not None:
    cells[5].metric("prefix reuse", f"{prefix['reuse_ratio']:.1%}",
                    help=f"Share of input tokens a prefix cache of unbounded size could serve "
                         f"({prefix['reusable_tokens']:,} of {prefix['input_tokens']:,}; blocks "
                         f"of {prefix['block_tokens']} tokens).")
elif stats["sessions"] is not None:
    cells[5].metric("sessions", f"{stats['sessions']:,}")

if figures.bad_rows and figures.bad_rows["rows_dropped"]:
    bad = figures.bad_rows
    st.warning(f"{bad['rows_dropped']:,} bad rows dropped of {bad['rows_read']:,} read "
               f"({bad['rows_kept']:,} kept).")
    st.dataframe([{"problem": reason, "rows": count,
                   "first": readable_error(bad["first_examples"][reason], upload_path,
                                           shown_name, markdown=False)}
                  for reason, count in bad["dropped_by_reason"].items()],
                 hide_index=True, width="stretch")

st.dataframe(length_table(stats).style.format("{:,.0f}").format("{:,.1f}", subset=["mean"]),
             width="stretch")
st.altair_chart(rate_chart(figures), width="stretch")
log_scale = st.toggle("Log-scale lengths", value=True, key="traces_log",
                      help="Prompt and reply lengths are long-tailed: log-spaced bins show "
                           "the short and the long ones alike.")
hist_left, hist_right = st.columns(2)
hist_left.altair_chart(histogram_chart(figures.input_hist[log_scale], "input", log_scale),
                       width="stretch")
hist_right.altair_chart(histogram_chart(figures.output_hist[log_scale], "output", log_scale),
                        width="stretch")
for key, what in (("models", "model"), ("endpoints", "endpoint")):
    counts = label_counts(stats[key])
    if counts is not None:
        st.altair_chart(label_chart(counts, what), width="stretch")

# ---- replay ---------------------------------------------------------------------------------
st.header("Replay on a fleet")
st.caption("The base scenario gives the model, GPUs, engine and SLO; its workload is replaced "
           "by this trace. The defaults replay the first ten minutes, at most "
           f"{DEFAULT_MAX_REQUESTS:,} requests, so the run takes seconds.")
bases = base_scenarios()
explore_text = st.session_state.get(EXPLORE_KEY)
if isinstance(explore_text, str) and explore_text.strip():
    bases = {EXPLORE_LABEL: explore_text, **bases}
base_label = st.selectbox("Base scenario", list(bases), key="traces_base")
base_text = bases[base_label]

gpu = replicas = None
fleet_left, fleet_right = st.columns(2)
hardware = pool_hardware(base_text)
if hardware is None:
    fleet_left.caption("A fleet of pools: its GPUs and replicas are kept as the scenario sets "
                       "them.")
else:
    gpus = list_gpus()
    if hardware[0] not in gpus:
        gpus = [hardware[0], *gpus]
    # keyed by base scenario, so picking another base starts from its own GPU and replicas
    gpu = fleet_left.selectbox("GPU", gpus, index=gpus.index(hardware[0]),
                               key=f"traces_gpu:{base_label}")
    replicas = fleet_right.number_input("Replicas", 1, 1024, hardware[1],
                                        key=f"traces_replicas:{base_label}")

knobs = st.columns(6)
start_s = knobs[0].number_input("Window start (s)", 0.0, None, 0.0, step=60.0,
                                format="%.0f", key="traces_start_s",
                                help="Seconds from the trace's first request.")
end_s = knobs[1].number_input("Window end (s)", 0.0, None, DEFAULT_WINDOW_S, step=60.0,
                              format="%.0f", key="traces_end_s",
                              help="0 replays to the end of the trace.")
rate_scale = knobs[2].number_input("Rate scale", 0.01, 100.0, 1.0, step=0.25,
                                   key="traces_rate_scale",
                                   help="2 sends about twice the requests (copies of each "
                                        "request); 0.5 keeps about half.")
time_scale = knobs[3].number_input("Time scale", 0.01, 100.0, 1.0, step=0.25,
                                   key="traces_time_scale",
                                   help="Multiplies the gaps between arrivals: 0.5 replays "
                                        "twice as fast.")
sample = knobs[4].number_input("Sample", 0.01, 1.0, 1.0, step=0.05, key="traces_sample",
                               help="Keep this random fraction of the requests.")
max_requests = knobs[5].number_input("Max requests", 1, 1_000_000, DEFAULT_MAX_REQUESTS,
                                     step=500, key="traces_max_requests")

if start_s > stats["span_s"]:
    show_error(f"The window starts at {start_s:,.0f} s, after the trace's last request "
               f"({stats['span_s']:,.0f} s from the first): set a start below that, so the "
               "window holds requests to replay.")
    st.stop()
if end_s and end_s <= start_s:
    show_error(f"The window ends at {end_s:,.0f} s, before it starts ({start_s:,.0f} s): set "
               "the end after the start, or to 0 to replay to the end of the trace.")
    st.stop()

spec = trace_spec(trace_source, figures.format if upload_path else None, policy, columns,
                  start_s, end_s or None, time_scale, rate_scale, sample)
base_name = Path(base_label).stem if base_label != EXPLORE_LABEL else "explore"
name = f"{file_stem(base_name)}-replay-{file_stem(Path(shown_name).stem)}"
try:
    text = replay_yaml(base_text, spec, int(max_requests), gpu=gpu,
                       replicas=None if replicas is None else int(replicas), name=name)
    with st.spinner("Replaying the trace…"):
        run = simulate_yaml(text)
except (ScenarioError, TraceError) as exc:
    show_error(readable_error(str(exc), upload_path, shown_name))
    st.stop()

capped = (run.summary.get("trace") or {}).get("capped_at_num_requests")
if capped:
    st.info(f"The replay stopped at {capped:,} requests (Max requests): the window holds more "
            "that were not replayed. Raise Max requests, or narrow the window, to replay all "
            "of it.", icon=":material/content_cut:")
figures_shown = replay_figures(run.summary)
for row in (list(figures_shown.items())[:6], list(figures_shown.items())[6:]):
    for cell, (label, value) in zip(st.columns(6), row):
        cell.metric(label, value)
profile = run.summary.get("latency_profile") or {}
st.caption(f"Simulated {run.summary['duration_s']:,.0f} s of traffic in {run.wall_s:,.1f} s. "
           f"Latency model: {profile.get('name', 'default')}.")

timeline = run.timeline.melt(id_vars="time_s", value_vars=["ttft_p50_ms", "ttft_p95_ms"],
                             var_name="quantile", value_name="ttft_ms").dropna()
timeline["quantile"] = timeline["quantile"].map({"ttft_p50_ms": "p50", "ttft_p95_ms": "p95"})
st.altair_chart(alt.Chart(timeline, title="TTFT over the replay (by arrival time)").mark_line()
                .encode(x=alt.X("time_s:Q", title="time (s)"),
                        y=alt.Y("ttft_ms:Q", title="TTFT (ms)"),
                        color=alt.Color("quantile:N", title="quantile"),
                        tooltip=[alt.Tooltip("time_s:Q", title="time (s)", format=",.0f"),
                                 alt.Tooltip("quantile:N"),
                                 alt.Tooltip("ttft_ms:Q", title="TTFT (ms)", format=",.1f")]),
                width="stretch")

download_scenario(run.scenario_yaml, name, key="traces_download",
                  label="Download the replay scenario")
if upload_path is not None:
    st.caption("This scenario points at the uploaded file's temporary copy on this server, so "
               "it runs only here, while your session lasts. To run it elsewhere, set "
               "`workload.trace.path` to your own copy of the file.")
