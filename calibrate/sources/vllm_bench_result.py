"""A ``vllm bench serve --save-result --save-detailed`` result file as a measured run.

The file has, per request, ``start_times`` (when the client sent it), ``input_lens``,
``output_lens``, ``ttfts`` and ``itls`` (the gaps between streamed chunks), all client-side:
first token = start + TTFT, finish = first token + the sum of the gaps. Client-side times include
the HTTP round trip and streaming, a few milliseconds that engine timestamps would not; the run
records that in its source. The engine's settings are not in the file, so the caller gives them.
Failed requests (an error text, or no output) are left out and counted.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from calibrate.errors import CalibrationError
from calibrate.request_run import RequestRun, RunConfig, from_timestamps

REQUIRED = ("start_times", "input_lens", "output_lens", "ttfts", "itls")


def read_run(path: Path, config: RunConfig, name: str | None = None) -> tuple[RequestRun, int]:
    """The run and how many failed requests were left out."""
    try:
        result = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CalibrationError(f"{path}: not a readable vLLM bench result ({exc})") from None
    missing = [k for k in REQUIRED if not isinstance(result.get(k), list)]
    if missing:
        raise CalibrationError(
            f"{path}: lacks per-request {', '.join(missing)}; save the result with "
            "`vllm bench serve --save-result --save-detailed` (start_times need vLLM >= 0.9)"
        )
    n = len(result["input_lens"])
    if any(len(result[k]) != n for k in REQUIRED):
        raise CalibrationError(f"{path}: the per-request lists differ in length")
    errors = result.get("errors") or [""] * n
    ok = np.array([not errors[i] and result["output_lens"][i] > 0 for i in range(n)])
    if not ok.any():
        raise CalibrationError(f"{path}: every request failed; nothing to calibrate on")
    start = np.asarray(result["start_times"], float)
    first = start + np.asarray(result["ttfts"], float)
    finish = first + np.array([sum(gaps) for gaps in result["itls"]])
    source = f"{config.source or 'vLLM bench result'} ({Path(path).name}, client-side times)"
    config = RunConfig(**{**config.__dict__, "source": source})
    run = from_timestamps(name or Path(path).stem, config, start[ok],
                          np.asarray(result["input_lens"])[ok],
                          np.asarray(result["output_lens"])[ok], first[ok], finish[ok])
    return run, int((~ok).sum())
