"""The Explore page's sidebar: one widget per ``ExploreInputs`` field, grouped as a planner
thinks of them. Widgets that do not apply to the chosen scheduler or workload are hidden, and
their defaults are used."""

from __future__ import annotations

import streamlit as st

from sim.config.model_catalog import list_models
from sim.engine.gpu import list_gpus
from traces.bundled import names as bundled_traces

from traces.errors import TraceError

from app.explore_form import (KV_DTYPES, PRICE_TIERS, SCHEDULERS, WEIGHT_FORMATS, WORKLOADS,
                              ExploreInputs)
from app.trace_upload import SUFFIXES, store_upload

D = ExploreInputs()  # the defaults
TP_CHOICES = (1, 2, 4, 8)
BLOCK_SIZES = (8, 16, 32)


def _select(label: str, options, default, key: str, **kwargs):
    options = list(options)
    return st.selectbox(label, options, index=options.index(default), key=key, **kwargs)


def sidebar_inputs() -> ExploreInputs:
    with st.sidebar:
        hardware = _hardware()
        quantization = _quantization()
        batching = _batching()
        cache = _cache()
        workload = _workload()
        slo = _slo()
    return ExploreInputs(**hardware, **quantization, **batching, **cache, **workload, **slo)


def _hardware() -> dict:
    with st.expander("Model and hardware", expanded=True):
        return {
            "model": _select("Model", list_models(), D.model, "explore_model"),
            "gpu": _select("GPU tier", [g for g in list_gpus() if not g.startswith("x86")],
                           D.gpu, "explore_gpu"),
            "tensor_parallel": _select("Tensor parallel (GPUs per replica)", TP_CHOICES,
                                       D.tensor_parallel, "explore_tp"),
            "replicas": st.number_input("Replicas", 1, 512, D.replicas, key="explore_replicas"),
            **_price(),
        }


def _price() -> dict:
    """The price tier (with a reserved commitment's discount), or your own price."""
    own = st.number_input(
        "Your price ($ per GPU-hour; 0: the catalog's)", 0.0, 1_000.0,
        D.own_price_per_gpu_hour, step=0.1, format="%.2f", key="explore_own_price",
        help="What you pay for one GPU for an hour (a negotiated or reserved rate). Every cost "
             "on every page then uses it, and says it came from the scenario.")
    if own > 0:
        return {"own_price_per_gpu_hour": own, "price_tier": D.price_tier}
    tier = _select("Price tier", PRICE_TIERS, D.price_tier, "explore_price_tier",
                   format_func=lambda t: t.replace("_", "-"),
                   help="The catalog's on-demand or spot price (source and date under Cost); "
                        "reserved: on-demand less your commitment's discount")
    out = {"price_tier": tier, "own_price_per_gpu_hour": 0.0}
    if tier == "reserved":
        out["reserved_discount"] = st.slider(
            "Reserved discount (share off on-demand)", 0.0, 0.9, D.reserved_discount, 0.05,
            key="explore_reserved_discount",
            help="1- or 3-year commitments: public price guides quote 30-60 % off")
    return out


def _quantization() -> dict:
    with st.expander("Quantization"):
        return {
            "weight_dtype": _select("Weight format", WEIGHT_FORMATS, D.weight_dtype,
                                    "explore_weight_dtype"),
            "kv_cache_dtype": _select("KV cache format", KV_DTYPES, D.kv_cache_dtype,
                                      "explore_kv_dtype",
                                      help="auto: the weights' 16-bit format (fp8 weights "
                                           "keep a 16-bit cache unless fp8 is chosen here)"),
        }


def _batching() -> dict:
    with st.expander("Batching", expanded=True):
        scheduler = _select(
            "Scheduler", SCHEDULERS, D.scheduler, "explore_scheduler",
            help="continuous: vLLM-style iteration-level batching; dynamic / static: request-"
                 "level batches that run until their longest request ends; naive: one "
                 "request at a time")
        values = {"scheduler": scheduler}
        if scheduler in ("static", "dynamic"):
            values["static_batch_size"] = st.number_input(
                "Batch size (max)", 1, 1024, D.static_batch_size, key="explore_batch_size")
            values["batch_timeout_ms"] = st.number_input(
                "Batch timeout (ms)", 0.0, 60_000.0, D.batch_timeout_ms, step=10.0,
                key="explore_batch_timeout")
        elif scheduler == "continuous":
            values["max_num_seqs"] = st.number_input(
                "max_num_seqs", 1, 4096, D.max_num_seqs, key="explore_max_num_seqs",
                help="most sequences in one engine step")
            values["max_num_batched_tokens"] = st.number_input(
                "max_num_batched_tokens", 16, 1_048_576, D.max_num_batched_tokens, step=512,
                key="explore_max_batched_tokens", help="token budget of one engine step")
        values["gateway_window_ms"] = st.number_input(
            "Gateway window (ms, 0 = none)", 0.0, 10_000.0, D.gateway_window_ms, step=5.0,
            key="explore_gateway_window",
            help="a gateway that holds requests up to this long to release them in groups")
        if values["gateway_window_ms"] > 0:
            values["gateway_max_batch"] = st.number_input(
                "Gateway max batch", 1, 4096, D.gateway_max_batch, key="explore_gateway_batch")
        return values


def _cache() -> dict:
    with st.expander("KV cache and output cap"):
        return {
            "chunked_prefill": st.checkbox("Chunked prefill", D.chunked_prefill,
                                           key="explore_chunked"),
            "prefix_caching": st.checkbox("Prefix caching", D.prefix_caching,
                                          key="explore_prefix_caching"),
            "block_size": _select("KV block size (tokens)", BLOCK_SIZES, D.block_size,
                                  "explore_block_size"),
            "max_tokens": st.number_input("Output cap, max_tokens (0 = none)", 0, 32_768,
                                          D.max_tokens, step=64, key="explore_max_tokens"),
        }


def _workload() -> dict:
    with st.expander("Traffic", expanded=True):
        kind = _select("Workload", WORKLOADS, D.workload, "explore_workload")
        values: dict = {"workload": kind}
        if kind in ("bundled trace", "uploaded trace"):
            values["trace"] = (_select("Trace", bundled_traces(), D.trace, "explore_trace")
                               if kind == "bundled trace" else _uploaded_trace())
            values["trace_rate_scale"] = st.number_input(
                "Rate scale (x the trace's rate)", 0.01, 100.0, D.trace_rate_scale, step=0.25,
                key="explore_trace_rate_scale")
            values["trace_max_requests"] = st.number_input(
                "Requests to replay", 10, 1_000_000, D.trace_max_requests, step=1000,
                key="explore_trace_requests")
            return values
        values["rate_per_s"] = st.number_input("Arrival rate (requests/s)", 0.01, None,
                                               D.rate_per_s, step=1.0, key="explore_rate")
        values["burstiness_cv"] = st.slider(
            "Burstiness (CV of gaps; 1 = Poisson)", 0.25, 8.0, D.burstiness_cv, step=0.25,
            key="explore_cv")
        values["duration_s"] = st.number_input("Duration (s)", 1.0, None, D.duration_s,
                                               step=60.0, key="explore_duration")
        if kind == "my own lengths (lognormal)":
            values["input_mean_tokens"] = st.number_input(
                "Prompt, mean (tokens)", 1, 200_000, D.input_mean_tokens, step=100,
                key="explore_input_mean")
            values["output_mean_tokens"] = st.number_input(
                "Reply, mean (tokens)", 1, 32_768, D.output_mean_tokens, step=50,
                key="explore_output_mean")
            values["length_sigma"] = st.slider(
                "Spread of lengths (lognormal sigma)", 0.1, 2.0, D.length_sigma, step=0.1,
                key="explore_sigma")
        if kind == "shared system prompt":
            values["prefix_groups"] = st.number_input("System prompts (groups)", 1, 10_000,
                                                      D.prefix_groups, key="explore_groups")
            values["system_prompt_tokens"] = st.number_input(
                "System prompt (tokens)", 1, 200_000, D.system_prompt_tokens, step=100,
                key="explore_system_tokens")
            values["question_tokens"] = st.number_input(
                "Question (tokens)", 1, 200_000, D.question_tokens, step=50,
                key="explore_question_tokens")
            values["output_tokens"] = st.number_input(
                "Output (tokens)", 1, 32_768, D.output_tokens, step=50, key="explore_output_tokens")
        return values


def _uploaded_trace() -> str:
    """The saved path of this session's uploaded trace; stops the page until there is one."""
    upload = st.file_uploader("Trace file", type=[suffix.lstrip(".") for suffix in SUFFIXES],
                              key="explore_trace_upload",
                              help="Any format the Traces page reads; look at a trace there first "
                                   "to check its format and bad rows.")
    if upload is None:
        st.info("Upload a trace file to replay it.")
        st.stop()
    try:
        return str(store_upload(upload, st.session_state))
    except TraceError as exc:
        st.error(f"{upload.name}: {exc}", icon=":material/error:")
        st.stop()


def _slo() -> dict:
    with st.expander("Latency targets (SLO)"):
        return {
            "ttft_p95_ms": st.number_input("p95 TTFT target (ms)", 1.0, 600_000.0,
                                           D.ttft_p95_ms, step=50.0, key="explore_slo_ttft"),
            "tpot_p95_ms": st.number_input("p95 TPOT target (ms)", 1.0, 10_000.0,
                                           D.tpot_p95_ms, step=5.0, key="explore_slo_tpot"),
            "seed": st.number_input("Random seed", 0, 2**31 - 1, D.seed, key="explore_seed"),
        }
