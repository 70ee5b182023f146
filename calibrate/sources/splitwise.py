"""Splitwise's static-batch microbenchmarks (``calibrate/data/splitwise_static_batches``).

Llama-2-70B at TP 2/4/8 on DGX-A100-80GB and DGX-H100, bf16, from a 2023-era engine; the
median of a configuration's repeated runs is one sample.

* prefill: ``prompt_time`` is one step prefilling ``batch_size`` prompts of ``prompt_size``
  tokens each, from an empty cache;
* decode: ``token_time`` is the mean decode step of ``batch_size`` sequences over
  ``token_size`` generated tokens, so the context per sequence is taken as its mean,
  ``prompt_size + token_size / 2``.

Left out: BLOOM-176B (not in the model catalog) and ``h100-80gb-pcap`` (its times are derived
from ``h100-80gb``, not measured).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from calibrate.step_sample import StepSample
from sim.engine.batch import Batch

DATA = Path(__file__).resolve().parent.parent / "data" / "splitwise_static_batches"
SOURCE = "splitwise"
GPUS = {"a100-80gb": "a100-80gb", "h100-80gb": "h100-sxm"}


def read(path: Path = DATA / "perf_model.csv") -> list[StepSample]:
    df = pd.read_csv(path)
    df = df[(df["model"] == "llama2-70b") & df["hardware"].isin(GPUS)]
    config = ["hardware", "tensor_parallel", "prompt_size", "batch_size"]
    samples = []
    prefill = df.groupby(config, as_index=False)["prompt_time"].median()
    for hw, tp, p, b, ms in prefill.itertuples(index=False):
        batch = Batch(prefill_tokens=b * p, prefill_seqs=b,
                      prefill_attention_pairs=b * p * (p + 1) / 2, prefill_kv_tokens=b * p)
        samples.append(StepSample(SOURCE, "llama-2-70b", GPUS[hw], int(tp), "bf16", "prefill",
                                  batch, ms * 1e-3))
    decode = df.groupby([*config, "token_size"], as_index=False)["token_time"].median()
    for hw, tp, p, b, t, ms in decode.itertuples(index=False):
        batch = Batch(decode_seqs=b, decode_context_tokens=b * (p + t // 2))
        samples.append(StepSample(SOURCE, "llama-2-70b", GPUS[hw], int(tp), "bf16", "decode",
                                  batch, ms * 1e-3))
    return samples
