"""Drive a real vLLM engine step by step through a plan and record what every step did.

This file runs inside the Python environment where vLLM is installed (often not the one
servesim runs in), so it imports nothing but the standard library, vLLM and torch:

    VLLM_PYTHON calibrate/vllm_driver.py --model MODEL_DIR --plan plan.json --out result.json

The plan (written by ``calibrate.vllm_run``) lists phases; each phase is a list of requests
with a prompt length, an output length, an optional shared-prefix group and an arrival time in
seconds from the phase's start. Requests are added when their time comes (all at once when
every arrival is 0); between arrivals the engine is stepped with ``LLMEngine.step()``.

Per step it records the wall time of ``step()``, the host time around it (adding the requests
that arrived before it, handling its outputs: work a serving engine does between steps, which
its request timestamps include) and the batch the scheduler chose, read from
the ``SchedulerOutput`` of the engine core (which therefore runs in this process:
``VLLM_ENABLE_V1_MULTIPROCESSING=0``): for every scheduled request, whether it is prefilling,
how many tokens it computes and how many it had computed before. vLLM's own iteration
``elapsed_ms`` is not used: it leaves out the forward pass. Per request it records the engine's
timestamps (``RequestOutput.metrics``: queued, scheduled, first token, last token; one
monotonic clock). Prompts are token ids and weights may be random (``--load-format dummy``):
timing does not depend on either, so no tokenizer or checkpoint download is needed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import datetime, timezone

# Read by vLLM when it is imported: keep the engine core in this process (so its scheduler can
# be observed and step() is synchronous), stay offline, and keep per-step logging quiet.
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")

VOCAB_FLOOR = 3  # token ids below this are often special (pad, bos, eos)


def token_ids(request: dict, vocab: int) -> list[int]:
    """Deterministic prompt tokens: a group's shared prefix, then the request's own tokens."""
    prefix = request.get("prefix_tokens", 0)
    group = request.get("prefix_group", 0)
    span = vocab - VOCAB_FLOOR
    shared = [VOCAB_FLOOR + (group * 7919 + 31 * i) % span for i in range(prefix)]
    seed = request["id"] * 104729 + 1
    own = [VOCAB_FLOOR + (seed + 37 * i) % span for i in range(request["prompt_tokens"] - prefix)]
    return shared + own


class StepRecorder:
    """Wraps the in-process scheduler's ``schedule`` to see each step's batch."""

    def __init__(self, engine) -> None:
        core = engine.engine_core.engine_core
        self.scheduler = core.scheduler
        self._schedule = self.scheduler.schedule
        self.scheduler.schedule = self._wrapped
        self.current: list[tuple[str, int, int]] = []

    def _wrapped(self, *args, **kwargs):
        output = self._schedule(*args, **kwargs)
        new = {r.req_id for r in output.scheduled_new_reqs}
        cached = output.scheduled_cached_reqs
        batch = []
        for rid, tokens in output.num_scheduled_tokens.items():
            request = self.scheduler.requests[rid]
            before = request.num_computed_tokens - tokens  # schedule() already counted them
            prefilling = rid in new or cached.is_context_phase(rid)
            batch.append(("prefill" if prefilling else "decode", int(tokens), int(before)))
        self.current = batch
        return output


def build_engine(args):
    from vllm import EngineArgs
    from vllm.v1.engine.llm_engine import LLMEngine

    engine_args = EngineArgs(
        model=args.model, load_format=args.load_format, skip_tokenizer_init=True,
        enforce_eager=True, dtype=args.dtype, seed=0, max_model_len=args.max_model_len,
        max_num_batched_tokens=args.max_num_batched_tokens, max_num_seqs=args.max_num_seqs,
        enable_prefix_caching=args.prefix_caching, tensor_parallel_size=args.tensor_parallel,
    )
    return LLMEngine.from_engine_args(engine_args)


def run_phase(engine, recorder, phase: dict, vocab: int, steps: list, requests: list) -> None:
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    pending = sorted(phase["requests"], key=lambda r: r["arrival_s"])
    planned = {f"{phase['name']}-{r['id']}": r for r in pending}
    start = time.monotonic()
    outstanding = 0
    while pending or outstanding:
        loop_start = time.perf_counter()
        now = time.monotonic() - start
        while pending and pending[0]["arrival_s"] <= now:
            r = pending.pop(0)
            params = SamplingParams(max_tokens=r["output_tokens"], min_tokens=r["output_tokens"],
                                    ignore_eos=True, detokenize=False, temperature=0.0)
            engine.add_request(f"{phase['name']}-{r['id']}",
                               TokensPrompt(prompt_token_ids=token_ids(r, vocab)), params)
            outstanding += 1
        if not outstanding:
            time.sleep(max(0.0, pending[0]["arrival_s"] - (time.monotonic() - start)))
            continue
        recorder.current = []
        t0 = time.perf_counter()
        outputs = engine.step()
        t1 = time.perf_counter()
        step = {"phase": phase["name"], "wall_s": t1 - t0, "batch": recorder.current}
        steps.append(step)
        for out in outputs:
            if not out.finished:
                continue
            outstanding -= 1
            m = out.metrics
            requests.append({
                "phase": phase["name"], "id": out.request_id,
                "prompt_tokens": len(out.prompt_token_ids or []),
                "output_tokens": len(out.outputs[0].token_ids),
                "cached_tokens": out.num_cached_tokens or 0,
                "prefix_group": planned[out.request_id].get("prefix_group", 0),
                "prefix_tokens": planned[out.request_id].get("prefix_tokens", 0),
                "queued_ts": m.queued_ts, "scheduled_ts": m.scheduled_ts,
                "first_token_ts": m.first_token_ts, "last_token_ts": m.last_token_ts,
            })
        step["host_s"] = (t0 - loop_start) + (time.perf_counter() - t1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="folder with the model's config.json")
    parser.add_argument("--plan", required=True, help="plan JSON")
    parser.add_argument("--out", required=True, help="result JSON to write")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--load-format", default="dummy")
    parser.add_argument("--max-model-len", type=int, default=2048)
    parser.add_argument("--max-num-batched-tokens", type=int, default=2048)
    parser.add_argument("--max-num-seqs", type=int, default=128)
    parser.add_argument("--tensor-parallel", type=int, default=1)
    parser.add_argument("--prefix-caching", action="store_true")
    args = parser.parse_args()
    with open(args.plan) as f:
        plan = json.load(f)

    import torch
    import vllm

    engine = build_engine(args)
    recorder = StepRecorder(engine)
    config = engine.vllm_config
    vocab = config.model_config.get_vocab_size()
    steps: list = []
    requests: list = []
    for phase in plan["phases"]:
        print(f"phase {phase['name']}: {len(phase['requests'])} requests", file=sys.stderr,
              flush=True)
        run_phase(engine, recorder, phase, vocab, steps, requests)
    result = {
        "meta": {
            "vllm": vllm.__version__, "torch": torch.__version__,
            "device": torch.cuda.get_device_name(0) if torch.cuda.is_available()
            else platform.processor() or platform.machine(),
            "device_count": torch.cuda.device_count() if torch.cuda.is_available() else 0,
            "cpu_threads": torch.get_num_threads(),
            "dtype": str(config.model_config.dtype), "tensor_parallel": args.tensor_parallel,
            "block_size": config.cache_config.block_size,
            "num_gpu_blocks": config.cache_config.num_gpu_blocks,
            "max_num_batched_tokens": config.scheduler_config.max_num_batched_tokens,
            "max_num_seqs": config.scheduler_config.max_num_seqs,
            "prefix_caching": args.prefix_caching, "load_format": args.load_format,
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "command": sys.argv,
        },
        "steps": steps,
        "requests": requests,
    }
    with open(args.out, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
