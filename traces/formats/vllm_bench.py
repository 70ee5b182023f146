"""vLLM benchmark results: the one JSON object that ``vllm bench serve --save-result
--save-detailed`` (earlier ``benchmarks/benchmark_serving.py``) writes.

Per request it lists ``input_lens`` and ``output_lens`` and, in recent vLLM, ``start_times``
(when the client sent each request, in seconds of its clock); arrivals are those times less the
first one. Files without start times get their arrivals regenerated the way the benchmark drew
them: gaps from a numpy Generator seeded with the option ``seed`` (default 0), exponential at the
file's ``request_rate`` (a Poisson process; gamma-shaped when the file records a ``burstiness``
other than 1), the first request at time 0; a rate of ``inf`` sends every request at once. Such
arrivals are *a* draw of the benchmark's process, not the times it actually had.

The file is one JSON object, so it is parsed whole (its size is set by the benchmark's
``--num-prompts``, not by a production log). ``line`` is a request's 1-based position in the
lists. Failed requests are saved with 0 output tokens: validation reports them as bad rows.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa

from traces.bad_rows import BadRowReport
from traces.errors import TraceError
from traces.schema import raw_table

FORMAT = "vllm_bench"
SOURCE_COLUMNS = {
    "arrival_s": "start_times", "input_tokens": "input_lens", "output_tokens": "output_lens",
}
PREFIX_BLOCK_TOKENS = 0
OPTIONS = ("seed",)
_ROW_BYTES = 64  # for turning chunk_bytes into rows per chunk


def sniff(path: Path, head: str) -> bool:
    return path.suffix == ".json" and head.lstrip().startswith("{") and '"input_lens"' in head


def read(path: Path, chunk_bytes: int, report: BadRowReport, seed: int = 0) -> Iterator[pa.Table]:
    result = _load(path)
    inputs = _numbers(path, result, "input_lens")
    outputs = _numbers(path, result, "output_lens", len(inputs))
    if result.get("start_times") is not None:
        starts = _numbers(path, result, "start_times", len(inputs))
        known = starts[np.isfinite(starts)]
        arrival = starts - (known[0] if len(known) else 0.0)
    else:
        arrival = _regenerated(path, result, len(inputs), seed)
    ids = result.get("request_ids")  # in some vLLM versions; else the position
    if not (isinstance(ids, list) and len(ids) == len(inputs)):
        ids = [None] * len(inputs)
    table = raw_table({
        "arrival_s": arrival, "input_tokens": inputs, "output_tokens": outputs,
        "request_id": [str(n if i is None else i) for n, i in enumerate(ids)],
        "line": np.arange(1, len(inputs) + 1, dtype=np.int64),
    })
    rows = max(1, chunk_bytes // _ROW_BYTES)
    for start in range(0, table.num_rows, rows):
        yield table.slice(start, rows)


def _load(path: Path) -> dict:
    try:
        with path.open("r", encoding="utf-8", errors="replace") as f:
            result = json.load(f)
    except json.JSONDecodeError as exc:
        raise TraceError(f"{path}, line {exc.lineno}: not valid JSON ({exc.msg}); a vLLM "
                         "benchmark result is one JSON object") from None
    except ValueError as exc:  # an integer of more digits than Python converts
        raise TraceError(f"{path}: not valid JSON ({exc})") from None
    except RecursionError:
        raise TraceError(f"{path}: not valid JSON (nested too deep)") from None
    if not isinstance(result, dict):
        raise TraceError(f"{path}: the JSON holds a {type(result).__name__}, not the one object "
                         "a vLLM benchmark result is")
    return result


def _numbers(path: Path, result: dict, key: str, length: int | None = None) -> np.ndarray:
    """A per-request list as float64, NaN for anything that is not a number."""
    values = result.get(key)
    if not isinstance(values, list):
        keys = ", ".join(list(result)[:30])
        raise TraceError(f"{path}: column {key!r} (a list per request) is missing or not a list; "
                         f"the result has {keys}. Save it with --save-result --save-detailed")
    if length is not None and len(values) != length:
        raise TraceError(f"{path}: column {key!r} has {len(values)} entries but input_lens has "
                         f"{length}; the lists must match request for request")
    return np.array([_number(v) for v in values], dtype=np.float64)


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    try:
        return float(value)
    except OverflowError:  # an integer beyond any float
        return math.nan


def _regenerated(path: Path, result: dict, count: int, seed: object) -> np.ndarray:
    rate = result.get("request_rate")
    rate = math.inf if rate == "inf" else _number(rate)
    if not rate > 0:
        raise TraceError(f"{path}: no start_times, and request_rate {result.get('request_rate')!r} "
                         "is not a positive number or 'inf', so the arrivals cannot be placed; "
                         "rerun the benchmark with a vLLM that saves start_times")
    burstiness = _number(result.get("burstiness", 1.0))
    if not 0 < burstiness < math.inf:
        raise TraceError(f"{path}: burstiness {result.get('burstiness')!r} is not a positive number")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise TraceError(f"option seed must be a whole number >= 0, got {seed!r}")
    if rate == math.inf:
        return np.zeros(count)
    rng = np.random.default_rng(seed)
    gaps = rng.gamma(shape=burstiness, scale=1.0 / (rate * burstiness), size=count)
    return np.concatenate([[0.0], np.cumsum(gaps[:-1])])[:count]
