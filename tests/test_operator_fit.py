"""Training the per-operator model on runs: known coefficients are recovered from runs simulated
with them, bad runs files are refused by row and column, and a shipped held-out figure holds."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pandas as pd
import pytest

from calibrate.deployment_runs import (DeploymentRun, parse_stages, read_runs, scenario_for,
                                       stage_means)
from calibrate.errors import CalibrationError
from calibrate.operator_fit import (NEUTRAL_START, PointSimulator, fit_runs,
                                    projected_residuals)
from sim.commands.cli import main
from sim.config.scenario import parse_scenario
from sim.runner.run import run_scenario

ROOT = Path(__file__).resolve().parent.parent
RUNS = ROOT / "calibrate" / "data" / "vllm_h100_runs" / "runs.csv"
LOMO = ROOT / "benchmarks" / "results"
# a small, fast load per run: 12 s stages of at least 40 requests
TINY_LOAD = (12.0, 40)


@pytest.fixture(scope="module")
def bundled() -> list[DeploymentRun]:
    return read_runs(RUNS)


def _synthetic(runs: list[DeploymentRun], truth) -> list[DeploymentRun]:
    """The runs with their 'measured' means replaced by a simulation under ``truth``."""
    figures = PointSimulator(None, 1, "local", TINY_LOAD).simulate(runs, [truth])[0]
    out = []
    for run, sim in zip(runs, figures):
        measured = {}
        for stage, f in sim.items():
            o = f["output_tokens"]
            measured[int(stage)] = {
                "e2e": f["e2e"] + truth.request_overhead_ms + truth.output_token_overhead_ms * o,
                "ttft": f["ttft"] + truth.request_overhead_ms + truth.output_token_overhead_ms,
                "itl": f["itl"] + truth.output_token_overhead_ms}
        out.append(dataclasses.replace(run, measured=measured))
    return out


def test_the_fit_recovers_coefficients_the_runs_were_simulated_with(bundled) -> None:
    wanted = {"s2r-18-llama-3-1-8b-tp1-codegen-1", "s2r-26-llama-3-1-8b-tp2-general-2",
              "s2r-27-mixtral-8x7b-tp2-general-lite-2-1", "s2r-60-llama-3-1-70b-tp4-general-lite-4-1",
              "s2r-65-01-ai-yi-34b-tp2-general-lite-2-1", "s2r-64-qwen2-5-7b-instruct-tp1-roleplay-1-1"}
    runs = [r for r in bundled if r.run_id in wanted]
    truth = dataclasses.replace(NEUTRAL_START, weight_memory_efficiency=0.7,
                                step_overhead_ms=0.6, request_overhead_ms=12.0,
                                output_token_overhead_ms=0.03)
    measured = _synthetic(runs, truth)
    free = ("weight_memory_efficiency", "step_overhead_ms")
    fit = fit_runs(measured, NEUTRAL_START, workers=1, stage_seconds=TINY_LOAD[0],
                   stage_requests=TINY_LOAD[1], free=free, max_evaluations=20,
                   log=lambda line: None)
    got = fit.coefficients
    assert got.weight_memory_efficiency == pytest.approx(0.7, rel=0.03)
    assert got.request_overhead_ms == pytest.approx(12.0, rel=0.05)
    # A cost per step and a client cost per output token both add to every token's gap; only
    # queueing (the step cost slows the engine, the client's does not) tells them apart, so
    # light loads pin their sum, not each alone
    assert got.step_overhead_ms + got.output_token_overhead_ms == pytest.approx(0.63, rel=0.05)
    assert got.step_overhead_ms == pytest.approx(0.6, rel=0.1)
    # the coefficients it did not search stay where they started
    assert got.kv_memory_efficiency == NEUTRAL_START.kv_memory_efficiency


def test_client_costs_are_solved_in_closed_form(bundled) -> None:
    runs = [r for r in bundled if r.run_id == "s2r-18-llama-3-1-8b-tp1-codegen-1"]
    truth = dataclasses.replace(NEUTRAL_START, request_overhead_ms=20.0,
                                output_token_overhead_ms=0.1)
    measured = _synthetic(runs, truth)
    engine_only = PointSimulator(None, 1, "local", TINY_LOAD).simulate(measured, [truth])[0]
    residuals, client = projected_residuals(measured, engine_only)
    assert client == pytest.approx((20.0, 0.1), rel=1e-3)
    assert max(abs(residuals)) < 1e-6


def test_overloaded_runs_are_not_fitted(bundled) -> None:
    overloaded = [r for r in bundled if r.overloaded]
    assert len(overloaded) == 5
    with pytest.raises(CalibrationError, match="every run is overloaded"):
        fit_runs(overloaded, NEUTRAL_START, workers=1, log=lambda line: None)


# ---- bad runs files -------------------------------------------------------------------------

def _write(tmp_path: Path, edit) -> Path:
    frame = pd.read_csv(RUNS).head(3)
    frame = edit(frame)
    path = tmp_path / "runs.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize(("edit", "message"), [
    (lambda f: f.drop(columns=["itl_mean_ms"]), r"missing column\(s\) itl_mean_ms"),
    (lambda f: f.assign(model=["llama-2-7b", "no-such-model", "llama-2-7b"]),
     r"row 3 .*column model: .*no-such-model"),
    (lambda f: f.assign(e2e_mean_ms=[1.0, float("nan"), 2.0]),
     r"row 3 .*column e2e_mean_ms: 'nan' is not a positive number"),
    (lambda f: f.assign(ttft_mean_ms=["fast", 1.0, 1.0]),
     r"row 2 .*column ttft_mean_ms: 'fast' is not a positive number"),
    (lambda f: f.assign(stages=["5 per second", "1rps x 10s", "1rps x 10s"]),
     r"row 2 .*column stages: cannot read '5 per second'"),
    (lambda f: f.assign(overloaded=["maybe", "no", "no"]),
     r"row 2 .*column overloaded: expected yes or no, got 'maybe'"),
    (lambda f: f.assign(run_id=["a", "a", "b"]), r"run_id 'a' appears twice"),
    (lambda f: f.assign(tensor_parallel=[0, 1, 1]),
     r"row 2 .*column tensor_parallel: '0' is not a positive number"),
    (lambda f: f.assign(gpu_memory_utilization=[1.5, 0.9, 0.9]),
     r"(?s)row 2 .*its load cannot be rebuilt: .*gpu_memory_utilization"),
])
def test_a_bad_runs_file_is_refused_naming_row_and_column(tmp_path, edit, message) -> None:
    path = _write(tmp_path, edit)
    with pytest.raises(CalibrationError, match=message):
        read_runs(path, stages_csv=None)


def test_fit_runs_reports_bad_input_without_a_traceback(tmp_path, capsys) -> None:
    path = _write(tmp_path, lambda f: f.drop(columns=["stages"]))
    assert main(["calibrate", "fit-runs", str(path), "--out", str(tmp_path / "p.yaml")]) == 2
    err = capsys.readouterr().err
    assert "missing column(s) stages" in err and "Traceback" not in err
    ok = _write(tmp_path, lambda f: f)
    assert main(["calibrate", "fit-runs", str(ok), "--out", str(tmp_path / "p.yaml"),
                 "--hold-out", "no-such-model"]) == 2
    assert "--hold-out no-such-model: no run of that model" in capsys.readouterr().err


# ---- the shipped held-out figures -----------------------------------------------------------

HELD_OUT_MODEL = "qwen2.5-7b"  # two runs, a model no other run shares a shape with


def test_a_shipped_leave_one_out_figure_still_holds(bundled) -> None:
    """Predict the runs of one model with the profile fitted without it (shipped with the
    validation) and compare with the errors the validation page reports for them: the engine or
    the operator model regressing moves these by more than the tolerance."""
    profile = LOMO / "lomo" / f"without-{HELD_OUT_MODEL}.yaml"
    table = pd.read_csv(LOMO / "leave_one_model_out.csv")
    shipped = table[table["model"] == HELD_OUT_MODEL].set_index("run_id")
    assert len(shipped) == 2
    for run in (r for r in bundled if r.model == HELD_OUT_MODEL):
        records = run_scenario(parse_scenario(scenario_for(run.row, profile=str(profile)))
                               ).result.records
        means = stage_means(records, parse_stages(str(run.row["stages"])))[-1]
        for metric in ("e2e", "ttft", "itl"):
            now = abs(means[metric] / run.measured[-1][metric] - 1) * 100
            reported = abs(shipped.loc[run.run_id, f"{metric}_trained_ms"]
                           / run.measured[-1][metric] - 1) * 100
            assert now == pytest.approx(reported, abs=0.5), (run.run_id, metric)
            assert math.isfinite(now)
