"""Profiling a real vLLM engine: plans for ``vllm_driver.py``, running it, and turning what it
recorded into step samples and measured runs.

The driver runs in the Python environment that has vLLM (``--vllm-python``); this side only
writes its plan, starts it and reads its result JSON, so servesim itself never imports vLLM.

A profiling sweep is a series of phases, each run to completion before the next: warm-up
(first steps of a new shape are slow), single prompts over token counts (prefill steps),
batches of equal prompts decoding together over batch sizes and context lengths (decode
steps; their prompts, chunked under the token budget, also give mixed steps), and, with prefix
caching on, prompts whose prefix the previous phase left in the cache (prefill steps that skip
the cached tokens but attend to them), each repeated.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from calibrate.errors import CalibrationError
from calibrate.request_run import RequestRun, RunConfig, from_timestamps
from calibrate.step_sample import StepSample, kind_of
from sim.engine.batch import Batch, chunk_terms
from sim.workload.workload import Workload

DRIVER = Path(__file__).with_name("vllm_driver.py")
HF_DRIVER = Path(__file__).with_name("hf_driver.py")


@dataclass(frozen=True)
class EngineSettings:
    """How the real engine is started (and so how the simulator must be set up to match)."""

    dtype: str = "auto"  # vLLM's --dtype: auto, float32, bfloat16, float16
    max_model_len: int = 2048
    max_num_batched_tokens: int = 2048
    max_num_seqs: int = 128
    tensor_parallel: int = 1
    prefix_caching: bool = True  # vLLM's default
    load_format: str = "dummy"  # random weights of the real shape: timing does not need real ones
    cpu_kv_cache_gib: float = 1.0  # VLLM_CPU_KVCACHE_SPACE on CPU engines

    def arguments(self) -> list[str]:
        args = ["--dtype", self.dtype, "--max-model-len", str(self.max_model_len),
                "--max-num-batched-tokens", str(self.max_num_batched_tokens),
                "--max-num-seqs", str(self.max_num_seqs),
                "--tensor-parallel", str(self.tensor_parallel), "--load-format", self.load_format]
        return args + (["--prefix-caching"] if self.prefix_caching else [])


PREFIX_OWN = 64  # tokens after the cached prefix in the sweep's prefix-hit prompts


def _phase(name: str, requests: list[dict]) -> dict:
    return {"name": name, "requests": requests}


def _requests(count: int, prompt: int, output: int, first_id: int) -> list[dict]:
    return [{"id": first_id + i, "arrival_s": 0.0, "prompt_tokens": prompt,
             "output_tokens": output} for i in range(count)]


def sweep_plan(settings: EngineSettings, quick: bool = False) -> dict:
    """Warm-up, then prefill over prompt lengths and decode over batch x context, repeated."""
    budget = settings.max_num_batched_tokens
    longest = min(settings.max_model_len - 16, 1024)
    prompts = [n for n in (16, 32, 64, 128, 256, 512, 1024) if n <= longest]
    batches = [1, 4, 16] if quick else [1, 2, 4, 8, 16, 32]
    contexts = [64, 512] if quick else [64, 128, 256, 512]
    repeats = 2 if quick else 3
    decode_steps = 6 if quick else 12
    phases = [_phase(f"warmup-{i}", _requests(2, 128, 8, 1000 * i)) for i in range(3)]
    next_id = 10_000
    for rep in range(repeats):  # repeats interleaved, so a slow spell hits one copy only
        for tokens in prompts:
            phases.append(_phase(f"prefill-{tokens}-{rep}", _requests(1, tokens, 1, next_id)))
            next_id += 1
        for batch in batches:
            for context in contexts:
                output = decode_steps + 2 + batch * context // budget
                phases.append(_phase(f"decode-{batch}x{context}-{rep}",
                                     _requests(batch, context, output, next_id)))
                next_id += batch
        if settings.prefix_caching:
            for cached in (n for n in (256, 1024) if n + PREFIX_OWN < settings.max_model_len):
                group = 500_000 + 10 * rep + cached // 256  # new per repeat: a cold cache first
                for name in ("prefix-warm", "prefix-hit"):
                    request = {"id": next_id, "arrival_s": 0.0, "output_tokens": 1,
                               "prompt_tokens": cached + PREFIX_OWN, "prefix_group": group,
                               "prefix_tokens": cached}
                    phases.append(_phase(f"{name}-{cached}-{rep}", [request]))
                    next_id += 1
    return {"phases": phases}


def replay_plan(workload: Workload, name: str = "replay", id_offset: int = 0) -> dict:
    """One phase sending ``workload``'s requests at their arrival times, shared prefixes kept.

    Prompt tokens follow from request ids and prefix groups, so a second replay of the same
    workload in the same engine needs another ``id_offset`` or it finds every prompt cached.
    """
    requests = []
    for i in range(len(workload)):
        request = {"id": id_offset + i, "arrival_s": float(workload.arrival_s[i]),
                   "prompt_tokens": int(workload.input_tokens[i]),
                   "output_tokens": int(workload.output_tokens[i])}
        if workload.prefix_key[i]:
            request["prefix_group"] = id_offset + int(workload.prefix_key[i])
            request["prefix_tokens"] = int(workload.prefix_tokens[i])
        requests.append(request)
    warmup = _phase("warmup", _requests(2, 128, 8, 10**9))
    return {"phases": [warmup, _phase(name, requests)]}


def run_driver(python: str, model_dir: Path, plan: dict, folder: Path,
               settings: EngineSettings, timeout_s: float = 3600) -> dict:
    """Run the vLLM driver on ``plan``; returns its result (also kept as ``folder/result.json``)."""
    _check_inputs(python, model_dir, "vLLM")
    folder.mkdir(parents=True, exist_ok=True)
    plan_path = folder / "plan.json"
    plan_path.write_text(json.dumps(plan))
    env = dict(os.environ)
    env.setdefault("VLLM_CPU_KVCACHE_SPACE", f"{settings.cpu_kv_cache_gib:g}")
    return _run_script("vLLM", [python, str(DRIVER), "--model", str(model_dir), "--plan",
                                str(plan_path), *settings.arguments()], folder, env, timeout_s)


def run_transformers_driver(python: str, model_dir: Path, folder: Path, dtype: str,
                            quick: bool = False, timeout_s: float = 3600) -> dict:
    """Time forward passes of the model in plain transformers (``hf_driver.py``)."""
    _check_inputs(python, model_dir, "torch and transformers")
    folder.mkdir(parents=True, exist_ok=True)
    command = [python, str(HF_DRIVER), "--model", str(model_dir), "--dtype", dtype,
               *(["--quick"] if quick else [])]
    return _run_script("transformers", command, folder, None, timeout_s)


def _check_inputs(python: str, model_dir: Path, needs: str) -> None:
    if not Path(python).exists():
        raise CalibrationError(
            f"--vllm-python {python}: no such interpreter; give the python of an environment "
            f"with {needs} installed (see docs/calibration.md)"
        )
    if not (Path(model_dir) / "config.json").is_file():
        raise CalibrationError(f"--model {model_dir}: needs a folder holding a config.json")


def _run_script(name: str, command: list[str], folder: Path, env: dict | None,
                timeout_s: float) -> dict:
    """Run a driver writing ``folder/result.json``; its output is kept in ``driver.log``."""
    result_path = folder / "result.json"
    done = subprocess.run([*command, "--out", str(result_path)], env=env, capture_output=True,
                          text=True, timeout=timeout_s)
    (folder / "driver.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0 or not result_path.is_file():
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise CalibrationError(f"the {name} driver failed (exit {done.returncode}); its output "
                               f"ends with:\n{tail}\n(full log: {folder / 'driver.log'})")
    return json.loads(result_path.read_text())


def step_batch(entries: list) -> Batch:
    """The latency model's view of one recorded step: (phase, tokens, computed before) each."""
    prefill_tokens = prefill_seqs = prefill_kv = decode_seqs = decode_context = 0
    pairs = 0.0
    for kind, tokens, before in entries:
        if kind == "prefill":
            chunk_pairs, kv = chunk_terms(tokens, before)
            prefill_tokens += tokens
            prefill_seqs += 1
            pairs += chunk_pairs
            prefill_kv += kv
        else:
            decode_seqs += 1
            decode_context += before + 1
    return Batch(prefill_tokens, prefill_seqs, pairs, prefill_kv, decode_seqs, decode_context)


def step_samples(result: dict, model: str, gpu: str, weight_dtype: str,
                 skip_phases: tuple[str, ...] = ("warmup",)) -> list[StepSample]:
    """Every recorded step outside warm-up as a sample (steps with no work are dropped).

    A step's time is ``step()``'s wall time plus the host time the driver spent around it
    (adding arrived requests, handling outputs): both delay the next step, so both are in the
    request timestamps the simulator is compared with. Older results lack ``host_s``.
    """
    meta = result["meta"]
    engine = meta.get("engine") or f"vllm {meta['vllm']}"
    source = f"{engine} on {meta['device']}"
    samples = []
    for step in result["steps"]:
        if step["phase"].startswith(skip_phases) or not step["batch"]:
            continue
        batch = step_batch(step["batch"])
        samples.append(StepSample(source, model, gpu, int(meta["tensor_parallel"]),
                                  weight_dtype, kind_of(batch), batch,
                                  float(step["wall_s"]) + float(step.get("host_s", 0.0))))
    return samples


def measured_run(result: dict, phase: str, config: RunConfig) -> RequestRun:
    """The requests of one phase as a measured run (engine timestamps)."""
    rows = [r for r in result["requests"] if r["phase"] == phase]
    if not rows:
        raise CalibrationError(f"the result has no requests in phase {phase!r}")

    def column(name: str) -> np.ndarray:
        return np.array([r[name] for r in rows], dtype=float)

    prefixes = {}
    if all("prefix_group" in r for r in rows):  # older results did not record them
        prefixes = {"prefix_group": column("prefix_group"),
                    "prefix_tokens": column("prefix_tokens")}
    return from_timestamps(phase, config, column("queued_ts"), column("prompt_tokens"),
                           column("output_tokens"), column("first_token_ts"),
                           column("last_token_ts"), **prefixes)
