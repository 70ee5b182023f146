"""A sweep: one scenario run at every point of a grid of overrides, one row per run.

    scenario: base.yaml               # relative to the grid file
    grid:                             # the cartesian product of these values
      engine.max_num_seqs: [64, 256]
      hardware.gpu: [h100-sxm, a100-80gb]
    seeds: [0, 1]                     # optional; default: the scenario's own seed
    set: ["workload.duration_s=60"]   # optional; applied to every point, before the grid's

Every point is loaded and validated before anything runs, so a bad value stops the sweep at
once and names its point. A point that validates but cannot be deployed (the model does not fit
the GPU) does not stop it: its row says ``status = "error"`` and why.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sim.config.scenario import Scenario, load_scenario
from sim.engine.errors import ScenarioError, UserError
from sim.planning.executor import Executor
from sim.runner.run import run_scenario

MAX_RUNS = 100_000
_KEY = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")  # a dotted override key, as in --set


class SweepGrid(BaseModel):
    """A grid file, validated: the scenario to vary, the values of each key, the seeds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scenario: Path
    grid: dict[str, tuple[Any, ...]] = {}
    seeds: tuple[Annotated[int, Field(ge=0)], ...] | None = None
    overrides: tuple[str, ...] = Field(default=(), alias="set")

    @field_validator("scenario", mode="before")
    @classmethod
    def _scenario_is_a_path(cls, path: Any) -> Any:
        if not isinstance(path, str | Path) or not str(path):
            raise ScenarioError(f"give the path of a scenario file, relative to the grid file "
                                f"(e.g. scenario: base.yaml), not {path!r}")
        return path

    @field_validator("scenario")
    @classmethod
    def _scenario_exists(cls, path: Path) -> Path:
        if not path.is_file():
            raise ScenarioError(f"no scenario file at {path}; the path is read relative to the "
                                "grid file")
        return path

    @field_validator("grid", mode="before")
    @classmethod
    def _check_grid(cls, grid: Any) -> Any:
        if grid is None:
            return {}
        if not isinstance(grid, dict):
            raise ScenarioError("give a mapping of override keys to lists of values, e.g. "
                                "engine.max_num_seqs: [64, 256]")
        for key, values in grid.items():
            _check_key(key, f"grid key {key!r}")
            if not isinstance(values, list) or not values:
                raise ScenarioError(f"{key}: give a non-empty list of values, e.g. [64, 256], "
                                    f"not {values!r}")
            seen = [json.dumps(v, sort_keys=True, default=str) for v in values]
            doubles = sorted({v for v in seen if seen.count(v) > 1})
            if doubles:
                raise ScenarioError(f"{key}: {', '.join(doubles)} listed more than once; "
                                    "list each value once")
        return grid

    @field_validator("seeds")
    @classmethod
    def _check_seeds(cls, seeds: tuple[int, ...] | None) -> tuple[int, ...] | None:
        if seeds is not None and not seeds:
            raise ScenarioError("give at least one seed, or leave seeds out to use the "
                                "scenario's own")
        if seeds is not None and len(set(seeds)) < len(seeds):
            raise ScenarioError(f"{list(seeds)} repeats a seed; list each seed once")
        return seeds

    @field_validator("overrides")
    @classmethod
    def _check_overrides(cls, overrides: tuple[str, ...]) -> tuple[str, ...]:
        for override in overrides:
            key, sep, _ = override.partition("=")
            if not sep:
                raise ScenarioError(f"{override!r}: write it as section.key=value, e.g. "
                                    "workload.duration_s=60")
            _check_key(key.strip(), f"{override!r}")
        return overrides

    @model_validator(mode="after")
    def _check_size(self) -> SweepGrid:
        if self.num_runs > MAX_RUNS:
            raise ScenarioError(
                f"the grid has {self.num_runs:,} runs ({self.num_points:,} points x "
                f"{len(self.seeds or (0,))} seed{'s' if self.seeds and len(self.seeds) > 1 else ''}"
                f"), more than {MAX_RUNS:,}: sweep fewer values, or split it into several grids"
            )
        return self

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(self.grid)

    @property
    def num_points(self) -> int:
        return math.prod(len(values) for values in self.grid.values())

    @property
    def num_runs(self) -> int:
        return self.num_points * len(self.seeds or (0,))

    def points(self) -> list[dict[str, Any]]:
        """Every combination of the grid's values, the last key varying fastest."""
        return [dict(zip(self.keys, combo)) for combo in itertools.product(*self.grid.values())]


def _check_key(key: Any, what: str) -> None:
    """An override key names a scenario value: ``engine.max_num_seqs``, ``model``, ``gateway``."""
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise ScenarioError(f"{what}: write it as section.key, e.g. engine.max_num_seqs")
    top = key.split(".")[0]
    if top == "seed":
        raise ScenarioError(f"{what}: sweep seeds with the grid's own seeds: [0, 1, ...]")
    if top not in Scenario.model_fields:
        raise ScenarioError(f"{what}: {top} is not part of a scenario; the first part is one of "
                            f"{', '.join(f for f in Scenario.model_fields if f != 'seed')}")


def load_grid(path: str | Path) -> SweepGrid:
    """Read a grid file; its scenario path is relative to the grid file's folder."""
    path = Path(path)
    if not path.is_file():
        raise ScenarioError(f"no grid file at {path}; give the path of a sweep grid YAML "
                            "(see docs/sweeps.md)")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ScenarioError(f"{path}: expected a mapping with scenario, grid, seeds and set")
    if isinstance(data.get("scenario"), str):
        data["scenario"] = path.parent / data["scenario"]
    try:
        return SweepGrid.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(f"{path} is not a valid sweep grid:\n{_describe(exc)}") from None


def _describe(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"]) or "(top level)"
        cause = error.get("ctx", {}).get("error")
        if isinstance(cause, ScenarioError):
            message = str(cause)
        elif error["type"] == "extra_forbidden":
            message = "unknown key; a grid has scenario, grid, seeds and set"
        elif error["type"] == "missing":  # only the scenario is required
            message = "missing; give the scenario file to sweep, relative to the grid file"
        else:
            message = f"{error['msg']} (got {error.get('input')!r})"
        lines.append(f"  - {field}: {message}")
    return "\n".join(lines)


@dataclass(frozen=True)
class SweepTask:
    """One run of a sweep: a grid point's values and its validated scenario, seed set."""

    point: dict[str, Any]
    scenario: Scenario


def sweep_tasks(grid: SweepGrid) -> list[SweepTask]:
    """Every point x seed, each scenario loaded and validated; the first bad point raises."""
    tasks = []
    for point in grid.points():
        overrides = [*grid.overrides, *(_override(key, value) for key, value in point.items())]
        try:
            scenario = load_scenario(grid.scenario, overrides)
        except ScenarioError as exc:
            raise ScenarioError(f"grid point {_label(point)}: {exc}") from None
        for seed in grid.seeds or (scenario.seed,):
            tasks.append(SweepTask(point, scenario.with_seed(seed)))
    return tasks


def _override(key: str, value: Any) -> str:
    # apply_overrides reads the text as YAML: dumping with the same library keeps every value
    # exactly (a float like 1e-05, a string that looks like a number, a mapping).
    return f"{key}={yaml.safe_dump(value, default_flow_style=True)}"


def _label(point: dict[str, Any]) -> str:
    return ", ".join(f"{key}={json.dumps(value)}" for key, value in point.items()) or "(no keys)"


def run_sweep(grid: SweepGrid, executor: Executor,
              progress: Callable[[int, int], None] | None = None) -> pd.DataFrame:
    """One row per point x seed: the grid's values, seed, scenario, status, error, then the
    run's summary flattened to dotted columns (``ttft_ms.p95``, ``cost.usd_per_hour``)."""
    tasks = sweep_tasks(grid)
    return _frame(executor.map(run_task, tasks, progress))


def run_task(task: SweepTask) -> dict[str, Any]:
    """A sweep's row for one run (module level, so other processes and Ray can run it)."""
    row = {key: _cell(value) for key, value in task.point.items()}
    row |= {"seed": task.scenario.seed, "scenario": task.scenario.name}
    try:
        summary = run_scenario(task.scenario).summary
    except UserError as exc:  # cannot be deployed as asked: say why and go on with the rest
        return row | {"status": "error", "error": str(exc)}
    row |= {"status": "ok", "error": None}
    taken = set(row)
    for column, value in flatten(summary).items():
        if column in ("seed", "scenario"):
            continue  # the row's own
        # A summary figure named like a grid key goes under ``summary.``: the grid's
        # engine.max_num_seqs is the value asked for, the summary's the one that took effect.
        row["summary." + column if column in taken else column] = value
    return row


def flatten(summary: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts become dotted columns; a list (of percentiles, of sizes) becomes one JSON
    string, since a column holds one scalar per row."""
    columns: dict[str, Any] = {}
    for key, value in summary.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            columns |= flatten(value, f"{name}.")
        else:
            columns[name] = _cell(value)
    return columns


def _cell(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The rows as one frame, each column of one type and nullable: error rows have no figures,
    and a rejection reason appears only in the rows where it happened."""
    columns = dict.fromkeys(column for row in rows for column in row)
    return pd.DataFrame({column: _column([row.get(column) for row in rows])
                         for column in columns})


def _column(values: list[Any]) -> Any:
    kinds = {_kind(v) for v in values if v is not None}
    if kinds == {"bool"}:
        return pd.array(values, dtype="boolean")
    if kinds == {"int"}:
        return pd.array(values, dtype="Int64")
    if kinds and kinds <= {"int", "float"}:
        return np.array([np.nan if v is None else v for v in values], dtype=float)
    if kinds <= {"str"}:
        return np.array(values, dtype=object)
    # A number in one row and a string in another cannot share a Parquet column: JSON for all.
    return np.array([None if v is None else json.dumps(v) for v in values], dtype=object)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    return "float" if isinstance(value, float) else "str"
