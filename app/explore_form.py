"""The Explore page's settings and the scenario they describe.

The page's widgets fill one ``ExploreInputs``; ``scenario_document`` turns it into the same
scenario document a YAML file would hold, so everything the form can say, a file can say too
(and the page offers that file for download).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

WORKLOADS = ("chat (ShareGPT lengths)", "long documents (arXiv lengths)",
             "my own lengths (lognormal)", "shared system prompt", "bundled trace",
             "uploaded trace")
TRACE_WORKLOADS = ("bundled trace", "uploaded trace")
SCHEDULERS = ("continuous", "dynamic", "static", "naive")
WEIGHT_FORMATS = ("bf16", "fp16", "fp8", "int8", "awq-int4", "gptq-int4")
KV_DTYPES = ("auto", "fp8")
PRICE_TIERS = ("on_demand", "spot", "reserved")
_DATASET = {WORKLOADS[0]: "sharegpt", WORKLOADS[1]: "arxiv"}
_MAX_LENGTHS = {"sharegpt": (4096, 1024), "arxiv": (16384, 1024)}


@dataclass(frozen=True)
class ExploreInputs:
    """Every setting on the Explore page; the defaults are a realistic first look: Llama-3.1-8B
    chat on one H100 at 8 requests/s for five minutes (about 2,400 requests)."""

    model: str = "llama-3.1-8b"
    gpu: str = "h100-sxm"
    tensor_parallel: int = 1
    replicas: int = 1
    price_tier: str = "on_demand"
    reserved_discount: float = 0.4  # reserved: your commitment's share off on-demand
    own_price_per_gpu_hour: float = 0.0  # 0: the catalog's price for the tier
    weight_dtype: str = "bf16"
    kv_cache_dtype: str = "auto"
    scheduler: str = "continuous"
    max_num_seqs: int = 256
    max_num_batched_tokens: int = 8192
    static_batch_size: int = 8
    batch_timeout_ms: float = 100.0
    gateway_window_ms: float = 0.0  # 0: no gateway in front of the engines
    gateway_max_batch: int = 32
    chunked_prefill: bool = True
    prefix_caching: bool = True
    block_size: int = 16
    max_tokens: int = 0  # 0: no cap on output length
    workload: str = WORKLOADS[0]
    rate_per_s: float = 8.0
    burstiness_cv: float = 1.0  # 1: Poisson arrivals; above 1: gamma gaps, burstier
    duration_s: float = 300.0
    prefix_groups: int = 8
    system_prompt_tokens: int = 2000
    question_tokens: int = 200
    output_tokens: int = 250
    input_mean_tokens: int = 1000
    output_mean_tokens: int = 250
    length_sigma: float = 1.0  # lognormal spread of both lengths (0.5 narrow, 1.5 wide)
    trace: str = "azure-conv-2023"  # a bundled name, or the saved path of an uploaded trace
    trace_rate_scale: float = 1.0
    trace_max_requests: int = 5000
    ttft_p95_ms: float = 800.0
    tpot_p95_ms: float = 60.0
    seed: int = 0


def _hardware(inputs: ExploreInputs) -> dict[str, Any]:
    """The GPUs and their price: your own per GPU-hour when given (the catalog is then not
    read), else the catalog's for the tier, less your discount for a reserved commitment."""
    out: dict[str, Any] = {"gpu": inputs.gpu, "tensor_parallel": inputs.tensor_parallel,
                           "replicas": inputs.replicas}
    if inputs.own_price_per_gpu_hour > 0:
        return out | {"price_usd_per_hour": inputs.own_price_per_gpu_hour}
    out["price_tier"] = inputs.price_tier
    if inputs.price_tier == "reserved":
        out["reserved_discount"] = inputs.reserved_discount
    return out


def scenario_document(inputs: ExploreInputs) -> dict[str, Any]:
    """The scenario (as a YAML-ready dict) the settings describe."""
    doc: dict[str, Any] = {
        "name": _name(inputs),
        "seed": inputs.seed,
        "model": inputs.model,
        "hardware": _hardware(inputs),
        "engine": _engine(inputs),
        "workload": _workload(inputs),
        "slo": {"ttft_p95_ms": inputs.ttft_p95_ms, "tpot_p95_ms": inputs.tpot_p95_ms},
    }
    if inputs.gateway_window_ms > 0:
        doc["gateway"] = {"window_ms": inputs.gateway_window_ms,
                          "max_batch": inputs.gateway_max_batch}
    return doc


def _name(inputs: ExploreInputs) -> str:
    return (f"{inputs.model}-{inputs.gpu}-tp{inputs.tensor_parallel}x{inputs.replicas}-"
            f"{inputs.weight_dtype}-{inputs.scheduler}")


def _engine(inputs: ExploreInputs) -> dict[str, Any]:
    engine: dict[str, Any] = {
        "scheduler": inputs.scheduler,
        "weight_dtype": inputs.weight_dtype,
        "kv_cache_dtype": inputs.kv_cache_dtype,
        "block_size": inputs.block_size,
    }
    if inputs.scheduler in ("static", "dynamic"):
        engine |= {"static_batch_size": inputs.static_batch_size,
                   "batch_timeout_ms": inputs.batch_timeout_ms}
    else:
        # the token budget must cover one token per running sequence (vLLM's rule)
        engine |= {"max_num_seqs": inputs.max_num_seqs,
                   "max_num_batched_tokens": max(inputs.max_num_batched_tokens,
                                                 inputs.max_num_seqs),
                   "chunked_prefill": inputs.chunked_prefill,
                   "prefix_caching": inputs.prefix_caching}
    return engine


def _workload(inputs: ExploreInputs) -> dict[str, Any]:
    if inputs.workload in TRACE_WORKLOADS:
        trace: dict[str, Any] = {"path": inputs.trace}
        if inputs.trace_rate_scale != 1.0:
            trace["rate_scale"] = inputs.trace_rate_scale
        workload: dict[str, Any] = {"trace": trace, "num_requests": inputs.trace_max_requests}
    else:
        workload = {"arrivals": _arrivals(inputs), "duration_s": inputs.duration_s}
        if inputs.workload == "shared system prompt":
            workload["shared_prefix"] = {
                "num_groups": inputs.prefix_groups,
                # enough prompts per group for the whole window; arrivals decide how many run
                "prompts_per_group": max(1, int(inputs.rate_per_s * inputs.duration_s
                                                / inputs.prefix_groups) + 1),
                "system_prompt_tokens": inputs.system_prompt_tokens,
                "question_tokens": inputs.question_tokens,
                "output_tokens": inputs.output_tokens,
            }
        elif inputs.workload == "my own lengths (lognormal)":
            workload["lengths"] = {
                "input": _lognormal(inputs.input_mean_tokens, inputs.length_sigma),
                "output": _lognormal(inputs.output_mean_tokens, inputs.length_sigma),
            }
        else:
            dataset = _DATASET[inputs.workload]
            max_in, max_out = _MAX_LENGTHS[dataset]
            workload["lengths"] = {
                "input": {"dist": "empirical", "dataset": dataset, "max": max_in},
                "output": {"dist": "empirical", "dataset": dataset, "max": max_out},
            }
    if inputs.max_tokens > 0:
        workload["max_tokens"] = inputs.max_tokens
    return workload


def _lognormal(mean: int, sigma: float) -> dict[str, Any]:
    # capped at 16x the mean: the far tail of a wide lognormal is not a real request
    return {"dist": "lognormal", "mean": mean, "sigma": sigma, "max": 16 * mean}


def _arrivals(inputs: ExploreInputs) -> dict[str, Any]:
    if inputs.burstiness_cv == 1.0:
        return {"process": "poisson", "rate_per_s": inputs.rate_per_s}
    return {"process": "gamma", "rate_per_s": inputs.rate_per_s, "cv": inputs.burstiness_cv}
