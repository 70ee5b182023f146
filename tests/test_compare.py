"""Overrides from the command line and scenarios side by side."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from sim.commands.cli import main
from sim.config.scenario import apply_overrides, load_scenario
from sim.engine.errors import ScenarioError
from sim.results.comparison import compare

BASE = {
    "name": "base",
    "model": "llama-3.1-8b",
    "hardware": {"gpu": "h100-sxm"},
    "workload": {
        "arrivals": {"rate_per_s": 4},
        "num_requests": 150,
        "lengths": {"input": {"dist": "fixed", "value": 600}, "output": {"dist": "fixed", "value": 80}},
    },
}


def write(tmp_path: Path) -> Path:
    path = tmp_path / "base.yaml"
    path.write_text(yaml.safe_dump(BASE))
    return path


def test_overrides_set_nested_values_as_yaml_without_touching_the_original() -> None:
    data = apply_overrides(BASE, ["engine.max_num_seqs=64", "hardware.gpu=a100-80gb",
                                  "workload.arrivals.rate_per_s=8.5", "engine.prefix_caching=false"])
    assert data["engine"] == {"max_num_seqs": 64, "prefix_caching": False}
    assert data["hardware"]["gpu"] == "a100-80gb"
    assert data["workload"]["arrivals"]["rate_per_s"] == 8.5
    assert "engine" not in BASE and BASE["hardware"]["gpu"] == "h100-sxm"


@pytest.mark.parametrize("bad", ["engine.max_num_seqs", "=3", "model.sub=1", "engine..x=1"])
def test_malformed_overrides_are_user_errors(bad: str) -> None:
    with pytest.raises(ScenarioError, match="--set"):
        apply_overrides(BASE, [bad])


def test_an_override_is_validated_like_the_file(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="engine.max_num_seqs"):
        load_scenario(write(tmp_path), ["engine.max_num_seqs=-1"])


def test_compare_changes_are_relative_to_the_first() -> None:
    a = {"ttft_ms": {"p50": 10.0}, "cost": {"usd_per_hour": 4.0}}
    b = {"ttft_ms": {"p50": 15.0}, "cost": {"usd_per_hour": 2.0}}
    rows = {r["metric"]: r for r in compare([a, b])}
    assert rows["TTFT p50"]["values"] == [10.0, 15.0]
    assert rows["TTFT p50"]["change_pct"] == [None, pytest.approx(50.0)]
    assert rows["fleet $/hour"]["change_pct"][1] == pytest.approx(-50.0)
    assert rows["TTFT p95"]["values"] == [None, None]


def test_compare_cli_runs_each_scenario_with_its_own_overrides(tmp_path: Path, capsys) -> None:
    path = str(write(tmp_path))
    assert main(["compare", path, f"{path}@hardware.gpu=a100-80gb", "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["scenarios"] == ["base", f"{path}@hardware.gpu=a100-80gb"]
    rows = {r["metric"]: r for r in out["metrics"]}
    h100, a100 = rows["TPOT p50"]["values"]
    assert a100 > h100  # less memory bandwidth, slower decode
    assert rows["fleet $/hour"]["values"][1] < rows["fleet $/hour"]["values"][0]
    assert main(["compare", path, f"{path}@engine.block_size=17"]) == 2
    assert "engine.block_size" in capsys.readouterr().err


def test_run_accepts_overrides(tmp_path: Path, capsys) -> None:
    assert main(["run", str(write(tmp_path)), "--set", "hardware.replicas=2", "--format",
                 "json"]) == 0
    assert json.loads(capsys.readouterr().out)["replicas"] == 2
