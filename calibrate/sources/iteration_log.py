"""vLLM's per-iteration log lines (``--enable-logging-iteration-details``) as step samples.

    ... Iteration(41): 2 context requests, 512 context tokens, 6 generation requests,
        6 generation tokens, iteration elapsed time: 21.30 ms, KV cache usage: 3.1%

Each line gives the step's prefill requests and tokens, its decoding requests and its elapsed
time; the decoders' context is not logged, so it is estimated from the KV cache usage (the
tokens in use, ``usage x blocks x block size``, less the step's prefill tokens and half a block
per sequence), which needs the engine's block count and size. Each prefill chunk is taken as
the first chunk of its prompt, the tokens split evenly over the prefill requests.

The elapsed time covers waiting for the model's output, not scheduling or output processing; on
GPU engines that is most of a step, but vLLM's CPU backend runs the forward pass outside it, so
CPU logs under-measure steps badly (use ``servesim calibrate run`` there). Lines without a KV
usage figure cannot give a context and are counted, not used.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

from calibrate.errors import CalibrationError
from calibrate.sources.h100_vllm_steps import first_chunks
from calibrate.step_sample import StepSample, kind_of

PATTERN = re.compile(
    r"Iteration\((\d+)\): (\d+) context requests, (\d+) context tokens, (\d+) generation "
    r"requests, (\d+) generation tokens, iteration elapsed time: ([\d.]+) ms"
    r"(?:, [\w ]*KV cache usage: ([\d.]+)%)?"
)


class LogEngine(NamedTuple):
    model: str
    gpu: str
    tensor_parallel: int
    weight_dtype: str
    num_gpu_blocks: int
    block_size: int


def read(path: Path, engine: LogEngine) -> tuple[list[StepSample], dict[str, int]]:
    """The samples, and counts of the iteration lines left out by reason."""
    if not Path(path).is_file():
        raise CalibrationError(f"no log file at {path}")
    samples, skipped = [], {"no_kv_usage": 0, "empty_step": 0}
    capacity = engine.num_gpu_blocks * engine.block_size
    with open(path, encoding="utf-8", errors="replace") as lines:
        for line in lines:
            match = PATTERN.search(line)
            if match is None:
                continue
            _, ctx_reqs, ctx_tokens, gen_reqs, _, elapsed_ms, usage = match.groups()
            prefill, n_prefill, decode = int(ctx_tokens), int(ctx_reqs), int(gen_reqs)
            if usage is None:
                skipped["no_kv_usage"] += 1
                continue
            if not prefill and not decode:
                skipped["empty_step"] += 1
                continue
            used = float(usage) / 100 * capacity
            context = int(used - prefill - engine.block_size / 2 * (decode + n_prefill))
            batch = first_chunks(prefill, n_prefill)._replace(
                decode_seqs=decode, decode_context_tokens=max(decode, context) if decode else 0)
            samples.append(StepSample(f"vllm iteration log {Path(path).name}", engine.model,
                                      engine.gpu, engine.tensor_parallel, engine.weight_dtype,
                                      kind_of(batch), batch, float(elapsed_ms) / 1e3))
    if not samples:
        raise CalibrationError(
            f"{path}: no usable iteration lines (started with --enable-logging-iteration-"
            f"details? lines left out: {skipped})"
        )
    return samples, skipped
