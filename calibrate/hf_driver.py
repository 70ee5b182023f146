"""Step times of a model of the real shape in plain PyTorch + transformers, where vLLM is absent.

    PYTHON calibrate/hf_driver.py --model MODEL_DIR --out result.json [--dtype bfloat16]

For a GPU machine without vLLM: the model is built from its ``config.json`` with random weights
(timing does not depend on their values) and timed on the fastest device present, in two kinds
of forward pass that mirror an engine's steps:

* prefill: one sequence of ``n`` prompt tokens from an empty cache;
* decode: ``batch`` sequences each with ``context`` cached tokens, one new token each.

Every pass is synchronised and repeated; the result JSON has the same ``steps`` layout as
``vllm_driver.py`` (phase, wall time, and per sequence its kind, new tokens and tokens computed
before), so the same fitting reads both. An eager transformers forward is slower than a serving
engine's (no CUDA graphs, no paged attention kernels); the result is marked with its source so
a profile fitted to it says so. Runs inside any environment with torch and transformers: it
imports nothing from servesim.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import datetime, timezone

PREFILL_TOKENS = (16, 64, 256, 1024, 2048)
DECODE_SHAPES = [(b, c) for b in (1, 4, 16, 32) for c in (128, 512, 2048)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="folder with the model's config.json")
    parser.add_argument("--out", required=True)
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="fewer, smaller shapes")
    args = parser.parse_args()

    import torch
    import transformers

    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = getattr(torch, args.dtype)
    config = transformers.AutoConfig.from_pretrained(args.model)
    torch.manual_seed(0)
    with torch.device(device):
        try:
            model = transformers.AutoModelForCausalLM.from_config(config, dtype=dtype)
        except TypeError:  # transformers before 4.56 names it torch_dtype
            model = transformers.AutoModelForCausalLM.from_config(config, torch_dtype=dtype)
    model.eval()
    vocab = config.vocab_size
    longest = getattr(config, "max_position_embeddings", 4096)

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    def tokens(batch: int, length: int):
        return torch.randint(3, vocab, (batch, length), device=device)

    steps = []

    @torch.inference_mode()
    def prefill(n: int, phase: str) -> None:
        ids = tokens(1, n)
        sync()
        t0 = time.perf_counter()
        model(input_ids=ids, use_cache=True)
        sync()
        steps.append({"phase": phase, "wall_s": time.perf_counter() - t0,
                      "batch": [["prefill", n, 0]]})

    @torch.inference_mode()
    def decode(batch: int, context: int, phase: str) -> None:
        cache = model(input_ids=tokens(batch, context), use_cache=True).past_key_values
        nxt = tokens(batch, 1)
        for _ in range(args.repeats):
            sync()
            t0 = time.perf_counter()
            out = model(input_ids=nxt, past_key_values=cache, use_cache=True)
            sync()
            cache = out.past_key_values
            seen = context + len([s for s in steps if s["phase"] == phase])
            steps.append({"phase": phase, "wall_s": time.perf_counter() - t0,
                          "batch": [["decode", 1, seen]] * batch})

    prefill_tokens = [n for n in PREFILL_TOKENS if n <= longest]
    shapes = [(b, c) for b, c in DECODE_SHAPES if c < longest]
    if args.quick:
        prefill_tokens, shapes = prefill_tokens[:3], [(1, 128), (4, 128), (16, 512)]
    for _ in range(2):  # warm-up: first passes of a shape allocate and compile
        prefill(prefill_tokens[0], "warmup")
    for n in prefill_tokens:
        for _ in range(args.repeats):
            prefill(n, f"prefill-{n}")
    for batch, context in shapes:
        decode(batch, context, f"decode-{batch}x{context}")

    result = {
        "meta": {
            "engine": f"transformers {transformers.__version__} (eager forward, no serving "
                      "engine)",
            "torch": torch.__version__,
            "device": torch.cuda.get_device_name(0) if device == "cuda"
            else platform.processor() or platform.machine(),
            "device_count": torch.cuda.device_count() if device == "cuda" else 0,
            "dtype": args.dtype, "tensor_parallel": 1,
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "command": sys.argv,
        },
        "steps": steps,
        "requests": [],
    }
    with open(args.out, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
