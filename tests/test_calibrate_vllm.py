"""Profiling a real vLLM engine: the plans, reading what the driver recorded, and (where an
environment with vLLM exists) the whole loop against the real engine."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from calibrate.errors import CalibrationError
from calibrate.request_run import RunConfig
from calibrate.vllm_driver import token_ids
from calibrate.vllm_run import (EngineSettings, measured_run, replay_plan, run_driver,
                                step_batch, step_samples, sweep_plan)
from sim.engine.batch import Batch, chunk_terms
from sim.workload.workload import Workload

ROOT = Path(__file__).resolve().parent.parent
VLLM_PYTHON = Path(os.environ.get("SERVESIM_VLLM_PYTHON", ROOT / ".venv-vllm" / "bin" / "python"))


def test_a_sweep_covers_prefill_and_decode_shapes_and_repeats_them() -> None:
    plan = sweep_plan(EngineSettings(max_num_batched_tokens=2048), quick=True)
    names = [p["name"] for p in plan["phases"]]
    assert names[:3] == ["warmup-0", "warmup-1", "warmup-2"]
    assert {"prefill-16-0", "prefill-1024-1", "decode-16x512-0", "decode-1x64-1"} <= set(names)
    decode = next(p for p in plan["phases"] if p["name"] == "decode-16x512-0")
    # enough output that all 16 decode together after their 8,192 prompt tokens are chunked
    assert {r["output_tokens"] for r in decode["requests"]} == {6 + 2 + 16 * 512 // 2048}
    ids = [r["id"] for p in plan["phases"] for r in p["requests"]]
    assert len(ids) == len(set(ids))
    # with prefix caching (vLLM's default) a prompt follows one that left its prefix cached
    warm, hit = (next(p["requests"][0] for p in plan["phases"] if p["name"] == name)
                 for name in ("prefix-warm-256-1", "prefix-hit-256-1"))
    assert warm["prefix_group"] == hit["prefix_group"] and warm["id"] != hit["id"]
    assert hit["prefix_tokens"] == 256 and hit["prompt_tokens"] == 256 + 64
    assert token_ids(warm, 32000)[:256] == token_ids(hit, 32000)[:256]
    groups = {p["requests"][0]["prefix_group"] for p in plan["phases"]
              if p["name"].startswith("prefix-warm")}
    assert len(groups) == 2 * 2  # two prefix lengths x two repeats, each cold at first
    plain = sweep_plan(EngineSettings(prefix_caching=False), quick=True)
    assert not any(p["name"].startswith("prefix") for p in plain["phases"])


def test_a_replay_plan_keeps_arrivals_lengths_and_shared_prefixes() -> None:
    workload = Workload.from_arrays([0.0, 0.5], [300, 200], [10, 20], prefix_key=[0, 2],
                                    prefix_tokens=[0, 128])
    phase = replay_plan(workload)["phases"][1]
    assert phase["requests"][1] == {"id": 1, "arrival_s": 0.5, "prompt_tokens": 200,
                                    "output_tokens": 20, "prefix_group": 2, "prefix_tokens": 128}
    # a second replay in the same engine gets other tokens, or it would hit the cache throughout
    again = replay_plan(workload, "again", id_offset=100)["phases"][1]["requests"][1]
    assert again["id"] == 101 and again["prefix_group"] == 102
    assert token_ids(again, 32000)[:128] != token_ids(phase["requests"][1], 32000)[:128]
    first = token_ids(phase["requests"][1], 32000)
    other = token_ids({**phase["requests"][1], "id": 7}, 32000)
    assert len(first) == 200 and first[:128] == other[:128] and first[128:] != other[128:]


def test_the_real_engine_check_puts_a_replay_after_each_sweep_repeat() -> None:
    """Blocking against the machine's drift: fit data and held-out data share its spells."""
    sys.path.insert(0, str(ROOT))
    from benchmarks.vllm_cpu_check import SETTINGS, interleaved_plan

    sweep = sweep_plan(SETTINGS)
    names = [p["name"] for p in interleaved_plan(sweep)["phases"]]
    assert len(names) == len(sweep["phases"]) + 3
    for i in range(3):
        before = names[:names.index(f"replay-{i}")]
        assert before[-1].endswith(f"-{i}") and not any(
            n.endswith(f"-{i + 1}") for n in before if not n.startswith(("replay", "warmup")))
    quick = [p["name"] for p in interleaved_plan(sweep_plan(SETTINGS, quick=True))["phases"]]
    assert quick[-2:] == ["replay-1", "replay-2"]  # two repeats, three replays


def test_a_recorded_step_becomes_the_latency_models_batch() -> None:
    batch = step_batch([["prefill", 100, 0], ["prefill", 50, 200], ["decode", 1, 63],
                        ["decode", 1, 9]])
    pairs = chunk_terms(100, 0)[0] + chunk_terms(50, 200)[0]
    assert batch == Batch(150, 2, pairs, 100 + 250, 2, 64 + 10)


def test_a_driver_result_becomes_samples_and_a_run() -> None:
    result = {
        "meta": {"vllm": "0.32.0", "device": "x86_64", "tensor_parallel": 1},
        "steps": [{"phase": "warmup-0", "wall_s": 0.5, "batch": [["prefill", 8, 0]]},
                  {"phase": "prefill-16-0", "wall_s": 0.02, "batch": [["prefill", 16, 0]]},
                  {"phase": "decode-1x64-0", "wall_s": 0.015, "host_s": 0.002,
                   "batch": [["decode", 1, 64]]},
                  {"phase": "decode-1x64-0", "wall_s": 0.01, "batch": []}],
        "requests": [{"phase": "replay", "id": "a", "prompt_tokens": 10, "output_tokens": 3,
                      "queued_ts": 100.5, "first_token_ts": 100.7, "last_token_ts": 101.0,
                      "prefix_group": 4, "prefix_tokens": 8},
                     {"phase": "replay", "id": "b", "prompt_tokens": 20, "output_tokens": 2,
                      "queued_ts": 100.0, "first_token_ts": 100.2, "last_token_ts": 100.4,
                      "prefix_group": 0, "prefix_tokens": 0}],
    }
    samples = step_samples(result, "m/config.json", "cpu.yaml", "fp32")
    # host time around a step (intake, output handling) delays the next step: it counts
    assert [(s.kind, s.measured_s) for s in samples] == [("prefill", 0.02),
                                                         ("decode", pytest.approx(0.017))]
    assert samples[0].source == "vllm 0.32.0 on x86_64"
    config = RunConfig(model="m", gpu="g", tensor_parallel=1, max_num_seqs=8,
                       max_num_batched_tokens=64)
    run = measured_run(result, "replay", config)
    assert run.requests["arrival_s"].tolist() == [0.0, 0.5]
    assert run.requests["finish_s"].tolist() == pytest.approx([0.4, 1.0])
    # shared prefixes travel with the run into the replayed workload
    from calibrate.replay import workload_of
    workload = workload_of(run)
    assert workload.prefix_key.tolist() == [0, 4] and workload.prefix_tokens.tolist() == [0, 8]
    with pytest.raises(CalibrationError, match="no requests in phase"):
        measured_run(result, "other", config)


def test_a_missing_vllm_environment_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CalibrationError, match="--vllm-python"):
        run_driver(str(tmp_path / "nope"), tmp_path, {"phases": []}, tmp_path / "o",
                   EngineSettings())


@pytest.mark.skipif(not VLLM_PYTHON.exists(),
                    reason="no Python environment with vLLM (.venv-vllm, or SERVESIM_VLLM_PYTHON)")
def test_calibrating_on_a_real_engine_fits_its_steps_and_replays_a_workload_it_never_saw(tmp_path: Path) -> None:
    """Profile a real vLLM CPU engine (the full sweep), fit, then replay a different workload
    (other rate and lengths, shared prefixes, prefix caching on) three times on the engine and
    once in the simulator, and compare.

    What a run can guarantee is asserted: the whole loop works on a real engine, the fit ends
    no worse than it started by its own objective (whatever the timings' noise), and every
    compared figure is there. How close the fit and the replays land is a wall-clock
    comparison with a live engine on a shared 2-core machine, and it moves with the machine's
    load: with another process busy on the second core the fitted median step error was 40-41
    % (the unfitted profile's 68 %), where this test used to require under 25 %; at one
    unchanged commit the fitted TTFT mean missed by 17 % on one day and by 81 % on another.
    That accuracy is held without an engine by the bundled replays
    (tests/test_calibrate_runs.py) and reported, run by run, on docs/validation.md."""
    sys.path.insert(0, str(ROOT))
    from benchmarks.vllm_cpu_check import run_check

    result = run_check(VLLM_PYTHON, tmp_path)
    print(f"\nmedian step error: fitted {result['step_ape']:.1f} %, "
          f"unfitted {result['default_step_ape']:.1f} %")
    assert result["steps"] > 500 and result["fitted_cost"] <= result["start_cost"]
    for profile in ("default", "fitted"):
        means = result["errors"][profile].query("stat == 'mean'")
        assert set(means["metric"]) == {"TTFT", "TPOT", "E2E", "ITL"}
        assert (means["measured_ms"] > 0).all() and (means["simulated_ms"] > 0).all()


@pytest.mark.skipif(not VLLM_PYTHON.exists(),
                    reason="no Python environment with torch and transformers (.venv-vllm)")
def test_the_transformers_profiler_writes_samples_a_fit_reads(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT))
    import json

    from benchmarks.vllm_cpu_check import TINY_LLAMA
    from calibrate.step_sample import read_samples
    from sim.commands.cli import main

    (tmp_path / "tiny").mkdir()
    (tmp_path / "tiny" / "config.json").write_text(json.dumps(TINY_LLAMA))
    out = tmp_path / "hf"
    assert main(["calibrate", "run", "--engine", "transformers", "--model",
                 str(tmp_path / "tiny"), "--device", "h100-sxm", "--python", str(VLLM_PYTHON),
                 "--weight-dtype", "fp32", "--quick", "--out", str(out)]) == 0
    samples = read_samples(out / "steps.parquet")
    assert {s.kind for s in samples} == {"prefill", "decode"}
    assert samples[0].source.startswith("transformers")
    decode = [s for s in samples if s.batch.decode_seqs == 16]
    assert decode and decode[0].batch.decode_context_tokens == 16 * 513


CPU_DATA = ROOT / "calibrate" / "data" / "vllm_cpu_tiny_llama"


def test_the_catalogs_tiny_llama_is_the_model_the_engine_runs() -> None:
    import json

    from benchmarks.vllm_cpu_check import MODEL, TINY_LLAMA

    catalog = json.loads((ROOT / "sim" / "catalog" / "models" / f"{MODEL}.json").read_text())
    assert catalog == TINY_LLAMA


def test_the_shipped_cpu_profile_meets_the_accuracy_target_on_runs_it_was_not_fitted_on() -> None:
    """The bundled replays of another workload on the real engine (not used for fitting: the
    profile comes from the sweep's steps) against `latency_profile: auto`: median over the
    runs of the APE of the mean, E2E and TPOT <= 10 %, TTFT <= 20 % (measured: 4.6 / 5.6 /
    2.7 %)."""
    from calibrate.replay import comparison, deployment_for
    from calibrate.request_run import load_run

    runs = [load_run(folder) for folder in sorted((CPU_DATA / "runs").iterdir())]
    assert len(runs) == 3 and all("prefix_group" in r.requests.columns for r in runs)
    deployment = deployment_for(runs[0], "auto")
    assert deployment.profile.name == "calibrated"
    errors = [comparison(run, deployment_for(run, "auto")) for run in runs]
    means = pd.concat(errors).query("stat == 'mean'").groupby("metric")["ape_pct"].median()
    assert means["E2E"] <= 10 and means["TPOT"] <= 10 and means["TTFT"] <= 20, means
    default = [comparison(run, deployment_for(run, "default")) for run in runs]
    assert pd.concat(default).query("stat == 'mean' and metric == 'E2E'")["ape_pct"].min() > 40
