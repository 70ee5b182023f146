"""The Calibration page: profiles, what they calibrate, predicted vs measured."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml
from streamlit.testing.v1 import AppTest

from app.calibration_checks import error_percentiles, measured_runs, overall_errors, replay_errors
from app.calibration_view import (auto_profile_name, calibrated_configurations, check_profile,
                                  coefficient_table, configuration_status, coverage_matrix,
                                  profile_from_text, read_profile_upload, resolved_table,
                                  uploaded_choice)
from calibrate.replay import deployment_for, errors_of, simulated_latencies
from sim.engine.errors import ScenarioError
from sim.engine.latency_profile import LatencyProfile, load_profile

PAGE = str(Path(__file__).resolve().parent.parent / "app" / "views" / "calibration.py")

BASE = {"step_overhead_ms": 2.0, "per_seq_overhead_ms": 0.01, "per_prefill_seq_overhead_ms": 0.2,
        "compute_efficiency": 0.5, "memory_efficiency": 0.7, "allreduce_latency_us": 10.0,
        "allreduce_efficiency": 0.6}
SMALL = {
    "name": "small", "source": "hand-written for a test", "coefficients": BASE,
    "overrides": [
        {"match": {"interconnect": "pcie"}, "coefficients": {"allreduce_latency_us": 30.0}},
        {"match": {"model": "llama-3.1-8b", "gpu": "h100-sxm", "tensor_parallel": 1,
                   "weight_dtype": "bf16"},
         "coefficients": {"step_overhead_ms": 0.5, "memory_efficiency": 0.9}},
    ],
}


def small_profile(tmp_path: Path) -> LatencyProfile:
    return profile_from_text(yaml.safe_dump(SMALL), "small.yaml", tmp_path)


def page() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    assert not at.exception
    return at


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def resolved_coefficients(at: AppTest) -> pd.DataFrame:
    """The page's table of one configuration's coefficients."""
    [table] = [d.value for d in at.dataframe if "coefficient" in d.value.columns]
    return table.set_index("coefficient")


# ------------------------------------------------------------------------------ view logic

def test_coefficient_table_lists_base_and_every_override(tmp_path):
    table = coefficient_table(small_profile(tmp_path))
    assert list(table["applies to"]) == ["base: every configuration without an override",
                                         "override 1", "override 2 (calibration)"]
    assert list(table["model"]) == ["any", "any", "llama-3.1-8b"]
    assert list(table["interconnect"]) == ["any", "pcie", "any"]
    assert list(table["TP"]) == ["any", "any", "1"]
    assert table.loc[0, "step_overhead_ms"] == 2.0
    assert table.loc[1, "allreduce_latency_us"] == 30.0
    assert table.loc[2, "memory_efficiency"] == 0.9
    assert pd.isna(table.loc[2, "compute_efficiency"])  # kept from the base


def test_calibrated_configurations_and_status(tmp_path):
    profile = small_profile(tmp_path)
    fitted = calibrated_configurations(profile)  # the interconnect override is no calibration
    assert fitted.to_dict("records") == [{
        "model": "llama-3.1-8b", "GPU": "h100-sxm", "TP": "1", "weight format": "bf16",
        "coefficients fitted": "memory_efficiency, step_overhead_ms"}]
    on = configuration_status(profile, "llama-3.1-8b", "h100-sxm", 1, "bf16")
    assert on.calibrated and on.coefficients.memory_efficiency == 0.9
    assert not on.base_is_default
    other_tp = configuration_status(profile, "llama-3.1-8b", "h100-sxm", 2, "bf16")
    assert not other_tp.calibrated and other_tp.coefficients.memory_efficiency == 0.7
    pcie = configuration_status(profile, "llama-3.1-8b", "rtx-4090", 1, "bf16")
    assert not pcie.calibrated and pcie.match == {"interconnect": "pcie"}
    resolved = resolved_table(pcie, profile).set_index("coefficient")
    assert resolved.loc["allreduce_latency_us", "value"] == 30.0
    assert resolved.loc["allreduce_latency_us", "from"] == "override"
    assert resolved.loc["step_overhead_ms", "from"] == "base"
    matrix = coverage_matrix(profile, ["llama-3.1-8b", "qwen3-32b"], ["h100-sxm", "l4"])
    assert matrix.loc["llama-3.1-8b", "h100-sxm"] == "TP 1 bf16"
    assert matrix.loc["qwen3-32b", "l4"] == "–"


def test_auto_profile_follows_the_shipped_calibrations():
    assert auto_profile_name("tiny-llama", "x86-cpu-2c", 1, "fp32") == "calibrated"
    assert auto_profile_name("tiny-llama", "x86-cpu-2c", 1, "bf16") == "roofline"
    assert auto_profile_name("llama-3.1-8b", "h100-sxm", 1, "bf16") == "trained"
    assert configuration_status(load_profile("default"), "llama-3.1-8b", "h100-sxm", 1,
                                "bf16").base_is_default


@pytest.mark.parametrize("data, problem", [
    (b"name: x\ncoefficients: {step_overhead_ms: [1,\n", "not valid YAML"),
    (yaml.safe_dump({**SMALL, "coefficients": {**BASE, "warp_factor": 9}}).encode(),
     "unknown coefficients ['warp_factor']"),
    (yaml.safe_dump({**SMALL, "coefficients": {"step_overhead_ms": 1.0}}).encode(), "lacks"),
    (yaml.safe_dump({**SMALL, "coefficients": {**BASE, "memory_efficiency": 1.5}}).encode(),
     "memory_efficiency must be in (0, 1]"),
    (yaml.safe_dump({**SMALL, "overrides": [{"match": {"tensor_parallel": "two"},
                                             "coefficients": {}}]}).encode(), "whole number"),
    (yaml.safe_dump({**SMALL, "overrides": ["oops"]}).encode(), "not a latency profile"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe", "not UTF-8"),
    (b"just some words", "needs a `coefficients` mapping"),
])
def test_bad_profile_files_are_refused_with_the_problem(tmp_path, data, problem):
    with pytest.raises(ScenarioError) as err:
        read_profile_upload("mine.yaml", data, tmp_path)
    assert problem in str(err.value)
    assert str(err.value).startswith("mine.yaml")
    assert str(tmp_path) not in str(err.value)  # the user's file name, not our scratch path


def test_a_changed_upload_is_read_again(tmp_path):
    first = small_profile(tmp_path)
    second = profile_from_text(yaml.safe_dump({**SMALL, "name": "changed"}), "small.yaml",
                               tmp_path)
    assert (first.name, second.name) == ("small", "changed")
    check_profile(second, "small.yaml")  # a good profile passes the extra checks


def test_error_percentiles_of_a_hand_made_frame():
    frame = pd.DataFrame({"kind": ["decode"] * 5 + ["prefill"],
                          "measured_ms": [10.0, 20.0, 30.0, 40.0, 50.0, 100.0],
                          "error_pct": [-10.0, 0.0, 10.0, 20.0, -40.0, 5.0]})
    frame["abs_error_pct"] = frame["error_pct"].abs()
    table = error_percentiles(frame, ["kind"]).set_index("kind")
    decode = table.loc["decode"]
    assert decode["steps"] == 5
    assert decode["measured ms (median)"] == 30.0
    assert decode["|error| p50 (%)"] == 10.0
    assert decode["|error| p90 (%)"] == pytest.approx(32.0)  # between 20 and 40, linear
    assert decode["bias (%)"] == pytest.approx(-4.0)
    assert table.loc["prefill", "|error| p99 (%)"] == 5.0
    assert overall_errors(frame)["p50"] == 10.0


def test_replay_of_an_uploaded_copy_matches_calibrate_validate(tmp_path):
    """An uploaded profile is replayed exactly as `servesim calibrate validate --profile
    calibrated` replays the shipped one, when their texts agree."""
    dataset, run = next((d, r) for d, r in measured_runs() if r.name == "replay-0")
    text = Path(PAGE).parent.parent.parent.joinpath("sim/catalog/profiles/calibrated.yaml")
    choice = uploaded_choice("copy.yaml", text.read_bytes(), tmp_path)
    page_errors = replay_errors([(dataset, run)], choice.profile, choice.ref)
    cli = errors_of(run, simulated_latencies(run, deployment_for(run, "calibrated")))
    pd.testing.assert_series_equal(page_errors["simulated_ms"], cli["simulated_ms"])
    assert page_errors["calibrated"].all() and page_errors["data"].eq(dataset).all()
    assert page_errors.loc[0, "simulated_ms"] != page_errors.loc[0, "measured_ms"]


# ------------------------------------------------------------------------------------ page

def test_page_renders_and_profile_choice_changes_the_numbers():
    at = page()
    calibrated = metrics(at)
    assert calibrated["Steps"] == "3,140"
    assert at.selectbox(key="calibration_profile").value == "calibrated (shipped)"
    at.selectbox(key="calibration_profile").set_value("roofline (shipped)").run()
    assert not at.exception
    default = metrics(at)
    assert default["Median |error|"] != calibrated["Median |error|"]
    assert default["TPOT: error of the mean"] != calibrated["TPOT: error of the mean"]
    # the calibrated profile predicts its own configurations' means better than the default
    assert float(calibrated["TPOT: error of the mean"].rstrip(" %")) < \
        float(default["TPOT: error of the mean"].rstrip(" %"))


def test_configuration_choice_changes_what_is_shown():
    at = page()
    assert at.warning and not at.success  # llama-3.1-8b on one H100: not calibrated
    before = resolved_coefficients(at)
    at.selectbox(key="calibration_gpu").set_value("rtx-4090").run()
    assert not at.exception
    assert any("Calibrated" in s.value for s in at.success)
    resolved = resolved_coefficients(at)
    assert resolved.loc["memory_efficiency", "value"] == pytest.approx(0.9401)
    assert not resolved.equals(before)
    steps_all = metrics(at)["Median |error|"]
    at.selectbox(key="calibration_step_config").set_value(
        "tiny-llama · x86-cpu-2c · TP 1 · fp32").run()
    assert metrics(at)["Steps"] == "1,173"
    assert metrics(at)["Median |error|"] != steps_all


@pytest.mark.parametrize("name, data", [
    ("broken.yaml", b"coefficients: {step_overhead_ms: [\n"),
    ("unknown.yaml", yaml.safe_dump({**SMALL, "coefficients": {**BASE, "turbo": 2}}).encode()),
    ("junk.yaml", bytes(range(256)) * 4),
])
def test_bad_upload_shows_an_error(name, data):
    at = page()
    at.file_uploader(key="calibration_upload").set_value((name, data, "application/x-yaml")).run()
    assert not at.exception
    assert at.error and name in at.error[0].value


def test_valid_upload_is_listed_and_can_be_evaluated():
    at = page()
    text = yaml.safe_dump({**SMALL, "name": "my-h100"}).encode()
    at.file_uploader(key="calibration_upload").set_value(("mine.yaml", text, "text/yaml")).run()
    assert not at.exception and not at.error
    listed = at.dataframe[0].value
    assert "my-h100 (uploaded mine.yaml)" in list(listed["profile"])
    before = metrics(at)
    at.selectbox(key="calibration_profile").set_value("my-h100 (uploaded mine.yaml)").run()
    assert not at.exception
    assert any("Calibrated" in s.value for s in at.success)  # its override: llama-3.1-8b, H100
    assert metrics(at)["Median |error|"] != before["Median |error|"]


def test_profiles_in_the_profile_folder_are_listed(tmp_path, monkeypatch):
    (tmp_path / "team.yaml").write_text(yaml.safe_dump({**SMALL, "name": "team"}))
    (tmp_path / "broken.yaml").write_text("coefficients: [")
    monkeypatch.setenv("SERVESIM_PROFILE_DIR", str(tmp_path))
    at = page()
    assert "team (profile folder)" in list(at.dataframe[0].value["profile"])
    assert any("broken.yaml" in w.value for w in at.warning)


def test_a_per_operator_profile_can_be_inspected():
    at = page()
    at.selectbox(key="calibration_profile").set_value("trained (shipped)").run()
    assert not at.exception
    table = at.dataframe[1].value  # the coefficient table shows the operator coefficients
    assert "gemm_compute_efficiency" in table.columns
    assert any("step-time check fits roofline profiles only" in i.value for i in at.info)
    assert "TTFT: error of the mean" in metrics(at)
