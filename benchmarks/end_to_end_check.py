"""End-to-end check: replay measured vLLM request streams and compare latencies.

For each bundled run (calibrate/data/llmservingsim_vllm_bench), the requests' engine arrival
times (``queued_ts``), prompt and output lengths are replayed through the simulator with the
run's engine settings, and the simulated TTFT, TPOT and E2E are compared with the measured ones
(TTFT = first_token_ts − queued_ts, E2E = last_token_ts − queued_ts, TPOT = (last − first) /
(output − 1)), mean and percentiles, as absolute percentage errors.

Approximations: prompts are treated as sharing no prefix (the token ids are not bundled); the
RTX PRO 6000 runs did not record their KV block count, so the memory planner's count is used.
The Qwen3-30B-A3B run (data parallel with expert parallelism) is skipped: that topology is not
modelled yet.

    python benchmarks/end_to_end_check.py [--profile NAME_OR_PATH]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from sim.config.deployment import resolve
from sim.config.scenario import parse_scenario
from sim.fleet.simulation import simulate
from sim.results.metrics import distribution_ms
from sim.workload.workload import Workload

DATA = Path(__file__).resolve().parent.parent / "calibrate" / "data" / "llmservingsim_vllm_bench"
RUNS = [  # (folder, gpu id, catalog model id)
    ("examples/RTX4090/Llama-3.1-8B", "rtx-4090", "llama-3.1-8b"),
    ("examples/RTXPRO6000/Llama-3.1-8B", "rtx-pro-6000", "llama-3.1-8b"),
    ("examples/RTXPRO6000/Qwen3-32B", "rtx-pro-6000", "qwen3-32b"),
]
STATS = ("mean", "p50", "p90", "p99")


def measured(requests: pd.DataFrame) -> dict[str, dict]:
    ttft = requests["first_token_ts"] - requests["queued_ts"]
    e2e = requests["last_token_ts"] - requests["queued_ts"]
    out = requests["output_toks"]
    tpot = ((requests["last_token_ts"] - requests["first_token_ts"]) / (out - 1)).where(out > 1)
    return {"TTFT": distribution_ms(ttft), "TPOT": distribution_ms(tpot), "E2E": distribution_ms(e2e)}


def simulated(folder: Path, gpu: str, model: str, profile: str) -> tuple[dict[str, dict], int]:
    meta = json.loads((folder / "vllm" / "meta.json").read_text())
    kwargs = meta["engine_kwargs"]
    engine = {
        "max_num_seqs": kwargs["max_num_seqs"],
        "max_num_batched_tokens": kwargs["max_num_batched_tokens"],
        "block_size": 16,
        "prefix_caching": True,
        "latency_profile": profile,
    }
    blocks = meta.get("kv_cache", {}).get("num_gpu_blocks")
    if blocks:
        engine["num_gpu_blocks"] = blocks
    if kwargs.get("max_model_len"):
        engine["max_model_len"] = kwargs["max_model_len"]
    scenario = parse_scenario({
        "name": folder.name,
        "model": model,
        "hardware": {"gpu": gpu, "tensor_parallel": kwargs["tensor_parallel_size"],
                     "price_usd_per_hour": 1.0},
        "engine": engine,
        "workload": {"arrivals": {"process": "all_at_once"}, "num_requests": 1,
                     "lengths": {"input": 1, "output": 1}},
    })
    deployment = resolve(scenario)
    requests = pd.read_json(folder / "vllm" / "requests.jsonl", lines=True)
    requests = requests.sort_values("queued_ts")
    workload = Workload.from_arrays(
        requests["queued_ts"] - requests["queued_ts"].min(),
        requests["input_toks"], requests["output_toks"],
    )
    records = simulate(deployment.setup, workload).records
    return {
        "TTFT": distribution_ms(records["ttft_s"]),
        "TPOT": distribution_ms(records["tpot_s"]),
        "E2E": distribution_ms(records["e2e_s"]),
    }, deployment.setup.num_gpu_blocks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="default")
    args = parser.parse_args()
    print("| run | KV blocks | metric | " + " | ".join(
        f"{s} measured / simulated (APE)" for s in STATS) + " |")
    print("|---|---|---|" + "---|" * len(STATS))
    errors = []
    for relative, gpu, model in RUNS:
        folder = DATA / relative
        real = measured(pd.read_json(folder / "vllm" / "requests.jsonl", lines=True))
        sim, blocks = simulated(folder, gpu, model, args.profile)
        for metric in ("TTFT", "TPOT", "E2E"):
            cells = []
            for stat in STATS:
                m, s = real[metric][stat], sim[metric][stat]
                ape = abs(s - m) / m * 100
                errors.append((metric, ape))
                cells.append(f"{m:,.1f} / {s:,.1f} ({ape:.1f} %)")
            print(f"| {relative.split('/', 1)[1]} | {blocks:,} | {metric} | " + " | ".join(cells) + " |")
    for metric in ("TTFT", "TPOT", "E2E"):
        apes = [e for m, e in errors if m == metric]
        print(f"\n{metric}: median APE over runs and statistics {np.median(apes):.1f} %", end="")
    print()


if __name__ == "__main__":
    main()
