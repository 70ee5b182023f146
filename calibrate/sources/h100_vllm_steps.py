"""Sampled engine steps of real vLLM v0.15 on H100 (``calibrate/data/h100_vllm_steps``).

Llama-2-70B at TP 4 (two workloads) and CodeLlama-34B at TP 2, bf16, block size 16. The step
time is the engine's own step-to-step interval (start of step ``id + 1`` minus start of step
``id``), kept only where both steps were sampled. The dataset's ``cycle_time_us`` column is not
a step time (client-side token gaps; see docs/validation.md) and is not used.

The batch: prefill tokens, prefill requests and decode requests are exact. The decode context
is the KV tokens in use (``(blocks_total - blocks_free) * 16``) less the step's prefill tokens
and half a block per scheduled sequence (the average unfilled tail); each prefill chunk is taken
as the first chunk of its prompt, the prefill tokens split evenly over the prefill requests.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from calibrate.step_sample import StepSample, kind_of
from sim.engine.batch import Batch

DATA = Path(__file__).resolve().parent.parent / "data" / "h100_vllm_steps"
SOURCE = "vllm-h100"
BLOCK = 16
MODELS = {"llama-2-70b": "llama-2-70b", "llama-2-70b-hf": "llama-2-70b",
          "codellama-34b": "codellama-34b"}


def first_chunks(tokens: int, seqs: int) -> Batch:
    """``seqs`` prefill chunks sharing ``tokens`` evenly, none with computed context."""
    per_seq = tokens / seqs if seqs else 0.0
    return Batch(prefill_tokens=tokens, prefill_seqs=seqs,
                 prefill_attention_pairs=tokens * (per_seq + 1) / 2, prefill_kv_tokens=tokens)


def step_intervals(path: Path = DATA / "enriched_steps.parquet") -> pd.DataFrame:
    """The sampled steps with ``interval_s`` (NaN where the next step was not sampled)."""
    df = pd.read_parquet(path)
    df = df.astype({c: "float64" for c in df.columns if str(df[c].dtype) == "Int64"})
    df.columns = [c.replace(".", "_") for c in df.columns]
    df = df.sort_values(["experiment_id", "step_id"])
    following = df.groupby("experiment_id")[["step_id", "step_ts_start_ns"]].shift(-1)
    consecutive = following["step_id"] - df["step_id"] == 1
    df["interval_s"] = ((following["step_ts_start_ns"] - df["step_ts_start_ns"]) * 1e-9).where(
        consecutive)
    return df


def sample(row, measured_s: float, source: str = SOURCE) -> StepSample:
    """One row of ``step_intervals`` as a sample with the given measured time."""
    prefill, n_prefill, decode = (int(row.batch_prefill_tokens), int(row.batch_num_prefill_reqs),
                                  int(row.batch_num_decode_reqs))
    used_tokens = (row.kv_blocks_total_gpu - row.kv_blocks_free_gpu) * BLOCK
    context = int(used_tokens - prefill - BLOCK / 2 * (decode + n_prefill))
    batch = first_chunks(prefill, n_prefill)._replace(
        decode_seqs=decode, decode_context_tokens=max(decode, context) if decode else 0)
    return StepSample(source, MODELS[row.model], "h100-sxm", int(row.tp), "bf16", kind_of(batch),
                      batch, measured_s)


def read(path: Path = DATA / "enriched_steps.parquet") -> list[StepSample]:
    df = step_intervals(path)
    return [sample(r, float(r.interval_s)) for r in df[df["interval_s"].notna()].itertuples()]
