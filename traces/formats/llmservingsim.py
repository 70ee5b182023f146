"""LLMServingSim request traces (JSON lines), such as its vLLM-benchmark workloads:

    {"input_toks": 2358, "output_toks": 531, "arrival_time_ns": 46926808,
     "input_tok_ids": [5971, 2927, ...], "output_tok_ids": [...]}

``arrival_time_ns`` is in nanoseconds; arrivals are seconds after the first row. The prompt's
token ids give exact prefix ids: one per full block of 16 tokens, chained as vLLM's prefix cache
chains its block hashes (block i's id hashes block i-1's id with block i's tokens, so equal ids
mean equal prompts up to the end of that block). The hash is blake2b, the same on every run and
platform. A partial last block, or one past ``input_toks``, gets no id.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa

from traces.bad_rows import BadRowReport
from traces.formats.json_lines import records
from traces.formats.time_origin import TimeOrigin
from traces.schema import raw_table

FORMAT = "llmservingsim"
SOURCE_COLUMNS = {
    "arrival_s": "arrival_time_ns", "input_tokens": "input_toks", "output_tokens": "output_toks",
    "prefix_ids": "input_tok_ids",
}
PREFIX_BLOCK_TOKENS = 16
_FIELDS = {
    "arrival_time_ns": pa.float64(), "input_toks": pa.float64(), "output_toks": pa.float64(),
    "input_tok_ids": pa.list_(pa.int64()),
}


def sniff(path: Path, head: str) -> bool:
    return path.suffix in (".jsonl", ".json") and '"input_toks"' in head and '"output_toks"' in head


def read(path: Path, chunk_bytes: int, report: BadRowReport, **options: object) -> Iterator[pa.Table]:
    origin = TimeOrigin()
    for columns, lines in records(path, chunk_bytes, report, _FIELDS):
        stamps = columns["arrival_time_ns"].to_numpy(zero_copy_only=False)
        inputs = columns["input_toks"].to_numpy(zero_copy_only=False)
        yield raw_table({
            "arrival_s": origin.since_first(stamps) / 1e9,
            "input_tokens": inputs,
            "output_tokens": columns["output_toks"],
            "request_id": pa.array(lines - 1).cast(pa.string()),
            "line": lines,
            "prefix_ids": prefix_ids(columns["input_tok_ids"], inputs),
        })


def prefix_ids(token_ids: pa.ListArray, input_tokens: np.ndarray) -> pa.Array:
    """Chained ids of each prompt's full blocks (null where the row has no token ids)."""
    offsets = token_ids.offsets.to_numpy()
    tokens = token_ids.values.to_numpy(zero_copy_only=False)
    missing = token_ids.is_null().to_numpy(zero_copy_only=False)
    ids = []
    for row in range(len(token_ids)):
        if missing[row]:
            ids.append(None)
            continue
        prompt = tokens[offsets[row]:offsets[row + 1]]
        if np.isfinite(input_tokens[row]) and input_tokens[row] < len(prompt):
            prompt = prompt[:max(int(input_tokens[row]), 0)]
        ids.append(block_ids(prompt))
    return pa.array(ids, type=pa.list_(pa.int64()))


def block_ids(tokens: np.ndarray, block_tokens: int = PREFIX_BLOCK_TOKENS) -> list[int]:
    """One id per full block; each hashes the previous id with the block's tokens."""
    full = len(tokens) // block_tokens * block_tokens
    ids, parent = [], 0
    for block in np.asarray(tokens[:full], dtype="<i8").reshape(-1, block_tokens):
        digest = hashlib.blake2b(parent.to_bytes(8, "little", signed=True) + block.tobytes(),
                                 digest_size=8).digest()
        parent = int.from_bytes(digest, "little", signed=True)
        ids.append(parent)
    return ids
