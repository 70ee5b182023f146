"""The H100 replay benchmark: bundled data, scenarios built from its rows, one short real run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmarks import vllm_h100_replay as replay
from sim.config.model_catalog import load_model
from sim.config.scenario import parse_scenario
from sim.runner.run import run_scenario


@pytest.fixture(scope="module")
def runs() -> pd.DataFrame:
    return replay.load_runs()


def test_bundled_runs_and_stages_load(runs: pd.DataFrame) -> None:
    assert len(runs) == 47 and runs["run_id"].is_unique
    assert (runs["overloaded"] == "yes").sum() == 5
    stages = replay.load_stages()
    assert set(stages["run_id"]) == set(runs["run_id"])
    assert set(stages["stage"]) == {-1, 0, 1}


def test_every_run_model_is_in_the_catalog(runs: pd.DataFrame) -> None:
    for model in runs["model"].unique():
        assert load_model(model).id == model


def test_every_row_builds_a_valid_scenario(runs: pd.DataFrame) -> None:
    for _, row in runs.iterrows():
        scenario = parse_scenario(replay.scenario_for(row))
        assert scenario.hardware.tensor_parallel == row["tensor_parallel"]
        assert scenario.hardware.replicas == row["data_parallel"]
        assert scenario.engine.max_num_seqs == 128
        assert scenario.engine.max_model_len == 4096
        prefix = scenario.workload.shared_prefix
        assert prefix is not None and prefix.repeat_questions
        assert prefix.output_tokens.value == round(row["output_tokens_mean"])
        assert scenario.workload.stages_duration_s == 1200


def test_scout_runs_use_fp8_weights_and_their_logged_blocks(runs: pd.DataFrame) -> None:
    row = runs[runs["model"] == "llama-4-scout-17b-16e-fp8"].iloc[0]
    engine = replay.scenario_for(row)["engine"]
    assert engine["weight_dtype"] == "fp8" and engine["num_gpu_blocks"] == 8253


def test_runs_without_a_logged_block_count_leave_it_to_the_planner(runs: pd.DataFrame) -> None:
    row = runs[runs["total_kv_blocks_gpu"].isna()].iloc[0]
    assert "num_gpu_blocks" not in replay.scenario_for(row)["engine"]


@pytest.mark.parametrize(("text", "stages"), [
    ("5rps x 600s;10rps x 600s",
     [{"rate_per_s": 5.0, "duration_s": 600.0}, {"rate_per_s": 10.0, "duration_s": 600.0}]),
    ("2.5rps x 600s;6rps x 600s",
     [{"rate_per_s": 2.5, "duration_s": 600.0}, {"rate_per_s": 6.0, "duration_s": 600.0}]),
    ("6rps x 1200s", [{"rate_per_s": 6.0, "duration_s": 1200.0}]),
])
def test_stages_are_parsed_exactly(text: str, stages: list[dict[str, float]]) -> None:
    assert replay.parse_stages(text) == stages


def test_a_malformed_stage_is_refused() -> None:
    with pytest.raises(ValueError, match="'6 per second'"):
        replay.parse_stages("6 per second")


def test_settings_with_a_note_keep_their_number() -> None:
    assert replay.leading_int("128 (not in CSV; value in every known golden file)") == 128
    assert replay.leading_int(128) == 128


def test_template_extra_is_measured_where_given_else_the_median(runs: pd.DataFrame) -> None:
    measured = runs[runs["prompt_tokens_mean"].notna()]
    extras = measured["prompt_tokens_mean"] - measured["system_prompt_tokens"] \
        - measured["question_tokens"]
    assert replay.median_template_extra(runs) == pytest.approx(float(np.median(extras)))
    row = measured.iloc[0]  # 591.63 measured, 100 + 466 nominal
    assert replay.extra_prompt_tokens(row) == 26
    assert replay.scenario_for(row)["workload"]["shared_prefix"]["question_tokens"] == 466 + 26
    unmeasured = runs[runs["prompt_tokens_mean"].isna()].iloc[0]
    assert replay.extra_prompt_tokens(unmeasured) == round(float(np.median(extras)))


def test_the_data_defines_itl_from_the_means() -> None:
    frame = pd.DataFrame({"e2e_s": [1.0, 3.0], "ttft_s": [0.1, 0.3], "output_tokens": [101, 101]})
    figures = replay.mean_figures(frame)
    assert figures["e2e"] == pytest.approx(2000.0)
    assert figures["ttft"] == pytest.approx(200.0)
    assert figures["itl"] == pytest.approx(1800.0 / 100)


def test_requests_are_assigned_to_the_stage_they_arrived_in() -> None:
    stages = replay.parse_stages("5rps x 600s;10rps x 600s")
    stage = replay.stage_of(np.array([0.0, 599.9, 600.0, 1199.0, 1300.0]), stages)
    assert stage.tolist() == [0, 0, 1, 1, 1]


def test_a_cut_down_run_completes_every_request(runs: pd.DataFrame) -> None:
    row = runs[runs["run_id"] == "s2r-18-llama-3-1-8b-tp1-codegen-1"].iloc[0]
    scenario = replay.scenario_for(row)
    scenario["workload"]["stages"] = [{"rate_per_s": 5.0, "duration_s": 30.0}]
    summary = run_scenario(parse_scenario(scenario)).summary
    requests = summary["requests"]
    assert requests["arrived"] > 100
    assert requests["completed"] == requests["arrived"]
    # 44 distinct prompts cycled: after the first pass nearly every prompt token is cached
    assert summary["kv"]["prefix_cache_hit_rate"] > 0.6


def _result(run_id: str, overloaded: str, apes: tuple[float, float, float]) -> dict:
    return {"run_id": run_id, "model": "m", "tp": 1, "workload": "general",
            "held_out": "yes", "overloaded": overloaded, "sim_saturated": "no",
            **{f"{metric}_ape": value for metric, value in zip(replay.METRICS, apes)}}


def test_the_page_table_sets_before_beside_now_and_skips_overloaded_runs() -> None:
    nan = float("nan")
    before = pd.DataFrame([_result("a", "no", (10, 40, 5)), _result("b", "no", (20, 60, 15)),
                           _result("c", "yes", (nan, nan, nan))])
    now = pd.DataFrame([_result("a", "no", (2, 10, 1)), _result("b", "no", (4, 30, 3)),
                        _result("c", "yes", (nan, nan, nan))])
    table = replay.comparison_table(before, now)
    assert "| a | m | 1 | general | yes | 10.0 % | 2.0 % | 40.0 % | 10.0 % | 5.0 % | 1.0 % |" \
        in table
    assert "overloaded; saturated before: no, now: no" in table
    assert ("**median, 2 runs not overloaded** | | | | | **15.0 %** | **3.0 %** | **50.0 %** "
            "| **20.0 %** | **10.0 %** | **2.0 %** |") in table


def test_one_page_block_is_regenerated_without_redating_the_page() -> None:
    from benchmarks.validation_page import regenerate

    text = ("Tables regenerated on 2000-01-01.\n<!-- generated: vllm-h100-runs -->\nold\n"
            "<!-- end: vllm-h100-runs -->\n")
    out = regenerate(text, {"vllm-h100-runs": lambda: "new"}, stamp=False)
    assert "new" in out and "old" not in out and "2000-01-01" in out
