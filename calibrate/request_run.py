"""A measured serving run: the engine it ran on and each request's engine-side timestamps.

Every source of end-to-end measurements (a vLLM benchmark run, a run of `servesim calibrate
run`) becomes a folder with ``run.json`` (the engine configuration) and ``requests.parquet``
(one row per request: ``arrival_s``, ``prompt_tokens``, ``output_tokens``, ``first_token_s``,
``finish_s``, all times in seconds from the run's first arrival, engine clock; where the run
knows which prompts share a prefix, also ``prefix_group`` and ``prefix_tokens``). Validation
replays the requests at their arrival times through the simulator and compares.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from calibrate.errors import CalibrationError

REQUEST_COLUMNS = ["arrival_s", "prompt_tokens", "output_tokens", "first_token_s", "finish_s"]
PREFIX_COLUMNS = ["prefix_group", "prefix_tokens"]  # optional: 0 = no shared prefix


@dataclass(frozen=True)
class RunConfig:
    """What the measured engine was: enough to set the simulator up the same way."""

    model: str  # catalog id or path of a config.json
    gpu: str  # catalog id
    tensor_parallel: int
    max_num_seqs: int
    max_num_batched_tokens: int
    block_size: int = 16
    prefix_caching: bool = True
    weight_dtype: str = "bf16"
    num_gpu_blocks: int | None = None  # the engine's own figure, when it reported one
    max_model_len: int | None = None
    source: str = ""  # where the measurements came from

    @property
    def key(self) -> tuple[str, str, int, str]:
        return self.model, self.gpu, self.tensor_parallel, self.weight_dtype


@dataclass(frozen=True)
class RequestRun:
    name: str
    config: RunConfig
    requests: pd.DataFrame

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "run.json").write_text(json.dumps(
            {"name": self.name, "config": asdict(self.config)}, indent=2) + "\n")
        columns = REQUEST_COLUMNS + [c for c in PREFIX_COLUMNS if c in self.requests.columns]
        self.requests[columns].to_parquet(folder / "requests.parquet", index=False)


def load_run(folder: Path) -> RequestRun:
    folder = Path(folder)
    if not (folder / "run.json").is_file() or not (folder / "requests.parquet").is_file():
        raise CalibrationError(
            f"{folder}: not a measured run (it needs run.json and requests.parquet); write one "
            "with `servesim calibrate ingest` or `servesim calibrate run`"
        )
    meta = json.loads((folder / "run.json").read_text())
    try:
        config = RunConfig(**meta["config"])
    except TypeError as exc:
        raise CalibrationError(f"{folder}/run.json: bad engine configuration ({exc})") from None
    requests = pd.read_parquet(folder / "requests.parquet")
    missing = [c for c in REQUEST_COLUMNS if c not in requests.columns]
    if missing:
        raise CalibrationError(f"{folder}/requests.parquet lacks columns {missing}")
    return RequestRun(meta.get("name", folder.name), config, requests)


def from_timestamps(name: str, config: RunConfig, arrival: np.ndarray, prompt: np.ndarray,
                    output: np.ndarray, first_token: np.ndarray, finish: np.ndarray,
                    prefix_group: np.ndarray | None = None,
                    prefix_tokens: np.ndarray | None = None) -> RequestRun:
    """A run from absolute engine timestamps, re-based so the first arrival is at 0."""
    order = np.argsort(arrival, kind="stable")
    origin = float(np.min(arrival))
    frame = pd.DataFrame({
        "arrival_s": np.asarray(arrival, float)[order] - origin,
        "prompt_tokens": np.asarray(prompt, np.int64)[order],
        "output_tokens": np.asarray(output, np.int64)[order],
        "first_token_s": np.asarray(first_token, float)[order] - origin,
        "finish_s": np.asarray(finish, float)[order] - origin,
    })
    if prefix_group is not None and prefix_tokens is not None:
        frame["prefix_group"] = np.asarray(prefix_group, np.int64)[order]
        frame["prefix_tokens"] = np.asarray(prefix_tokens, np.int64)[order]
    return RequestRun(name, config, frame)
