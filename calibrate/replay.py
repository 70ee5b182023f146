"""Replaying a measured run through the simulator, and how far the prediction is.

The simulator is set up as the measured engine was (model, GPU, TP, token budget, sequence
limit, block size, prefix caching, its own KV block count when it reported one) and fed the
run's requests at their engine arrival times with their real prompt and output lengths.
Prompts share prefixes only where the run says so (``prefix_group``/``prefix_tokens``
columns, kept by ``servesim calibrate run``); benchmark runs rarely keep token ids, so theirs
are taken as sharing none.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from calibrate.request_run import RequestRun
from sim.config.deployment import Deployment, resolve
from sim.config.memory_plan import kv_bytes_per_token_per_gpu
from sim.config.scenario import parse_scenario
from sim.engine.dtypes import resolve_kv_dtype
from sim.engine.latency_model import LatencyModel
from sim.engine.latency_profile import Coefficients
from sim.fleet.simulation import simulate
from sim.results.metrics import distribution_ms
from sim.workload.workload import Workload

METRICS = ("TTFT", "TPOT", "E2E")
STATS = ("mean", "p50", "p90", "p99")


def deployment_for(run: RequestRun, profile: str = "default",
                   vllm_version: str | None = None) -> Deployment:
    """The run's deployment. Without ``vllm_version`` it is replayed as the per-configuration
    profiles were fitted: a synchronous engine without CUDA-graph padding. With it, the engine
    behaves as that release did (async scheduling, graphs), as the trained per-operator
    profile expects."""
    c = run.config
    engine: dict = {
        "max_num_seqs": c.max_num_seqs, "max_num_batched_tokens": c.max_num_batched_tokens,
        "block_size": c.block_size, "prefix_caching": c.prefix_caching,
        "weight_dtype": c.weight_dtype, "latency_profile": profile,
    }
    if vllm_version is None:
        engine |= {"async_scheduling": False, "enforce_eager": True}
    else:
        engine["vllm_version"] = vllm_version
    if c.num_gpu_blocks:
        engine["num_gpu_blocks"] = c.num_gpu_blocks
    if c.max_model_len:
        engine["max_model_len"] = c.max_model_len
    return resolve(parse_scenario({
        "name": run.name, "model": c.model,
        "hardware": {"gpu": c.gpu, "tensor_parallel": c.tensor_parallel, "price_usd_per_hour": 0},
        "engine": engine,
        "workload": {"arrivals": {"process": "all_at_once"}, "num_requests": 1,
                     "lengths": {"input": 1, "output": 1}},
    }, where=f"run {run.name}"))


def with_coefficients(deployment: Deployment, coefficients: Coefficients) -> Deployment:
    """The same deployment with its step times from other coefficients."""
    sc = deployment.scenario
    # "auto" KV is the weight dtype's width (fp32 for an fp32 model), as
    # ``sim.config.deployment.resolve`` takes it; the raw "auto" would time an fp32 model's KV
    # reads at half their bytes
    kv_dtype = resolve_kv_dtype(sc.engine.kv_cache_dtype, sc.engine.weight_dtype)
    latency = LatencyModel(
        deployment.model, deployment.gpu, coefficients,
        tensor_parallel=sc.hardware.tensor_parallel, weight_dtype=sc.engine.weight_dtype,
        kv_bytes_per_token_per_gpu=kv_bytes_per_token_per_gpu(
            deployment.model, sc.hardware.tensor_parallel, kv_dtype),
        async_scheduling=deployment.setup.latency.async_scheduling,
        cuda_graph_sizes=deployment.setup.latency.cuda_graph_sizes,
    )
    return dataclasses.replace(deployment,
                               setup=dataclasses.replace(deployment.setup, latency=latency))


def workload_of(run: RequestRun) -> Workload:
    r = run.requests  # the prefix columns are optional: None means no shared prefixes
    return Workload.from_arrays(r["arrival_s"], r["prompt_tokens"], r["output_tokens"],
                                prefix_key=r.get("prefix_group"),
                                prefix_tokens=r.get("prefix_tokens"))


def latencies(frame: pd.DataFrame) -> pd.DataFrame:
    """Per request TTFT, TPOT and E2E in seconds, from arrival, first-token and finish times.

    Measured runs and simulated records both have those columns, so both go through here.
    """
    decode = (frame["output_tokens"] - 1).where(frame["output_tokens"] > 1)
    return pd.DataFrame({
        "TTFT": frame["first_token_s"] - frame["arrival_s"],
        "TPOT": (frame["finish_s"] - frame["first_token_s"]) / decode,
        "E2E": frame["finish_s"] - frame["arrival_s"],
        "decode_s": frame["finish_s"] - frame["first_token_s"],
        "gaps": decode.fillna(0),
    })


def simulated_latencies(run: RequestRun, deployment: Deployment) -> pd.DataFrame:
    return latencies(simulate(deployment.setup, workload_of(run)).records)


def summary(per_request: pd.DataFrame) -> dict[str, dict]:
    """TTFT, TPOT and E2E distributions in ms, and ITL's mean.

    The mean gap between consecutive tokens over all requests is total decode time over total
    gaps; its percentiles would need every token's time, which request timestamps do not give.
    """
    out = {metric: distribution_ms(per_request[metric]) for metric in METRICS}
    gaps = per_request["gaps"].sum()
    itl = float(per_request["decode_s"].sum() / gaps * 1e3) if gaps else None
    out["ITL"] = {"mean": itl} | {stat: None for stat in STATS[1:]}
    return out


def simulated(run: RequestRun, deployment: Deployment) -> dict[str, dict]:
    return summary(simulated_latencies(run, deployment))


def comparison(run: RequestRun, deployment: Deployment) -> pd.DataFrame:
    """One row per metric and statistic: measured and simulated ms, absolute % error."""
    return errors_of(run, simulated_latencies(run, deployment))


def errors_of(run: RequestRun, simulated_frame: pd.DataFrame) -> pd.DataFrame:
    """``comparison`` for latencies already simulated."""
    real, sim = summary(latencies(run.requests)), summary(simulated_frame)
    rows = []
    for metric in (*METRICS, "ITL"):
        for stat in STATS:
            m, s = real[metric][stat], sim[metric][stat]
            ape = abs(s - m) / m * 100 if m and s is not None else np.nan
            rows.append((run.name, metric, stat, m, s, ape))
    return pd.DataFrame(rows, columns=["run", "metric", "stat", "measured_ms", "simulated_ms",
                                       "ape_pct"])
