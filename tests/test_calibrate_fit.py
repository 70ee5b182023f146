"""Calibration's step samples and fit: round trips, the bundled readers, and a fit that
recovers coefficients it was given."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from calibrate.errors import CalibrationError
from calibrate.sources import h100_vllm_steps, splitwise
from calibrate.step_fit import OVERHEADS, PARAMS, fit, physically_possible, predict
from calibrate.step_sample import StepSample, kind_of, read_samples, write_samples
from sim.engine.batch import Batch
from sim.engine.latency_profile import Coefficients

TRUE = Coefficients(2.0, 0.03, 0.4, 0.55, 0.85, 12.0, 0.6)


def synthetic_samples(rng: np.random.Generator, n: int = 120) -> list[StepSample]:
    """Steps of two configurations timed by the model itself under ``TRUE`` (plus 1 % noise)."""
    samples = []
    for model, gpu, tp in (("llama-3.1-8b", "h100-sxm", 1), ("llama-2-70b", "a100-80gb", 4)):
        for _ in range(n):
            if rng.random() < 0.4:
                seqs = int(rng.integers(1, 8))
                tokens = int(rng.integers(64, 4096))
                batch = Batch(tokens, seqs, tokens * (tokens / seqs + 1) / 2, tokens)
            else:
                seqs = int(rng.integers(1, 128))
                batch = Batch(decode_seqs=seqs, decode_context_tokens=seqs * int(
                    rng.integers(100, 3000)))
            samples.append(StepSample("synthetic", model, gpu, tp, "bf16", kind_of(batch), batch,
                                      0.0))
    times = predict(samples, lambda s: TRUE) * rng.normal(1, 0.01, len(samples))
    return [s._replace(measured_s=float(t)) for s, t in zip(samples, times)]


def test_a_fit_recovers_the_coefficients_that_timed_the_steps() -> None:
    samples = synthetic_samples(np.random.default_rng(0))
    start = Coefficients(1.0, 0.01, 0.1, 0.8, 0.6, 5.0, 0.8)
    fitted = fit(samples, start)
    for name in ("step_overhead_ms", "compute_efficiency", "memory_efficiency"):
        assert getattr(fitted, name) == pytest.approx(getattr(TRUE, name), rel=0.05), name
    error = predict(samples, lambda s: fitted) / [s.measured_s for s in samples] - 1
    assert np.median(np.abs(error)) < 0.01


def test_a_fit_of_some_coefficients_leaves_the_others_alone() -> None:
    samples = synthetic_samples(np.random.default_rng(1), 60)
    start = dataclasses.replace(TRUE, step_overhead_ms=0.1, per_seq_overhead_ms=0.0)
    fitted = fit(samples, start, OVERHEADS)
    for name in set(PARAMS) - set(OVERHEADS):
        assert getattr(fitted, name) == getattr(start, name)
    assert fitted.step_overhead_ms == pytest.approx(TRUE.step_overhead_ms, rel=0.1)


def test_samples_round_trip_through_parquet(tmp_path: Path) -> None:
    samples = synthetic_samples(np.random.default_rng(2), 5)
    write_samples(samples, tmp_path / "s.parquet")
    assert read_samples(tmp_path / "s.parquet") == samples


def test_a_file_that_is_not_a_sample_table_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "x.parquet").write_text("not parquet")
    with pytest.raises(CalibrationError, match="not a Parquet file"):
        read_samples(tmp_path / "x.parquet")
    with pytest.raises(CalibrationError, match="no step-sample file"):
        read_samples(tmp_path / "missing.parquet")


def test_the_bundled_measurements_read_as_samples() -> None:
    h100 = h100_vllm_steps.read()
    assert len(h100) == 1967  # steps whose successor was sampled too
    assert {s.config for s in h100} == {("llama-2-70b", "h100-sxm", 4, "bf16"),
                                         ("codellama-34b", "h100-sxm", 2, "bf16")}
    static = splitwise.read()
    assert {s.gpu for s in static} == {"a100-80gb", "h100-sxm"}
    assert {s.kind for s in static} == {"prefill", "decode"}
    kept = physically_possible(static)
    assert 0 < len(static) - len(kept) < len(static) // 4  # a few impossible points dropped


def test_a_fit_times_an_fp32_models_steps_as_a_scenario_run_does() -> None:
    """KV "auto" is fp32 for an fp32 model: the fit's predictions must read the KV bytes
    ``sim.config.deployment.resolve`` does, or a profile fitted to the CPU engine's tiny-llama
    steps would carry the difference in its coefficients."""
    from sim.config.deployment import resolve
    from sim.config.scenario import parse_scenario

    root = Path(__file__).resolve().parent.parent
    steps = read_samples(root / "calibrate" / "data" / "vllm_cpu_tiny_llama" / "steps.parquet")
    decode = [s for s in steps if s.kind == "decode"][:20]
    assert {s.config for s in decode} == {("tiny-llama", "x86-cpu-2c", 1, "fp32")}
    deployment = resolve(parse_scenario({
        "model": "tiny-llama", "hardware": {"gpu": "x86-cpu-2c", "price_usd_per_hour": 0},
        "engine": {"weight_dtype": "fp32", "num_gpu_blocks": 2048, "latency_profile": "default"},
        "workload": {"arrivals": {"process": "all_at_once"}, "num_requests": 1,
                     "lengths": {"input": 1, "output": 1}},
    }))
    latency = deployment.setup.latency
    expected = [latency.step_time(s.batch) for s in decode]
    assert predict(decode, lambda s: latency.coefficients) == pytest.approx(expected, rel=1e-12)


def test_calibrate_ingest_then_fit_writes_a_profile_the_simulator_loads(tmp_path: Path,
                                                                        capsys) -> None:
    from sim.commands.cli import main
    from sim.engine.latency_profile import load_profile

    samples = synthetic_samples(np.random.default_rng(4), 40)
    write_samples(samples, tmp_path / "steps.parquet")
    out = tmp_path / "fitted.yaml"
    assert main(["calibrate", "fit", str(tmp_path / "steps.parquet"), "--out", str(out),
                 "--name", "synthetic"]) == 0
    printed = capsys.readouterr().out
    assert "| llama-3.1-8b | h100-sxm | 1 | bf16 | 40 |" in printed
    profile = load_profile(str(out))
    assert profile.name == "synthetic"
    assert {tuple(sorted(m.items())) for m, _ in profile.overrides} == {
        (("gpu", "h100-sxm"), ("model", "llama-3.1-8b"), ("tensor_parallel", 1),
         ("weight_dtype", "bf16")),
        (("gpu", "a100-80gb"), ("model", "llama-2-70b"), ("tensor_parallel", 4),
         ("weight_dtype", "bf16")),
    }
    fitted = profile.resolve(gpu="h100-sxm", model="llama-3.1-8b", tensor_parallel=1,
                             weight_dtype="bf16", interconnect="nvlink")
    error = predict(samples, lambda s: fitted)[:40] / [s.measured_s for s in samples[:40]] - 1
    assert np.median(np.abs(error)) < 0.02


def test_calibrate_commands_report_bad_input_without_a_traceback(tmp_path: Path,
                                                                  capsys) -> None:
    from sim.commands.cli import main

    assert main(["calibrate", "fit", str(tmp_path / "none.parquet"), "--out",
                 str(tmp_path / "p.yaml")]) == 2
    err = capsys.readouterr().err
    assert "no step-sample file" in err and "Traceback" not in err
    assert main(["calibrate", "ingest", "splitwise", "--out",
                 str(tmp_path / "missing" / "s.parquet")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_iteration_log_lines_become_samples_with_the_context_from_kv_usage(tmp_path: Path,
                                                                          capsys) -> None:
    from sim.commands.cli import main

    log = tmp_path / "server.log"
    log.write_text(
        "INFO 11-22 16:29:41 [loggers.py:199] Engine 000: Iteration(0): 1 context requests, "
        "512 context tokens, 0 generation requests, 0 generation tokens, iteration elapsed "
        "time: 16.69 ms, KV cache usage: 1.0%\n"
        "INFO unrelated line\n"
        "INFO ... Iteration(1): 0 context requests, 0 context tokens, 4 generation requests, "
        "4 generation tokens, iteration elapsed time: 6.50 ms, KV cache usage: 2.0%\n"
        "INFO ... Iteration(2): 0 context requests, 0 context tokens, 4 generation requests, "
        "4 generation tokens, iteration elapsed time: 6.40 ms\n"
        "INFO ... Iteration(3): 0 context requests, 0 context tokens, 0 generation requests, "
        "0 generation tokens, iteration elapsed time: 0.10 ms, KV cache usage: 0.0%\n")
    out = tmp_path / "steps.parquet"
    assert main(["calibrate", "ingest-log", str(log), "--model", "llama-3.1-8b", "--gpu",
                 "h100-sxm", "--num-gpu-blocks", "1000", "--out", str(out)]) == 0
    assert "left out: 1 no kv usage, 1 empty step" in capsys.readouterr().out
    prefill, decode = read_samples(out)
    assert prefill.kind == "prefill" and prefill.batch.prefill_tokens == 512
    assert prefill.measured_s == pytest.approx(0.01669)
    # 2 % of 16,000 slots in use, less half a block for each of the 4 sequences
    assert decode.batch.decode_seqs == 4 and decode.batch.decode_context_tokens == 320 - 32
    empty = tmp_path / "empty.log"
    empty.write_text("nothing here\n")
    assert main(["calibrate", "ingest-log", str(empty), "--model", "llama-3.1-8b", "--gpu",
                 "h100-sxm", "--num-gpu-blocks", "1000", "--out", str(out)]) == 2
    assert "enable-logging-iteration-details" in capsys.readouterr().err
