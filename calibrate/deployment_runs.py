"""Measured serving runs given only as whole-run and per-stage figures, and the load that
rebuilds each in the simulator.

The format is the one of the bundled 47 H100 runs (``calibrate/data/vllm_h100_runs``, its
PROVENANCE.md explains every column): one row per deployment in RUNS.csv with its engine
settings, its inference-perf shared-prefix load and its measured mean E2E / TTFT / ITL, and
optionally the same figures per load stage in a stages file beside it. Each run's load is
rebuilt from its settings: a fixed set of groups x prompts cycled through (so a prompt recurs
whole), staged Poisson arrivals, every reply as long as the run's realised mean output.

Every row is checked before anything is simulated: a missing column, a model or GPU not in
the catalog, a stage text that does not parse or a figure that is not a positive number is an
error naming the row and the column; nothing is dropped silently.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from calibrate.errors import CalibrationError
from sim.config.model_catalog import load_model
from sim.config.scenario import parse_scenario
from sim.engine.errors import ScenarioError
from sim.engine.gpu import load_gpu

METRICS = ("e2e", "ttft", "itl")
MAX_MODEL_LEN = 4096  # every run that recorded it; the others are assumed alike (README)
REQUIRED = ("run_id", "model", "gpu", "weights", "tensor_parallel", "data_parallel",
            "max_num_seqs", "max_num_batched_tokens", "gpu_memory_utilization", "stages",
            "system_prompt_tokens", "question_tokens", "prefix_groups", "prompts_per_group",
            "output_tokens_mean", "e2e_mean_ms", "ttft_mean_ms", "itl_mean_ms", "overloaded")
STAGE_REQUIRED = ("run_id", "stage", "e2e_mean_ms", "ttft_mean_ms", "itl_mean_ms")
_STAGE = re.compile(r"^\s*([0-9.]+)\s*rps\s*x\s*([0-9.]+)\s*s\s*$")
_POSITIVE = ("tensor_parallel", "data_parallel", "max_num_batched_tokens", "prefix_groups",
             "prompts_per_group", "output_tokens_mean", "e2e_mean_ms", "ttft_mean_ms",
             "itl_mean_ms", "gpu_memory_utilization")


@dataclass(frozen=True)
class DeploymentRun:
    """One measured run: its settings row, its measured means (per stage where given) and
    whether the engine was overloaded (then it is a saturation check, not a fit target)."""

    run_id: str
    model: str
    row: dict
    # stage (-1: the whole run) -> metric -> measured mean, ms
    measured: dict[int, dict[str, float]]
    overloaded: bool

    @property
    def target_stages(self) -> list[int]:
        """The stages whose means a fit matches: each stage where given, else the whole run."""
        stages = [s for s in self.measured if s >= 0]
        return sorted(stages) if stages else [-1]


def read_runs(runs_csv: Path, stages_csv: Path | None = None) -> list[DeploymentRun]:
    """The runs of a RUNS.csv (and its stages file: ``stages.csv`` beside it unless given)."""
    runs = _read_csv(runs_csv)
    _require_columns(runs, REQUIRED, runs_csv)
    if stages_csv is None and (runs_csv.parent / "stages.csv").is_file():
        stages_csv = runs_csv.parent / "stages.csv"
    stages = None
    if stages_csv is not None:
        stages = _read_csv(stages_csv)
        _require_columns(stages, STAGE_REQUIRED, stages_csv)
    duplicated = runs["run_id"][runs["run_id"].duplicated()]
    if len(duplicated):
        raise CalibrationError(f"{runs_csv}: run_id {duplicated.iloc[0]!r} appears twice; "
                               "give every run its own id")
    template = median_template_extra(runs)
    return [_run(row, i, runs_csv, stages, stages_csv, template)
            for i, row in enumerate(runs.to_dict("records"))]


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except FileNotFoundError:
        raise CalibrationError(f"no runs file at {path}: give the path of a RUNS.csv") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise CalibrationError(f"{path}: not a readable CSV file ({str(exc)[:120]})") from None


def _require_columns(frame: pd.DataFrame, needed: tuple[str, ...], path: Path) -> None:
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise CalibrationError(f"{path}: missing column(s) {', '.join(missing)}; the format is "
                               "that of calibrate/data/vllm_h100_runs (see its PROVENANCE.md)")


def _run(row: dict, index: int, path: Path, stages: pd.DataFrame | None,
         stages_path: Path | None, template: float) -> DeploymentRun:
    where = f"{path}, row {index + 2} (run {str(row['run_id'])[:60]!r})"
    for column in _POSITIVE:
        _positive(row[column], where, column)
    for column in ("model", "gpu"):
        try:
            (load_model if column == "model" else load_gpu)(str(row[column]))
        except ScenarioError as exc:
            raise CalibrationError(f"{where}, column {column}: {exc}") from None
    try:
        parse_stages(str(row["stages"]))
        leading_int(row["max_num_seqs"])
    except ValueError as exc:
        raise CalibrationError(f"{where}: {exc}") from None
    row = dict(row) | {"template_extra_tokens": extra_prompt_tokens(row, template)}
    measured = {-1: {m: float(row[f"{m}_mean_ms"]) for m in METRICS}}
    if stages is not None:
        for j, stage_row in stages[stages["run_id"] == row["run_id"]].iterrows():
            stage_where = f"{stages_path}, row {j + 2} (run {str(row['run_id'])[:60]!r})"
            figures = {m: _positive(stage_row[f"{m}_mean_ms"], stage_where, f"{m}_mean_ms")
                       for m in METRICS}
            measured[int(stage_row["stage"])] = figures
    overloaded = str(row["overloaded"]).strip().lower()
    if overloaded not in ("yes", "no"):
        raise CalibrationError(f"{where}, column overloaded: expected yes or no, got "
                               f"{str(row['overloaded'])[:40]!r}")
    try:
        parse_scenario(scenario_for(row), where="the scenario rebuilt from it")
    except ScenarioError as exc:
        raise CalibrationError(f"{where}: its load cannot be rebuilt: {exc}") from None
    return DeploymentRun(str(row["run_id"]), str(row["model"]), row, measured,
                         overloaded == "yes")


def _positive(value: Any, where: str, column: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number) or number <= 0:
        raise CalibrationError(f"{where}, column {column}: {str(value)[:40]!r} is not a "
                               "positive number; fill it in or remove the run")
    return number


# ---- the load -------------------------------------------------------------------------------

def parse_stages(text: str) -> list[dict[str, float]]:
    """``"5rps x 600s;10rps x 600s"`` -> ``[{rate_per_s: 5, duration_s: 600}, ...]``."""
    stages = []
    for part in text.split(";"):
        match = _STAGE.match(part)
        if match is None:
            raise ValueError(f"column stages: cannot read {part[:40]!r} of {text[:80]!r}: "
                             "expected 'RATErps x SECONDSs' stages separated by ';'")
        stages.append({"rate_per_s": float(match[1]), "duration_s": float(match[2])})
    return stages


def leading_int(value: Any) -> int:
    """``128`` or ``"128 (not in CSV; ...)"`` -> 128: some settings carry a note."""
    match = re.match(r"\s*(\d+)", str(value))
    if match is None:
        raise ValueError(f"column max_num_seqs: no number at the start of {str(value)[:40]!r}")
    return int(match[1])


def template_extra(row: dict) -> float | None:
    """Measured prompt tokens beyond system prompt + question (chat template and the like)."""
    measured = row.get("prompt_tokens_mean")
    if measured is None or pd.isna(measured):
        return None
    return float(measured) - row["system_prompt_tokens"] - row["question_tokens"]


def median_template_extra(runs: pd.DataFrame) -> float:
    """The extra of the runs that measured their prompts, for the runs that did not."""
    extras = [e for e in (template_extra(row) for row in runs.to_dict("records"))
              if e is not None]
    return float(np.median(extras)) if extras else 0.0


def extra_prompt_tokens(row: dict, median_extra: float) -> int:
    extra = template_extra(row)
    return round(extra if extra is not None else median_extra)


def scenario_for(row: dict, profile: str = "auto", stage_seconds: float | None = None,
                 stage_requests: int = 400) -> dict:
    """The servesim scenario that rebuilds one measured run (validate with parse_scenario).

    ``stage_seconds`` shortens every stage to at most that long but at least
    ``stage_requests`` requests, for fits that simulate each run many times: stage means
    settle well before the runs' 600 s.
    """
    engine: dict[str, Any] = {
        "scheduler": "continuous",
        "max_num_seqs": leading_int(row["max_num_seqs"]),
        "max_num_batched_tokens": int(row["max_num_batched_tokens"]),
        "max_model_len": MAX_MODEL_LEN,
        "block_size": 16,
        "chunked_prefill": True,
        "prefix_caching": True,
        "weight_dtype": row["weights"],
        "latency_profile": profile,
    }
    blocks = row.get("total_kv_blocks_gpu")
    if blocks is not None and not pd.isna(blocks):  # else the memory planner sizes the cache
        engine["num_gpu_blocks"] = int(blocks)
    version = row.get("vllm_version")
    if version is not None and not pd.isna(version):  # the release decides async and graphs
        engine["vllm_version"] = str(version).removeprefix("v")
    offload = row.get("cpu_kv_offload_gib")
    if offload is not None and not pd.isna(offload) and float(offload) > 0:
        engine["cpu_offload_gib"] = float(offload)
    stages = parse_stages(str(row["stages"]))
    if stage_seconds is not None:
        stages = [{"rate_per_s": s["rate_per_s"],
                   "duration_s": min(s["duration_s"],
                                     max(stage_seconds, stage_requests / s["rate_per_s"]))}
                  for s in stages]
    extra = row.get("template_extra_tokens")
    if extra is None:
        extra = extra_prompt_tokens(row, 0.0)
    return {
        "name": str(row["run_id"]),
        "seed": 0,
        "model": row["model"],
        "hardware": {
            "gpu": row["gpu"],
            "tensor_parallel": int(row["tensor_parallel"]),
            "replicas": int(row["data_parallel"]),
            "gpu_memory_utilization": float(row["gpu_memory_utilization"]),
        },
        "engine": engine,
        "workload": {
            "stages": stages,
            "shared_prefix": {
                "num_groups": int(row["prefix_groups"]),
                "prompts_per_group": int(row["prompts_per_group"]),
                "system_prompt_tokens": int(row["system_prompt_tokens"]),
                "question_tokens": int(row["question_tokens"]) + int(extra),
                # replies cannot be given their real spread (not published): all at the mean
                "output_tokens": round(float(row["output_tokens_mean"])),
                "repeat_questions": True,  # inference-perf cycles through a fixed prompt set
            },
            # the load generator asks for ignore_eos and max_tokens: every reply stops at its
            # length limit, which the engine sees coming
            "max_tokens": round(float(row["output_tokens_mean"])),
        },
    }


def stage_of(arrival_s: np.ndarray, stages: list[dict[str, float]]) -> np.ndarray:
    ends = np.cumsum([stage["duration_s"] for stage in stages])
    return np.minimum(np.searchsorted(ends, arrival_s, side="right"), len(stages) - 1)


def stage_means(records: pd.DataFrame, stages: list[dict[str, float]]) -> dict[int, dict]:
    """Mean E2E and TTFT (ms) of completed requests, ITL by the data's own definition
    ((E2E - TTFT) / (output - 1)) and the mean output, per stage and for the whole run (-1)."""
    done = records[records["status"] == "completed"]
    stage = stage_of(done["arrival_s"].to_numpy(), stages)
    out = {-1: mean_figures(done)}
    for s in range(len(stages)):
        out[s] = mean_figures(done[stage == s])
    return out


def mean_figures(frame: pd.DataFrame) -> dict[str, float]:
    """The means of a frame with ``e2e_s``, ``ttft_s`` and ``output_tokens`` (a run's records)."""
    if frame.empty:
        return {metric: float("nan") for metric in (*METRICS, "output_tokens")}
    e2e = float(frame["e2e_s"].mean() * 1e3)
    ttft = float(frame["ttft_s"].mean() * 1e3)
    outputs = float(frame["output_tokens"].mean())
    itl = (e2e - ttft) / (outputs - 1) if outputs > 1 else float("nan")
    return {"e2e": e2e, "ttft": ttft, "itl": itl, "output_tokens": outputs}
