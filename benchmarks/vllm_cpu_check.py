"""Calibrate against a real vLLM engine on this machine's CPU, then predict a workload it never saw.

    python benchmarks/vllm_cpu_check.py [--vllm-python .venv-vllm/bin/python]

1. A tiny Llama-architecture model (4 layers, hidden 256, vocab 32,000; a config.json only,
   random weights) runs in vLLM's CPU backend in fp32 (bf16 is emulated, ~10x slower, on CPUs
   without AVX-512 BF16).
2. ``servesim calibrate``'s sweep drives it step by step (prefill over prompt lengths, decode
   over batch x context) and the roofline coefficients are fitted to the measured steps.
3. A different workload (Poisson arrivals at 3 requests/s, prompts of 100-700 tokens, a third of
   them sharing 256-token prefixes, 10-60 output tokens) is sent to the real engine at its
   arrival times, three times (a slow spell of a shared 2-core machine moves one replay by
   10-25 %), and simulated, with the fitted profile and with the uncalibrated default; each
   measured figure is the median over the three replays.
   Prefix caching is on in the engine and in the simulator.

The engine's own timestamps (not client-side streaming gaps) are the measurement. The CPU's
figures in the catalog (`x86-cpu-2c`) are nominal; the fit absorbs what they get wrong.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from calibrate.profile_file import profile_document, write_profile  # noqa: E402
from calibrate.profile_fit import fit_profile, median_ape  # noqa: E402
from calibrate.replay import comparison, deployment_for  # noqa: E402
from calibrate.request_run import RunConfig  # noqa: E402
from calibrate.step_fit import (fit_cost, physically_possible,  # noqa: E402
                                profile_coefficients)
from calibrate.step_sample import write_samples  # noqa: E402
from calibrate.vllm_run import (EngineSettings, measured_run, replay_plan, run_driver,  # noqa: E402
                                step_samples, sweep_plan)
from sim.engine.latency_profile import load_profile
from sim.workload.workload import Workload

DEFAULT_PYTHON = ROOT / ".venv-vllm" / "bin" / "python"
TINY_LLAMA = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 256,
    "intermediate_size": 688, "num_hidden_layers": 4, "num_attention_heads": 4,
    "num_key_value_heads": 2, "head_dim": 64, "vocab_size": 32000,
    "max_position_embeddings": 2048, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
    "hidden_act": "silu", "tie_word_embeddings": False, "bos_token_id": 1, "eos_token_id": 2,
    "torch_dtype": "float32",
}
# the simulator's names for the model and the machine (sim/catalog: models/tiny-llama.json is
# TINY_LLAMA, gpus.yaml has the CPU with nominal figures)
MODEL, DEVICE = "tiny-llama", "x86-cpu-2c"
REPLAYS = 3
SETTINGS = EngineSettings(dtype="float32", max_model_len=2048, max_num_batched_tokens=2048,
                          max_num_seqs=128, prefix_caching=True)


def held_out_workload() -> Workload:
    rng = np.random.default_rng(3)
    n = 40
    prompts = rng.integers(100, 700, n)
    groups = rng.integers(0, 3, n)
    return Workload.from_arrays(
        np.cumsum(rng.exponential(1 / 3.0, n)), prompts, rng.integers(10, 60, n),
        prefix_key=groups, prefix_tokens=np.where(groups > 0, np.minimum(prompts, 256), 0))


def interleaved_plan(sweep: dict) -> dict:
    """The sweep's repeats with a replay after each, all in one engine.

    The machine's speed drifts by 10-25 % over minutes (other tenants of a shared host): fitted
    on a sweep run in a fast spell, a replay run in a slow one misses by that much. Blocking the
    design (sweep repeat, replay, next repeat, replay, ...) puts fit data and held-out data in
    the same spells, and the median of the replays drops the most disturbed one. One engine for
    all: a second process can land on a differently loaded machine.
    """
    phases = [p for p in sweep["phases"] if p["name"].startswith("warmup")]
    repeats = sorted({int(p["name"].rsplit("-", 1)[1]) for p in sweep["phases"]
                      if not p["name"].startswith("warmup")})
    for i in range(max(len(repeats), REPLAYS)):  # a quick sweep has fewer repeats than replays
        if i < len(repeats):
            phases += [p for p in sweep["phases"] if not p["name"].startswith("warmup")
                       and p["name"].endswith(f"-{repeats[i]}")]
        if i < REPLAYS:
            phases += replay_plan(held_out_workload(), f"replay-{i}",
                                  id_offset=1_000_000 * (i + 1))["phases"][1:]
    return {"phases": phases}


def run_check(python: Path, folder: Path, quick: bool = False) -> dict:
    """Profile, fit, replay; returns the errors and where the files are."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tiny-llama").mkdir(exist_ok=True)
    (folder / "tiny-llama" / "config.json").write_text(json.dumps(TINY_LLAMA))

    plan = interleaved_plan(sweep_plan(SETTINGS, quick=quick))
    result = run_driver(str(python), folder / "tiny-llama", plan, folder / "engine", SETTINGS)
    samples = physically_possible(step_samples(result, MODEL, DEVICE, "fp32",
                                               skip_phases=("warmup", "replay")))
    write_samples(samples, folder / "steps.parquet")
    start = profile_coefficients(load_profile("default"))(samples[0])
    fitted = fit_profile(samples, start, per_config=False)
    profile = folder / "ci-cpu-profile.yaml"
    write_profile(profile, profile_document(
        "ci-cpu", f"fitted to {len(samples)} steps of vLLM {result['meta']['vllm']} on this CPU",
        fitted.base, []), written_by="benchmarks/vllm_cpu_check.py")

    meta = result["meta"]
    config = RunConfig(model=MODEL, gpu=DEVICE, tensor_parallel=1,
                       max_num_seqs=SETTINGS.max_num_seqs,
                       max_num_batched_tokens=SETTINGS.max_num_batched_tokens,
                       block_size=int(meta["block_size"]), prefix_caching=True,
                       weight_dtype="fp32", num_gpu_blocks=int(meta["num_gpu_blocks"]),
                       max_model_len=SETTINGS.max_model_len, source=f"vLLM {meta['vllm']} CPU")
    runs = [measured_run(result, f"replay-{i}", config) for i in range(REPLAYS)]
    for run in runs:
        run.save(folder / "runs" / run.name)
    errors = {name: _median([comparison(run, deployment_for(run, str(p))) for run in runs])
              for name, p in (("default", "default"), ("fitted", profile))}
    return {"vllm": meta["vllm"], "steps": len(samples),
            "step_ape": median_ape(samples, fitted.coefficients),
            "default_step_ape": median_ape(samples, profile_coefficients(load_profile("default"))),
            # the fit's own objective at its start and at its end
            "start_cost": fit_cost(samples, start), "fitted_cost": fit_cost(samples, fitted.base),
            "errors": errors}


def _median(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Measured figures, the median over the replays, against the (identical) simulated ones."""
    out = frames[0].copy()
    out["measured_ms"] = np.median([f["measured_ms"].to_numpy() for f in frames], axis=0)
    out["ape_pct"] = (out["simulated_ms"] - out["measured_ms"]).abs() / out["measured_ms"] * 100
    out["run"] = "replays"
    return out


def markdown(result: dict) -> str:
    lines = [f"vLLM {result['vllm']} (CPU backend, fp32), {result['steps']} profiled steps, "
             f"fit median step error {result['step_ape']:.1f} %.", "",
             "| profile | metric | mean measured / simulated ms (APE) | p50 | p90 |",
             "|---|---|---|---|---|"]
    for name, frame in result["errors"].items():
        for metric, group in frame.groupby("metric", sort=False):
            cells = []
            for stat in ("mean", "p50", "p90"):
                r = group[group["stat"] == stat].iloc[0]
                cells.append("–" if np.isnan(r.measured_ms) else  # ITL: only its mean is known
                             f"{r.measured_ms:,.1f} / {r.simulated_ms:,.1f} ({r.ape_pct:.1f} %)")
            lines.append(f"| {name} | {metric} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vllm-python", type=Path, default=DEFAULT_PYTHON)
    parser.add_argument("--folder", type=Path, default=ROOT / "build" / "vllm-cpu-check")
    args = parser.parse_args()
    print(markdown(run_check(args.vllm_python, args.folder)))


if __name__ == "__main__":
    pd.set_option("display.width", 200)
    main()
