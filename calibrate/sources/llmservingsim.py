"""Real vLLM 0.19 runs on RTX 4090 and RTX PRO 6000 (``calibrate/data/llmservingsim_vllm_bench``).

300 ShareGPT requests each at ~10 requests/s, bf16, block size 16, token budget 2,048, prefix
caching on. Per request the engine's own timestamps: ``queued_ts`` (arrival at the engine),
``first_token_ts``, ``last_token_ts``. The Qwen3-30B-A3B run (data parallel with expert
parallelism) is left out: that topology is not modelled. The RTX PRO 6000 runs did not record
their KV block count, so the simulator's memory planner supplies it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from calibrate.request_run import RequestRun, RunConfig, from_timestamps

DATA = Path(__file__).resolve().parent.parent / "data" / "llmservingsim_vllm_bench" / "examples"
RUNS = {  # name -> (folder, gpu id, catalog model id)
    "rtx4090-llama-3.1-8b": ("RTX4090/Llama-3.1-8B", "rtx-4090", "llama-3.1-8b"),
    "rtxpro6000-llama-3.1-8b": ("RTXPRO6000/Llama-3.1-8B", "rtx-pro-6000", "llama-3.1-8b"),
    "rtxpro6000-qwen3-32b": ("RTXPRO6000/Qwen3-32B", "rtx-pro-6000", "qwen3-32b"),
}


def read_run(name: str) -> RequestRun:
    relative, gpu, model = RUNS[name]
    folder = DATA / relative / "vllm"
    meta = json.loads((folder / "meta.json").read_text())
    kwargs = meta["engine_kwargs"]
    config = RunConfig(
        model=model, gpu=gpu, tensor_parallel=int(kwargs["tensor_parallel_size"]),
        max_num_seqs=int(kwargs["max_num_seqs"]),
        max_num_batched_tokens=int(kwargs["max_num_batched_tokens"]),
        block_size=16, prefix_caching=True, weight_dtype="bf16",
        num_gpu_blocks=(meta.get("kv_cache") or {}).get("num_gpu_blocks"),
        max_model_len=kwargs.get("max_model_len"),
        source=f"vLLM {meta.get('vllm_version', '?')} bench run, LLMServingSim examples/{relative}",
    )
    r = pd.read_json(folder / "requests.jsonl", lines=True)
    return from_timestamps(name, config, r["queued_ts"].to_numpy(), r["input_toks"].to_numpy(),
                           r["output_toks"].to_numpy(), r["first_token_ts"].to_numpy(),
                           r["last_token_ts"].to_numpy())


def read() -> list[RequestRun]:
    return [read_run(name) for name in RUNS]
