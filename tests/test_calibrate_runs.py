"""Measured runs: their tidy form, replay against the simulator, and fitting to them."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from calibrate.errors import CalibrationError
from calibrate.replay import comparison, deployment_for, with_coefficients, workload_of
from calibrate.request_run import RequestRun, RunConfig, from_timestamps, load_run
from calibrate.run_fit import fit_to_runs
from calibrate.sources import llmservingsim
from sim.commands.cli import main
from sim.fleet.simulation import simulate
from sim.workload.workload import Workload

CONFIG = RunConfig(model="llama-3.1-8b", gpu="rtx-4090", tensor_parallel=1, max_num_seqs=64,
                   max_num_batched_tokens=2048, num_gpu_blocks=2000, source="synthetic")


def simulator_made_run(memory_efficiency: float, step_overhead_ms: float) -> RequestRun:
    """A 'measured' run produced by the simulator itself under known coefficients."""
    rng = np.random.default_rng(11)
    n = 120
    arrivals = np.cumsum(rng.exponential(1 / 4, n))
    prompts, outputs = rng.integers(50, 1500, n), rng.integers(20, 300, n)
    shell = from_timestamps("synthetic", CONFIG, arrivals, prompts, outputs, arrivals, arrivals)
    deployment = deployment_for(shell)
    base = deployment.setup.latency.coefficients
    truth = dataclasses.replace(base, memory_efficiency=memory_efficiency,
                                step_overhead_ms=step_overhead_ms)
    records = simulate(with_coefficients(deployment, truth).setup, workload_of(shell)).records
    records = records.sort_values("rid")
    return from_timestamps("synthetic", CONFIG, records["arrival_s"].to_numpy(),
                           records["prompt_tokens"].to_numpy(), records["output_tokens"].to_numpy(),
                           records["first_token_s"].to_numpy(), records["finish_s"].to_numpy())


def test_a_run_fit_matches_the_run_and_predicts_another_load_of_the_same_engine() -> None:
    """Decode-heavy runs cannot tell the memory efficiency from the fixed step overhead (both
    add a constant per decode step), so the fit need not find the true pair; what it must do
    is reproduce the run and predict a different load on the same engine."""
    run = simulator_made_run(memory_efficiency=0.65, step_overhead_ms=3.0)
    deployment = deployment_for(run)
    start = deployment.setup.latency.coefficients  # the default: 0.8 and 1.5 ms
    fitted = fit_to_runs([run], start)
    after = comparison(run, with_coefficients(deployment, fitted))
    assert (after[after.stat == "mean"].ape_pct < 1.0).all()
    truth = dataclasses.replace(start, memory_efficiency=0.65, step_overhead_ms=3.0)
    rng = np.random.default_rng(5)  # another load: twice the rate, shorter prompts
    other = Workload.from_arrays(np.cumsum(rng.exponential(1 / 8, 150)),
                                 rng.integers(20, 400, 150), rng.integers(50, 400, 150))
    means = []
    for c in (truth, fitted):
        records = simulate(with_coefficients(deployment, c).setup, other).records
        means.append(records[["ttft_s", "tpot_s", "e2e_s"]].mean().to_numpy())
    assert np.abs(means[1] / means[0] - 1).max() < 0.05
    before = comparison(run, deployment)
    assert (before[before.stat == "mean"].ape_pct > 10).any()  # the default was off


def test_runs_round_trip_through_their_folder(tmp_path: Path) -> None:
    run = llmservingsim.read_run("rtx4090-llama-3.1-8b")
    assert run.config.num_gpu_blocks == 2588 and len(run.requests) == 300
    assert run.requests["arrival_s"].min() == 0
    run.save(tmp_path / "r")
    again = load_run(tmp_path / "r")
    assert again.config == run.config
    assert again.requests.equals(run.requests)
    with pytest.raises(CalibrationError, match="not a measured run"):
        load_run(tmp_path)


def test_replaying_a_bundled_run_gives_the_documented_errors() -> None:
    """The default profile on the RTX 4090 run: docs/validation.md's 21 / 15 / 20 %."""
    run = llmservingsim.read_run("rtx4090-llama-3.1-8b")
    errors = comparison(run, deployment_for(run)).set_index(["metric", "stat"])["ape_pct"]
    assert errors[("TTFT", "mean")] == pytest.approx(21.4, abs=0.5)
    assert errors[("TPOT", "mean")] == pytest.approx(15.1, abs=0.5)
    assert errors[("E2E", "mean")] == pytest.approx(19.9, abs=0.5)


def test_a_replay_with_given_coefficients_is_the_replay_a_scenario_run_makes() -> None:
    """``with_coefficients`` (the path run fits and replays take) with the deployment's own
    coefficients must simulate what ``deployment_for`` does; on the CPU run's fp32 model, KV
    "auto" is fp32 there, not 16-bit."""
    from calibrate.replay import simulated

    root = Path(__file__).resolve().parent.parent
    run = load_run(root / "calibrate" / "data" / "vllm_cpu_tiny_llama" / "runs" / "replay-0")
    assert run.config.weight_dtype == "fp32"
    deployment = deployment_for(run)
    again = with_coefficients(deployment, deployment.setup.latency.coefficients)
    assert simulated(run, again) == simulated(run, deployment)


def test_ingest_validate_and_fit_from_the_command_line(tmp_path: Path, capsys) -> None:
    assert main(["calibrate", "ingest", "llmservingsim-runs", "--out", str(tmp_path / "runs")]) == 0
    run = tmp_path / "runs" / "rtxpro6000-llama-3.1-8b"
    report = tmp_path / "report"
    assert main(["calibrate", "validate", str(run), "--report", str(report)]) == 0
    text = (report / "report.md").read_text()
    assert "| rtxpro6000-llama-3.1-8b | TPOT | 32.5 / 29.8 (8.3 %)" in text
    # ITL: the mean gap over all tokens (no percentiles from request timestamps)
    assert "| rtxpro6000-llama-3.1-8b | ITL | 32.4 / 29.7 (8.3 %) | – |" in text
    for chart in ("errors.png", "rtxpro6000-llama-3.1-8b.png"):
        assert f"]({chart})" in text
        assert (report / chart).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (tmp_path / "file").write_text("")
    assert main(["calibrate", "validate", str(run), "--report", str(tmp_path / "file")]) == 2
    profile = tmp_path / "fitted.yaml"
    assert main(["calibrate", "fit", str(run), "--out", str(profile)]) == 0
    capsys.readouterr()
    assert main(["calibrate", "validate", str(run), "--profile", str(profile)]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    means = dict(part.strip().rsplit(" ", 2)[:2] for part in last.split(":", 1)[1].split(","))
    assert all(float(v) < 3.0 for v in means.values()), last


def test_a_vllm_bench_result_becomes_a_run_without_its_failed_requests(tmp_path: Path,
                                                                         capsys) -> None:
    result = Path(__file__).parent / "data" / "traces" / "vllm-bench-result.json"
    out = tmp_path / "bench-run"
    assert main(["calibrate", "ingest-bench", str(result), "--model", "llama-3.1-8b", "--gpu",
                 "h100-sxm", "--out", str(out)]) == 0
    assert "31 requests; 1 failed requests left out" in capsys.readouterr().out
    run = load_run(out)
    first = run.requests.iloc[0]
    assert first["arrival_s"] == 0 and first["prompt_tokens"] == 235
    assert first["first_token_s"] == pytest.approx(0.097051)
    assert first["finish_s"] == pytest.approx(0.097051 + 0.012838 + 0.012751 + 0.010719)
    assert "client-side" in run.config.source
    bad = tmp_path / "bad.json"
    bad.write_text('{"input_lens": [1], "output_lens": [1]}')
    assert main(["calibrate", "ingest-bench", str(bad), "--model", "llama-3.1-8b", "--gpu",
                 "h100-sxm", "--out", str(tmp_path / "x")]) == 2
    assert "--save-detailed" in capsys.readouterr().err


def _profile_of(tmp_path: Path, capsys, gpu: str, model: str, *extra: str) -> dict:
    import json

    import yaml

    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({
        "model": model, "hardware": {"gpu": gpu, "price_usd_per_hour": 1.0},
        "workload": {"arrivals": {"process": "poisson", "rate_per_s": 2}, "num_requests": 20,
                     "lengths": {"input": 300, "output": 50}},
    }))
    assert main(["run", str(path), "--format", "json", *extra]) == 0
    return json.loads(capsys.readouterr().out)["latency_profile"]


def test_auto_takes_the_calibrated_override_only_where_one_was_fitted(tmp_path: Path,
                                                                      capsys) -> None:
    fitted = _profile_of(tmp_path, capsys, "rtx-4090", "llama-3.1-8b")
    assert fitted["name"] == "calibrated" and fitted["calibrated_for_this_configuration"]
    assert fitted["matched"]["gpu"] == "rtx-4090"
    # elsewhere on a GPU: the per-operator model trained across models
    other = _profile_of(tmp_path, capsys, "h100-sxm", "llama-3.1-8b")
    assert other["name"] == "trained" and not other["calibrated_for_this_configuration"]
    assert other["form"] == "operators"
    forced = _profile_of(tmp_path, capsys, "rtx-4090", "llama-3.1-8b", "--set",
                         "engine.latency_profile=default")
    assert forced["name"] == "default-roofline"


def test_the_shipped_calibrated_profile_is_what_its_build_script_makes(tmp_path: Path) -> None:
    import importlib.util

    import yaml

    root = Path(__file__).resolve().parent.parent
    spec = importlib.util.spec_from_file_location(
        "build_calibrated_profile", root / "scripts" / "build_calibrated_profile.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(tmp_path / "calibrated.yaml")
    built = yaml.safe_load((tmp_path / "calibrated.yaml").read_text())
    shipped = yaml.safe_load((root / "sim" / "catalog" / "profiles" / "calibrated.yaml").read_text())
    assert [o["match"] for o in built["overrides"]] == [o["match"] for o in shipped["overrides"]]
    for b, s in zip(built["overrides"], shipped["overrides"]):
        assert b["coefficients"].keys() == s["coefficients"].keys()
        for key, value in s["coefficients"].items():
            assert b["coefficients"][key] == pytest.approx(value, rel=1e-3, abs=1e-4)


SCRAPE = """# HELP vllm:e2e_request_latency_seconds Histogram of e2e request latency in seconds.
# TYPE vllm:e2e_request_latency_seconds histogram
vllm:e2e_request_latency_seconds_bucket{{engine="0",le="0.3",model_name="m"}} {n}
vllm:e2e_request_latency_seconds_sum{{engine="0",model_name="m"}} {e2e}
vllm:e2e_request_latency_seconds_count{{engine="0",model_name="m"}} {n}
vllm:time_to_first_token_seconds_sum{{engine="0",model_name="m"}} {ttft}
vllm:time_to_first_token_seconds_count{{engine="0",model_name="m"}} {n}
vllm:inter_token_latency_seconds_sum{{engine="0",model_name="m"}} {itl}
vllm:inter_token_latency_seconds_count{{engine="0",model_name="m"}} {tokens}
vllm:request_time_per_output_token_seconds_sum{{engine="0",model_name="m"}} {tpot}
vllm:request_time_per_output_token_seconds_count{{engine="0",model_name="m"}} {n}
vllm:prompt_tokens_total{{engine="0",model_name="m"}} {prompt}
vllm:generation_tokens_total{{engine="0",model_name="m"}} {tokens}
vllm:prefix_cache_queries_total{{engine="0",model_name="m"}} {prompt}
vllm:prefix_cache_hits_total{{engine="0",model_name="m"}} {hits}
vllm:num_preemptions_total{{engine="0",model_name="m"}} 0.0
"""


def test_a_metrics_scrape_is_compared_with_the_simulated_benchmark(tmp_path: Path,
                                                                    capsys) -> None:
    from calibrate.sources import prometheus

    before = tmp_path / "before.txt"
    before.write_text(SCRAPE.format(n=10, e2e=5.0, ttft=1.0, itl=2.0, tokens=200, tpot=0.1,
                                    prompt=1000, hits=0))
    after = tmp_path / "after.txt"
    after.write_text(SCRAPE.format(n=30, e2e=25.0, ttft=3.0, itl=6.0, tokens=600, tpot=0.3,
                                   prompt=3000, hits=500))
    figures = prometheus.read(after, before)
    assert figures["requests"] == 20
    assert figures["e2e_ms"] == pytest.approx(1000.0)  # 20 s over 20 requests
    assert figures["ttft_ms"] == pytest.approx(100.0)
    assert figures["itl_ms"] == pytest.approx(10.0)  # 4 s over 400 tokens
    assert figures["prefix_cache_hit_rate"] == pytest.approx(0.25)
    import yaml

    scenario = tmp_path / "bench.yaml"
    scenario.write_text(yaml.safe_dump({
        "model": "llama-3.1-8b", "hardware": {"gpu": "h100-sxm"},
        "workload": {"arrivals": {"process": "poisson", "rate_per_s": 2}, "num_requests": 20,
                     "lengths": {"input": 100, "output": 20}}}))
    assert main(["calibrate", "validate", "--metrics", str(after), "--metrics-before",
                 str(before), "--scenario", str(scenario)]) == 0
    table = capsys.readouterr().out
    assert "| requests | 20.0 | 20.0 | 0.0 % |" in table
    assert "| E2E mean (ms) | 1,000.0 |" in table
    assert main(["calibrate", "validate", "--metrics", str(after)]) == 2
    assert "--scenario" in capsys.readouterr().err
    junk = tmp_path / "junk.txt"
    junk.write_text("up 1\n")
    with pytest.raises(CalibrationError, match="no vllm: series"):
        prometheus.read(junk)
