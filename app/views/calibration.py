"""Calibration: which latency profiles exist, what they hold, which configurations are fitted to
measurements, and how close each profile's predictions come to the bundled measurements."""

import tempfile
from pathlib import Path
from typing import get_args

import streamlit as st

from sim.config.model_catalog import list_models
from sim.config.scenario import WeightDtype
from sim.engine.errors import ScenarioError
from sim.engine.gpu import list_gpus

from app import calibration_charts as charts
from app.calibration_checks import (DEFAULT_STEP_DATASETS, RUN_DATASETS, STEP_DATASETS,
                                    cached_replay_errors, cached_step_predictions,
                                    error_percentiles, mean_errors, overall_errors)
from app.calibration_view import (PROFILE_DIR_ENV, auto_profile_name, coefficient_names,
                                  calibrated_configurations, coefficient_table,
                                  configuration_status, coverage_matrix, describe_match,
                                  folder_profiles, profile_folder, resolved_table,
                                  shipped_profiles, uploaded_choice)
from app.scenario_io import file_stem

st.title("Calibration")
st.markdown(
    "A **latency profile** holds the few coefficients of the step-time model (efficiencies and "
    "overheads multiplying roofline terms; see docs/latency-model.md). A configuration "
    "(model, GPU, TP, weight format) with an override fitted to its own measurements is "
    "**calibrated**; every other configuration uses the profile's base coefficients. Check "
    "here whether the numbers you plan with are calibrated, and how far each profile's "
    "predictions land from real measurements.")

# Per-session scratch folder: uploaded profiles live here and in session state only.
if "calibration_dir" not in st.session_state:
    st.session_state["calibration_dir"] = tempfile.mkdtemp(prefix="servesim-profiles-")
    st.session_state["calibration_uploaded"] = {}
work = Path(st.session_state["calibration_dir"])
uploaded: dict = st.session_state["calibration_uploaded"]

# ---------------------------------------------------------------------------------- profiles
st.header("Profiles")
upload = st.file_uploader(
    "Add a profile (YAML, as written by `servesim calibrate fit`)", type=["yaml", "yml"],
    key="calibration_upload",
    help="Kept for this session only. Use the file in a scenario with "
         "`engine.latency_profile: FILE`.")
if upload is not None:
    try:
        choice = uploaded_choice(upload.name, upload.getvalue(), work)
        uploaded[choice.label] = choice
    except ScenarioError as exc:
        st.error(f"Not a usable latency profile. {exc}", icon=":material/error:")

folder = profile_folder()
from_folder, folder_problems = folder_profiles(folder, work / "folder")
for problem in folder_problems:
    st.warning(f"Skipped a profile in {PROFILE_DIR_ENV}: {problem}", icon=":material/warning:")

choices = {c.label: c for c in [*shipped_profiles(), *from_folder, *uploaded.values()]}
st.dataframe(
    [{"profile": c.label, "name": c.profile.name, "from": c.origin, "file": c.file,
      "overrides": len(c.profile.overrides),
      "calibrated configurations": len(calibrated_configurations(c.profile))}
     for c in choices.values()],
    hide_index=True, width="stretch")
st.caption(
    "Shipped profiles come with servesim (sim/catalog/profiles/). "
    + (f"Profiles from {PROFILE_DIR_ENV} ({folder}) are listed too. " if folder else
       f"Set {PROFILE_DIR_ENV} to a folder of profile YAML files to list them here too. ")
    + "Uploaded ones stay in this session only.")

labels = list(choices)
label = st.selectbox("Profile to inspect and evaluate", labels, key="calibration_profile",
                     index=labels.index("calibrated (shipped)")
                     if "calibrated (shipped)" in labels else 0)
chosen = choices[label]
profile = chosen.profile

st.subheader(f"{profile.name}")
st.markdown(f"**Where it came from:** {profile.source or '(the file does not say)'}")
st.dataframe(coefficient_table(profile), hide_index=True, width="stretch",
             column_config={c: st.column_config.NumberColumn(c, format="%.4g")
                            for c in coefficient_names(profile)})
st.caption("Overheads in ms (µs for allreduce_latency_us), efficiencies as shares of peak. An "
           "empty cell keeps the base value; the most specific matching override wins.")
st.download_button("Download this profile", chosen.text,
                   file_name=f"{file_stem(profile.name)}.yaml",
                   mime="application/x-yaml", key="calibration_download")

# ---------------------------------------------------------------------------- coverage
st.header("Which configurations are calibrated")
fitted = calibrated_configurations(profile)
if fitted.empty:
    st.warning(f"{profile.name} has no calibration for any configuration: every configuration "
               "uses its base coefficients.", icon=":material/warning:")
else:
    st.dataframe(fitted, hide_index=True, width="stretch")
with st.expander("Every catalog model on every catalog GPU"):
    st.dataframe(coverage_matrix(profile, list_models(), list_gpus()), width="stretch")
    st.caption("A cell lists the TP degrees and weight formats with their own calibration; "
               "“–”: every configuration of that pair uses the base coefficients.")

st.markdown("**Check a configuration**")
models, gpus = list_models(), list_gpus()
dtypes = list(get_args(WeightDtype))
col_model, col_gpu, col_tp, col_dtype = st.columns(4)
model = col_model.selectbox("Model", models, key="calibration_model",
                            index=models.index("llama-3.1-8b") if "llama-3.1-8b" in models else 0)
gpu = col_gpu.selectbox("GPU", gpus, key="calibration_gpu",
                        index=gpus.index("h100-sxm") if "h100-sxm" in gpus else 0)
tp = col_tp.number_input("Tensor parallel", min_value=1, max_value=64, value=1, step=1,
                         key="calibration_tp")
dtype = col_dtype.selectbox("Weight format", dtypes, key="calibration_dtype",
                            index=dtypes.index("bf16"))
status = configuration_status(profile, model, gpu, int(tp), dtype)
if status.calibrated:
    st.success(f"Calibrated: {profile.name} has an override fitted to this configuration "
               f"({describe_match(status.match)}).", icon=":material/check_circle:")
else:
    base = ("the hand-set default roofline values, fitted to nothing" if status.base_is_default
            else "the values the profile gives every configuration without data of its own")
    extra = f" (plus the override for {describe_match(status.match)})" if status.match else ""
    st.warning(f"Not calibrated: {profile.name} has no override for {model} on {gpu} at TP "
               f"{tp}, {dtype}, so it falls back to its base coefficients ({base}){extra}. "
               "Treat predictions for it as estimates.", icon=":material/warning:")
st.caption(f"A scenario with `engine.latency_profile: auto` (the default) would use the shipped "
           f"**{auto_profile_name(model, gpu, int(tp), dtype)}** profile for this configuration.")
st.dataframe(resolved_table(status, profile), hide_index=True,
             column_config={"value": st.column_config.NumberColumn("value", format="%.4g")})

# -------------------------------------------------------------------------------- step times
st.header("Step times: predicted vs measured")
datasets = st.multiselect("Measured steps", list(STEP_DATASETS), default=DEFAULT_STEP_DATASETS,
                          key="calibration_step_data")
if profile.form != "roofline":
    st.info(f"{profile.name} is a {profile.form} profile; the step-time check fits roofline "
            "profiles only (calibrate.step_fit). The end-to-end runs below check it.")
elif not datasets:
    st.info("Pick at least one set of measured steps.")
else:
    with st.spinner("Predicting the measured steps ..."):
        steps = cached_step_predictions(chosen.text, tuple(datasets), profile)
    configs = ["all configurations", *sorted(steps["configuration"].unique())]
    shown_config = st.selectbox("Configuration", configs, key="calibration_step_config")
    shown = steps if shown_config == configs[0] else steps[steps["configuration"] == shown_config]
    figures = overall_errors(shown)
    cols = st.columns(4)
    cols[0].metric("Steps", f"{len(shown):,}")
    cols[1].metric("Median |error|", f"{figures['p50']:.1f} %")
    cols[2].metric("p90 |error|", f"{figures['p90']:.1f} %")
    cols[3].metric("Bias (mean signed error)", f"{figures['bias']:+.1f} %",
                   help="Positive: the profile predicts steps slower than measured.")
    st.altair_chart(charts.step_scatter(shown, profile.name), width="stretch")
    table = error_percentiles(shown, ["configuration", "calibrated", "kind"])
    st.dataframe(table, hide_index=True, width="stretch",
                 column_config={c: st.column_config.NumberColumn(c, format="%.1f")
                                for c in table.columns if "%" in c or "ms" in c})
    st.caption("Error: (predicted − measured) / measured. Calibrated: the profile has an "
               "override fitted to that configuration; the others show how it does where it "
               "falls back to its base coefficients. For the shipped `calibrated` profile "
               "these are the very steps its overrides were fitted to, so its figures here "
               "are in-sample; docs/validation.md has held-out ones.")

# ------------------------------------------------------------------------------------ runs
st.header("End-to-end runs: measured vs simulated")
st.markdown("Each measured run's requests replayed at their arrival times through the simulator "
            "set up as the measured engine was, as `servesim calibrate validate` does.")
with st.spinner("Replaying the measured runs ..."):
    errors = cached_replay_errors(chosen.text, profile, chosen.ref)
means = mean_errors(errors)
cols = st.columns(len(means))
for col, (metric, value) in zip(cols, means.items()):
    col.metric(f"{metric}: error of the mean", f"{value:.1f} %",
               help="Median over the runs of the absolute % error of the mean.")
metric = st.selectbox("Metric", ["TTFT", "TPOT", "E2E"], key="calibration_run_metric")
st.altair_chart(charts.run_bars(errors, metric), width="content")
run_table = errors.dropna(subset=["measured_ms"]).rename(columns={
    "measured_ms": "measured (ms)", "simulated_ms": "simulated (ms)", "ape_pct": "|error| (%)"})
st.dataframe(run_table, hide_index=True, width="stretch",
             column_config={c: st.column_config.NumberColumn(c, format="%.1f")
                            for c in ("measured (ms)", "simulated (ms)", "|error| (%)")})

# ------------------------------------------------------------------------------- provenance
st.header("Where these figures come from")
st.markdown(
    "Computed on this page for the profile picked above, with the calibrate package's own "
    "functions (`calibrate.step_fit.predict`, `calibrate.replay`), from the measurements "
    "bundled under `calibrate/data/` (each folder's PROVENANCE.md says where they come from "
    "and under which license):\n\n"
    + "\n".join(f"- `calibrate/data/{folder}`: {label}" for label, (folder, _) in
                STEP_DATASETS.items())
    + "\n" + "\n".join(f"- `calibrate/data/{folder}`: {label}" for folder, label in
                       RUN_DATASETS.items())
    + "\n\nThe same figures from the command line:\n\n"
    "```bash\n"
    "servesim calibrate ingest llmservingsim-runs --out runs/\n"
    "servesim calibrate validate runs/* calibrate/data/vllm_cpu_tiny_llama/runs/* "
    f"--profile {chosen.ref if chosen.origin == 'shipped' else chosen.file}\n"
    "python benchmarks/default_profile_check.py   # step times, as on docs/validation.md\n"
    "```\n\n"
    "docs/calibration.md explains how profiles are fitted; docs/validation.md has the "
    "held-out figures (fits checked on data they did not see), which the in-sample figures "
    "here for `calibrated` do not replace.")
