"""Sweeps: grid files, one row per point x seed, the same numbers on every executor."""

from __future__ import annotations

import argparse
import socket
from pathlib import Path

import pandas as pd
import pytest
import yaml

from sim.commands.sweep_command import add_command
from sim.config.scenario import parse_scenario
from sim.engine.errors import ScenarioError, UserError
from sim.planning.executor import make_executor
from sim.planning.sweep import SweepGrid, load_grid, run_sweep

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
BASE = EXAMPLES / "llama3-8b-h100-shared-prefix.yaml"  # seed 1
SHORT = ["workload.duration_s=20"]  # about 150 requests a run
GRID = {"engine.max_num_seqs": [16, 128], "hardware.gpu": ["h100-sxm", "a100-80gb"]}


def write_grid(tmp_path: Path, doc: dict, name: str = "grid.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"scenario": str(BASE), "set": SHORT, **doc}, sort_keys=False))
    return path


def grid_of(tmp_path: Path, doc: dict) -> SweepGrid:
    return load_grid(write_grid(tmp_path, doc))


def without_wall_clock(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns="wall_s")


# --- the grid file ---------------------------------------------------------------------------


@pytest.mark.parametrize("doc, message", [
    ({"scenario": "nowhere.yaml", "grid": GRID}, "scenario: no scenario file at"),
    ({"scenario": None}, "scenario: give the path of a scenario file"),
    ({"grid": {"engine.max_num_seqs": []}}, "engine.max_num_seqs: give a non-empty list"),
    ({"grid": {"engine.max_num_seqs": 64}}, "give a non-empty list of values, e.g. [64, 256], "
                                            "not 64"),
    ({"grid": {"engine max_num_seqs": [1]}}, "write it as section.key"),
    ({"grid": {"engine.": [1]}}, "write it as section.key"),
    ({"grid": {"max_num_seqs": [1]}}, "max_num_seqs is not part of a scenario; the first part "
                                      "is one of name, model, hardware, engine"),
    ({"grid": {"seed": [1, 2]}}, "sweep seeds with the grid's own seeds"),
    ({"grid": {"hardware.gpu": ["l4", "l4"]}}, '"l4" listed more than once'),
    ({"grid": {"engine.max_num_seqs": list(range(1, 401)),
               "engine.block_size": list(range(400))}},
     "160,000 runs (160,000 points x 1 seed), more than 100,000"),
    ({"seeds": []}, "seeds: give at least one seed"),
    ({"seeds": [0, 0]}, "repeats a seed"),
    ({"seeds": [-1]}, "seeds.0: Input should be greater than or equal to 0"),
    ({"set": ["workload.duration_s"]}, "write it as section.key=value"),
    ({"grids": GRID}, "grids: unknown key"),
])
def test_bad_grid_files_name_the_field_and_the_fix(tmp_path: Path, doc: dict,
                                                   message: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        grid_of(tmp_path, doc)
    assert message in str(caught.value)
    assert "is not a valid sweep grid" in str(caught.value)


def test_grid_file_errors_before_validation(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="no grid file at"):
        load_grid(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ScenarioError, match="expected a mapping with scenario, grid"):
        load_grid(tmp_path / "list.yaml")
    (tmp_path / "bad.yaml").write_text("grid: [\n")
    with pytest.raises(ScenarioError, match="is not valid YAML"):
        load_grid(tmp_path / "bad.yaml")


def test_the_scenario_path_is_relative_to_the_grid_file(tmp_path: Path) -> None:
    folder = tmp_path / "grids"
    folder.mkdir()
    (tmp_path / "base.yaml").write_text(BASE.read_text())
    (folder / "g.yaml").write_text("scenario: ../base.yaml\ngrid: {}\n")
    grid = load_grid(folder / "g.yaml")
    assert grid.scenario.resolve() == (tmp_path / "base.yaml").resolve()
    assert grid.points() == [{}] and grid.num_runs == 1


def test_the_bundled_example_grid_loads() -> None:
    grid = load_grid(EXAMPLES / "sweeps" / "sweep-batch-size.yaml")
    assert grid.num_runs == grid.num_points * len(grid.seeds) > 1


# --- running a grid --------------------------------------------------------------------------


class Recording:
    """An inline executor that remembers what it was asked to run."""

    name = "recording"

    def __init__(self) -> None:
        self.calls: list[int] = []

    def map(self, fn, items, progress=None):
        self.calls.append(len(items))
        return make_executor("local", workers=1).map(fn, items, progress)


def test_a_bad_value_stops_the_sweep_before_any_run_and_names_its_point(tmp_path: Path) -> None:
    grid = grid_of(tmp_path, {"grid": {"engine.max_num_seqs": [64, 0],
                                       "hardware.gpu": ["h100-sxm"]}})
    executor = Recording()
    with pytest.raises(ScenarioError) as caught:
        run_sweep(grid, executor)
    assert str(caught.value).startswith('grid point engine.max_num_seqs=0, hardware.gpu="h100-sxm"')
    assert "engine.max_num_seqs: Input should be greater than or equal to 1" in str(caught.value)
    assert executor.calls == []


def test_one_row_per_point_and_seed_with_typed_columns(tmp_path: Path) -> None:
    grid = grid_of(tmp_path, {"grid": GRID, "seeds": [0, 1]})
    ticks: list[tuple[int, int]] = []
    frame = run_sweep(grid, Recording(), lambda done, total: ticks.append((done, total)))

    assert len(frame) == grid.num_runs == 8
    assert list(frame.columns[:6]) == ["engine.max_num_seqs", "hardware.gpu", "seed", "scenario",
                                       "status", "error"]
    assert sorted(zip(frame["engine.max_num_seqs"], frame["hardware.gpu"], frame["seed"])) == [
        (n, gpu, seed) for n in (16, 128) for gpu in ("a100-80gb", "h100-sxm") for seed in (0, 1)
    ]
    assert set(frame["status"]) == {"ok"} and frame["error"].isna().all()
    assert set(frame["scenario"]) == {"llama3-8b-h100-shared-prefix"}
    # the summary's figures, under dotted names, typed
    assert (frame["gpu"] == frame["hardware.gpu"]).all()
    assert (frame["summary.engine.max_num_seqs"] == frame["engine.max_num_seqs"]).all()
    assert str(frame["requests.arrived"].dtype) == "Int64"
    assert frame["ttft_ms.p95"].dtype == "float64" and (frame["ttft_ms.p95"] > 0).all()
    assert str(frame["slo.ttft_p95_met"].dtype) == "boolean"
    assert (frame["cost.usd_per_hour"] > 0).all()
    # seeds change the traffic; the grid's values change the result
    assert frame["requests.arrived"].nunique() == 2
    assert ticks[-1] == (8, 8) and [done for done, _ in ticks] == list(range(1, 9))


def test_without_seeds_each_point_runs_once_with_the_scenarios_seed(tmp_path: Path) -> None:
    frame = run_sweep(grid_of(tmp_path, {"grid": {"hardware.gpu": ["h100-sxm"]}}), Recording())
    assert frame["seed"].tolist() == [1]


def test_processes_and_inline_give_identical_frames(tmp_path: Path) -> None:
    grid = grid_of(tmp_path, {"grid": GRID, "seeds": [0, 1]})
    inline = run_sweep(grid, make_executor("local", workers=1))
    pooled = run_sweep(grid, make_executor("local", workers=2))
    pd.testing.assert_frame_equal(without_wall_clock(inline), without_wall_clock(pooled))


def test_an_impossible_point_becomes_an_error_row_and_the_rest_run(tmp_path: Path) -> None:
    grid = grid_of(tmp_path, {"grid": {"model": ["llama-3.1-8b", "llama-3.1-70b"],
                                       "hardware.gpu": ["l4"]}})
    frame = run_sweep(grid, make_executor("local", workers=2)).set_index("model")

    assert frame.loc["llama-3.1-70b", "status"] == "error"
    assert "needs 131.4 GiB of weights" in frame.loc["llama-3.1-70b", "error"]
    assert pd.isna(frame.loc["llama-3.1-70b", "ttft_ms.p95"])
    assert frame.loc["llama-3.1-8b", "status"] == "ok"
    assert pd.isna(frame.loc["llama-3.1-8b", "error"])
    assert frame.loc["llama-3.1-8b", "requests.completed"] > 0
    # the summary's own model column (the id it resolved) does not hide the grid's
    assert frame.loc["llama-3.1-8b", "summary.model"] == "llama-3.1-8b"


def test_the_parquet_file_reads_back_equal(tmp_path: Path) -> None:
    grid = grid_of(tmp_path, {"grid": {"model": ["llama-3.1-8b", "llama-3.1-70b"],
                                       "hardware.gpu": ["l4", "h100-sxm"]}})
    frame = run_sweep(grid, Recording())
    frame.to_parquet(tmp_path / "out.parquet", index=False)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "out.parquet"), frame)


# --- the command -----------------------------------------------------------------------------


def sweep_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="servesim")
    add_command(parser.add_subparsers(required=True), "sweep", "sweep a grid")
    args = parser.parse_args(["sweep", *argv])
    return args.handler(args)


def test_command_writes_one_parquet_file_and_counts_errors(tmp_path: Path, monkeypatch,
                                                           capsys) -> None:
    path = write_grid(tmp_path, {"grid": {"model": ["llama-3.1-8b", "llama-3.1-70b"],
                                          "hardware.gpu": ["l4"]}}, name="models.yaml")
    monkeypatch.chdir(tmp_path)
    assert sweep_cli(str(path), "--workers", "2") == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith("2 runs (2 points x 1 seed), 1 error, ")
    assert out.endswith(" on local -> models.parquet")
    frame = pd.read_parquet(tmp_path / "models.parquet")
    assert frame["status"].tolist() == ["ok", "error"]


def test_command_refuses_an_out_folder_that_does_not_exist(tmp_path: Path) -> None:
    path = write_grid(tmp_path, {"grid": {"hardware.gpu": ["l4"]}})
    with pytest.raises(UserError, match="no folder"):
        sweep_cli(str(path), "--out", str(tmp_path / "no" / "such.parquet"))


def test_servesim_sweep_prints_a_bad_point_without_a_traceback(tmp_path: Path, capsys) -> None:
    from sim.commands.cli import main

    path = write_grid(tmp_path, {"grid": {"engine.block_size": [16, 24]}})
    assert main(["sweep", str(path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("servesim: error: grid point engine.block_size=24: ")
    assert "Traceback" not in err


# --- executors -------------------------------------------------------------------------------


def test_executor_names_and_options_are_checked() -> None:
    with pytest.raises(UserError, match="unknown executor 'dask': choose one of local, ray"):
        make_executor("dask")
    with pytest.raises(UserError, match="workers must be at least 1"):
        make_executor("local", workers=0)
    with pytest.raises(UserError, match="is for the ray executor"):
        make_executor("local", address="head:6379")


def test_missing_ray_says_how_to_install_it(monkeypatch) -> None:
    monkeypatch.setitem(__import__("sys").modules, "ray", None)  # makes `import ray` fail
    with pytest.raises(UserError, match=r"pip install 'servesim\[ray\]'"):
        make_executor("ray")


@pytest.mark.parametrize("workers", [1, 2])
def test_a_user_error_in_a_task_arrives_as_itself(workers: int) -> None:
    executor = make_executor("local", workers=workers)
    with pytest.raises(ScenarioError, match="expected a mapping of sections"):
        executor.map(parse_scenario, [yaml.safe_load(BASE.read_text()), "not a scenario"])


def test_local_results_keep_the_order_of_the_items() -> None:
    assert make_executor("local", workers=2).map(abs, list(range(-20, 0))) == list(range(20, 0, -1))


# --- Ray -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_executor():
    """One local Ray instance of 2 CPUs for the Ray tests (it takes seconds to start)."""
    ray = pytest.importorskip("ray", reason="the ray extra is not installed")
    executor = make_executor("ray", workers=2)
    yield executor
    ray.shutdown()


def test_ray_gives_the_local_result(tmp_path: Path, ray_executor) -> None:
    grid = grid_of(tmp_path, {"grid": {"model": ["llama-3.1-8b", "llama-3.1-70b"],
                                       "hardware.gpu": ["l4", "h100-sxm"]}})
    ticks: list[tuple[int, int]] = []
    on_ray = run_sweep(grid, ray_executor, lambda done, total: ticks.append((done, total)))
    local = run_sweep(grid, make_executor("local", workers=1))
    pd.testing.assert_frame_equal(without_wall_clock(on_ray), without_wall_clock(local))
    assert on_ray["status"].tolist() == ["ok", "ok", "error", "error"]  # 70B fits neither
    assert ticks[-1] == (4, 4)


def test_a_user_error_in_a_ray_task_arrives_as_itself(ray_executor) -> None:
    with pytest.raises(ScenarioError) as caught:
        ray_executor.map(parse_scenario, ["not a scenario"])
    assert type(caught.value) is ScenarioError
    assert str(caught.value) == "scenario: expected a mapping of sections (model, hardware, ...)"


def test_an_address_where_no_cluster_answers_fails_at_once() -> None:
    pytest.importorskip("ray", reason="the ray extra is not installed")
    with socket.socket() as probe:  # a port that was free a moment ago
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    executor = make_executor("ray", address=f"127.0.0.1:{port}")
    with pytest.raises(UserError, match=f"no Ray cluster answers at 127.0.0.1:{port}"):
        executor.map(abs, [1])
