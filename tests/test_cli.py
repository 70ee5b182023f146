"""The command line: outputs other tools rely on, and clear errors for bad scenarios."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from sim.commands.cli import main
from sim.config.scenario import load_scenario

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

SMALL = {
    "name": "small",
    "seed": 3,
    "model": "llama-3.1-8b",
    "hardware": {"gpu": "h100-sxm"},
    "workload": {
        "arrivals": {"process": "poisson", "rate_per_s": 4},
        "num_requests": 200,
        "lengths": {
            "input": {"dist": "lognormal", "mean": 800, "sigma": 0.8, "max": 8000},
            "output": {"dist": "exponential", "mean": 150, "max": 1000},
        },
    },
    "slo": {"ttft_p95_ms": 300, "tpot_p95_ms": 40},
}


def write(tmp_path: Path, data: dict, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def run_json(capsys: pytest.CaptureFixture, *args: str) -> dict:
    assert main(["run", *args, "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_json_summary_has_the_documented_keys(tmp_path: Path, capsys) -> None:
    summary = run_json(capsys, str(write(tmp_path, SMALL)))
    assert summary["requests"] == {
        "arrived": 200, "completed": 200, "rejected": 0, "rejected_reasons": {},
        "truncated_outputs": 0, "capped_by_max_tokens": 0, "output_tokens_saved": 0,
    }
    for key in ("ttft_ms", "tpot_ms", "itl_ms", "e2e_ms"):
        assert set(summary[key]) == {"mean", "p50", "p90", "p95", "p99"}
        assert summary[key]["p50"] <= summary[key]["p99"]
    assert set(summary["throughput"]) == {
        "requests_per_s", "input_tokens_per_s", "output_tokens_per_s"
    }
    assert {"num_gpu_blocks", "mean_utilization", "preemptions", "prefix_cache_hit_rate"} <= set(
        summary["kv"]
    )
    assert {"gpus", "usd_per_hour", "usd_total", "usd_per_million_output_tokens",
            "output_tokens_per_usd"} <= set(summary["cost"])
    assert summary["duration_s"] > 0 and summary["wall_s"] > 0
    cost = summary["cost"]  # billed over the arrival window, not the drain after it
    assert cost["billed_basis"] == "arrival window"
    assert 0 < cost["billed_s"] < summary["duration_s"] == pytest.approx(
        summary["saturation"]["last_arrival_s"] + summary["saturation"]["drain_s"])
    assert cost["usd_total"] == pytest.approx(cost["usd_per_hour"] * cost["billed_s"] / 3600)


def test_out_folder_holds_records_summary_and_a_scenario_that_loads_back(
    tmp_path: Path, capsys
) -> None:
    out = tmp_path / "out"
    assert main(["run", str(write(tmp_path, SMALL)), "--out", str(out), "--seed", "9"]) == 0
    assert "TTFT" in capsys.readouterr().out
    records = pd.read_parquet(out / "requests.parquet")
    assert len(records) == 200 and {"ttft_s", "tpot_s", "e2e_s"} <= set(records.columns)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seed"] == 9
    again = load_scenario(out / "scenario.yaml")
    assert again.seed == 9 and again.model == "llama-3.1-8b"


def test_same_seed_same_records_other_seed_other_records(tmp_path: Path, capsys) -> None:
    path = str(write(tmp_path, SMALL))
    frames = []
    for seed, folder in (("1", "a"), ("1", "b"), ("2", "c")):
        assert main(["run", path, "--seed", seed, "--out", str(tmp_path / folder)]) == 0
        frames.append(pd.read_parquet(tmp_path / folder / "requests.parquet"))
    pd.testing.assert_frame_equal(frames[0], frames[1])
    assert not frames[0]["arrival_s"].equals(frames[2]["arrival_s"])


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"hardware": {"gpu": "h100-sxm", "replicaz": 2}}, "hardware.replicaz: unknown key"),
        ({"engine": {"block_size": 17}}, "engine.block_size"),
        ({"engine": {"max_num_seqs": "many"}}, "engine.max_num_seqs"),
        ({"hardware": {"gpu": "h100-sxm", "gpu_memory_utilization": 1.5}},
         "hardware.gpu_memory_utilization"),
        ({"model": "gpt-17"}, "gpt-17"),
        ({"hardware": {"gpu": "tpu-v9"}}, "tpu-v9"),
        ({"model": "llama-3.1-70b", "hardware": {"gpu": "l4"}}, "tensor_parallel"),
        ({"engine": {"max_num_seqs": 512, "max_num_batched_tokens": 256}},
         "max_num_batched_tokens"),
        ({"engine": {"max_model_len": 500_000}}, "max_model_len"),
        ({"workload": {"num_requests": 5}}, "workload"),
        ({"slo": {"ttft_p95_ms": -1}}, "slo.ttft_p95_ms"),
        ({"hardware": {"gpu": "rtx-4090"}}, "price_usd_per_hour"),
        ({"engine": {"scheduler": "dynamic", "static_batch_size": 4,
                     "preferred_batch_sizes": [2, 8]}}, "exceed static_batch_size 4"),
        ({"engine": {"kv_allocation": "virtual"}}, "engine.kv_allocation"),
        ({"engine": {"scheduler": "orca"}}, "engine.scheduler"),
        ({"workload": {**SMALL["workload"], "arrivals": {"process": "closed_loop"}}},
         "needs concurrency"),
        ({"workload": {**SMALL["workload"], "arrivals": {"process": "poisson", "rate_per_s": 4,
                                                         "concurrency": 4}}},
         "only used by process 'closed_loop'"),
        ({"gateway": {"window_ms": 10},
          "workload": {**SMALL["workload"], "arrivals": {"process": "closed_loop",
                                                         "concurrency": 4}}},
         "closed-loop"),
        ({"gateway": {"window_ms": 10, "group_by": ["temperature"]}}, "gateway.group_by"),
        ({"gateway": {"window_ms": -1}}, "gateway.window_ms"),
    ],
)
def test_bad_scenarios_exit_2_naming_the_field(tmp_path: Path, capsys, change: dict,
                                               expected: str) -> None:
    data = {**SMALL, **change}
    assert main(["run", str(write(tmp_path, data))]) == 2
    captured = capsys.readouterr()
    assert expected in captured.err
    assert "Traceback" not in captured.err and captured.out == ""


@pytest.mark.parametrize("policy", ["naive", "static", "dynamic", "continuous"])
@pytest.mark.parametrize("allocation", ["paged", "contiguous"])
def test_every_policy_runs_from_the_command_line(tmp_path: Path, capsys, policy: str,
                                                 allocation: str) -> None:
    path = str(write(tmp_path, {**SMALL, "workload": {**SMALL["workload"], "max_tokens": 400}}))
    summary = run_json(capsys, path, "--set", f"engine.scheduler={policy}",
                       "--set", f"engine.kv_allocation={allocation}")
    assert summary["requests"]["completed"] == 200
    assert summary["engine"]["scheduler"] == policy
    assert summary["kv"]["allocation"] == allocation
    waste = summary["kv"]["waste"]
    assert sum(waste.values()) == pytest.approx(1.0)
    if allocation == "paged":
        assert waste["reservation"] == waste["external_fragmentation"] == 0
        assert waste["token_states"] > 0.9
    else:
        assert waste["reservation"] > 0


def test_one_file_sweeps_across_policies(tmp_path: Path, capsys) -> None:
    """Batcher keys stay in the file and are ignored by the other schedulers."""
    engine = {"scheduler": "dynamic", "static_batch_size": 4, "preferred_batch_sizes": [2],
              "batch_timeout_ms": 5}
    path = str(write(tmp_path, {**SMALL, "engine": engine}))
    for policy in ("continuous", "naive", "static"):
        summary = run_json(capsys, path, "--set", f"engine.scheduler={policy}")
        assert summary["engine"]["scheduler"] == policy
        assert summary["requests"]["completed"] == 200
    assert summary["engine"]["preferred_batch_sizes"] == []  # static has none
    assert summary["engine"]["batch_size"] == 4


def test_static_batching_defaults_to_contiguous_memory(tmp_path: Path, capsys) -> None:
    path = str(write(tmp_path, SMALL))
    summary = run_json(capsys, path, "--set", "engine.scheduler=static")
    assert summary["engine"] == {
        "scheduler": "static", "kv_allocation": "contiguous", "prefix_caching": False,
        "batch_size": 8, "batch_timeout_ms": 100.0, "preferred_batch_sizes": [],
    }


def test_a_gateway_window_adds_to_ttft_and_is_reported(tmp_path: Path, capsys) -> None:
    path = str(write(tmp_path, SMALL))
    plain = run_json(capsys, path)
    gated = run_json(capsys, path, "--set", "gateway.window_ms=50", "--set",
                     "gateway.group_by=[max_tokens]")
    assert plain["gateway"] is None
    gateway = gated["gateway"]
    assert gateway["window_ms"] == 50 and gateway["group_by"] == ["max_tokens"]
    assert 0 < gateway["max_hold_ms"] <= 50 + 1e-9
    assert gateway["groups"] * gateway["mean_group_size"] == pytest.approx(200)
    assert gated["ttft_ms"]["mean"] > plain["ttft_ms"]["mean"]


def test_a_closed_loop_workload_runs_from_the_command_line(tmp_path: Path, capsys) -> None:
    workload = {**SMALL["workload"], "arrivals": {"process": "closed_loop", "concurrency": 4}}
    summary = run_json(capsys, str(write(tmp_path, {**SMALL, "workload": workload})))
    assert summary["requests"]["completed"] == 200
    assert summary["batch_size"]["p99"] <= 4


def test_unreadable_files_exit_2(tmp_path: Path, capsys) -> None:
    assert main(["run", str(tmp_path / "missing.yaml")]) == 2
    broken = tmp_path / "broken.yaml"
    broken.write_text("model: [unclosed\n")
    assert main(["run", str(broken)]) == 2
    assert "not valid YAML" in capsys.readouterr().err


def test_workload_max_tokens_caps_every_reply(tmp_path: Path, capsys) -> None:
    data = {**SMALL, "workload": {**SMALL["workload"], "max_tokens": 100}}
    summary = run_json(capsys, str(write(tmp_path, data)))
    assert summary["requests"]["capped_by_max_tokens"] > 0
    assert summary["requests"]["output_tokens_saved"] > 0
    assert summary["tpot_ms"]["p99"] is not None


def test_price_override_is_used_and_reported(tmp_path: Path, capsys) -> None:
    data = {**SMALL, "hardware": {"gpu": "rtx-4090", "price_usd_per_hour": 0.5, "replicas": 2}}
    summary = run_json(capsys, str(write(tmp_path, data)))
    assert summary["cost"]["usd_per_hour"] == pytest.approx(1.0)
    assert summary["cost"]["price_tier"] == "scenario"


@pytest.mark.parametrize("example", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_example_scenario_is_valid(example: Path) -> None:
    scenario = load_scenario(example)
    pools = scenario.pool_scenarios()
    assert pools and all(pool.model and pool.hardware.gpu for _, pool in pools)


@pytest.mark.parametrize("command", ["models", "gpus", "prices"])
def test_catalog_listings(command: str, capsys) -> None:
    assert main([command, "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) >= 10


def test_negative_seed_is_a_user_error(tmp_path: Path, capsys) -> None:
    path = str(write(tmp_path, SMALL))
    with pytest.raises(SystemExit) as exit_info:
        main(["run", path, "--seed", "-5"])
    assert exit_info.value.code == 2
    assert main(["run", str(write(tmp_path, {**SMALL, "seed": -1}, "neg.yaml"))]) == 2
    assert "seed" in capsys.readouterr().err


def test_model_config_path_is_read_from_the_scenario_folder(tmp_path: Path, capsys,
                                                            monkeypatch) -> None:
    from sim.config.model_catalog import load_model

    folder = tmp_path / "plans"
    folder.mkdir()
    base = load_model("llama-3.1-8b")
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 2048,
        "num_hidden_layers": 8, "num_attention_heads": 16, "num_key_value_heads": 8,
        "intermediate_size": 8192, "vocab_size": base.vocab_size,
        "max_position_embeddings": 8192,
    }
    (folder / "my-model.json").write_text(json.dumps(config))
    path = write(folder, {**SMALL, "model": "my-model.json"})
    monkeypatch.chdir(tmp_path)  # somewhere else than the scenario's folder
    summary = run_json(capsys, str(path))
    assert summary["requests"]["completed"] == 200


def test_rejected_requests_count_against_goodput(tmp_path: Path, capsys) -> None:
    data = {**SMALL, "engine": {"max_model_len": 900}}
    summary = run_json(capsys, str(write(tmp_path, data)))
    rejected = summary["requests"]["rejected"]
    assert rejected > 0
    assert summary["goodput"]["fraction_meeting_slo"] <= 1 - rejected / 200


def test_a_workload_with_no_requests_is_a_user_error(tmp_path: Path, capsys) -> None:
    data = {**SMALL, "workload": {"arrivals": {"rate_per_s": 0.001}, "duration_s": 10,
                                  "lengths": {"input": 100, "output": 10}}}
    assert main(["run", str(write(tmp_path, data))]) == 2
    assert "no requests" in capsys.readouterr().err


def test_a_class_mix_reports_each_endpoint_and_feeds_the_gateway(tmp_path: Path, capsys) -> None:
    workload = {
        "arrivals": {"process": "poisson", "rate_per_s": 20}, "num_requests": 400,
        "classes": [
            {"name": "chat", "share": 1, "lengths": {"input": 600, "output": 300},
             "max_tokens": 100},
            {"name": "classify", "share": 1, "lengths": {"input": 100, "output": 2}},
        ],
    }
    path = str(write(tmp_path, {**SMALL, "workload": workload,
                                "gateway": {"window_ms": 20, "group_by": ["endpoint"]}}))
    summary = run_json(capsys, path)
    by_endpoint = summary["by_endpoint"]
    assert set(by_endpoint) == {"chat", "classify"}
    assert sum(e["arrived"] for e in by_endpoint.values()) == 400
    chat, classify = by_endpoint["chat"], by_endpoint["classify"]
    assert chat["output_tokens"] == 100 * chat["completed"]  # capped at the class's 100
    assert summary["requests"]["capped_by_max_tokens"] == chat["arrived"]
    assert summary["requests"]["output_tokens_saved"] == 200 * chat["arrived"]
    assert classify["e2e_ms"]["p50"] < chat["e2e_ms"]["p50"]
    assert summary["gateway"]["max_hold_ms"] <= 20 + 1e-9
    assert run_json(capsys, str(write(tmp_path, SMALL, "plain.yaml")))["by_endpoint"] is None


def test_the_table_says_how_far_to_trust_the_latencies(tmp_path, capsys) -> None:
    """The trained profile's coverage and the range of the headline latencies, both ends in
    one unit; a profile without a band says why."""
    from sim.results.report import _prediction_lines, _range

    assert _range(900.0, 120_000.0) == "0.9-120.0 s"
    assert _range(10.0, 20.0) == "10.0-20.0 ms"
    seen = {"model": True, "gpu": False, "tensor_parallel": True}
    band = {"ttft_ms": {"p95": {"low": 100.0, "high": 150.0}},
            "tpot_ms": {"p95": {"low": 9.0, "high": 12.0}},
            "e2e_ms": {"mean": {"low": 1000.0, "high": 1300.0}}}
    lines = _prediction_lines({"in_training_data": seen, "band": band, "band_basis": "x"})
    assert lines[0].endswith("model yes, GPU NO, TP yes")
    assert "p95 TTFT 100.0-150.0 ms; p95 TPOT 9.0-12.0 ms; mean E2E 1,000.0-1,300.0 ms" in lines[1]
    none = _prediction_lines({"in_training_data": None, "band": None, "band_basis": "hand-set"})
    assert none == ["           no error band: hand-set"]
