"""Generated workloads: columns line up, shared prefixes have the documented structure."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from sim.engine.errors import ScenarioError
from sim.workload.workload import Workload, generate_workload
from sim.workload.workload_spec import WorkloadSpec

SHARED = {
    "num_groups": 8,
    "prompts_per_group": 32,
    "system_prompt_tokens": 2000,
    "question_tokens": 200,
    "output_tokens": 256,
}


def generate(seed: int = 3, **fields: Any) -> Workload:
    return generate_workload(WorkloadSpec.model_validate(fields), np.random.default_rng(seed))


def test_shared_prefix_sends_each_group_user_pair_once() -> None:
    work = generate(arrivals={"rate_per_s": 10}, shared_prefix=SHARED)
    assert len(work) == work.num_requests == 8 * 32
    keys, counts = np.unique(work.prefix_key, return_counts=True)
    assert keys.tolist() == list(range(1, 9))
    assert counts.tolist() == [32] * 8
    assert set(work.prefix_tokens.tolist()) == {2000}
    assert set(work.input_tokens.tolist()) == {2200}
    assert set(work.output_tokens.tolist()) == {256}


def test_shared_prefix_groups_interleave_in_arrival_order() -> None:
    keys = generate(arrivals={"rate_per_s": 10}, shared_prefix=SHARED).prefix_key
    # Sorted by group would change key only 7 times; a shuffle changes it almost every request.
    assert np.count_nonzero(np.diff(keys)) > 100


def test_shared_prefix_cycles_pairs_when_num_requests_is_larger() -> None:
    small = {**SHARED, "num_groups": 3, "prompts_per_group": 4}
    work = generate(arrivals={"process": "all_at_once"}, num_requests=30, shared_prefix=small)
    assert len(work) == 30
    first_pass = np.sort(work.prefix_key[:12])
    assert first_pass.tolist() == [1] * 4 + [2] * 4 + [3] * 4


def test_shared_prefix_with_duration_runs_for_the_duration() -> None:
    work = generate(
        arrivals={"rate_per_s": 50},
        duration_s=100,
        shared_prefix={**SHARED, "output_tokens": {"dist": "exponential", "mean": 64}},
    )
    assert len(work) == pytest.approx(5000, abs=5 * np.sqrt(5000))
    assert work.arrival_s.max() < 100
    assert work.output_tokens.mean() == pytest.approx(64, rel=0.05)


def test_shared_prefix_with_stages_draws_a_pair_per_arrival() -> None:
    small = {**SHARED, "num_groups": 3, "prompts_per_group": 4}
    stages = [{"rate_per_s": 2, "duration_s": 30}, {"rate_per_s": 6, "duration_s": 30}]
    work = generate(stages=stages, shared_prefix=small)
    assert len(work) == pytest.approx(240, abs=5 * np.sqrt(240))
    assert (work.arrival_s[work.arrival_s >= 30].size
            == pytest.approx(180, abs=5 * np.sqrt(180)))
    # Every full pass of the 12 pairs visits each group 4 times.
    passes = len(work) // 12
    counts = np.unique(work.prefix_key[:12 * passes], return_counts=True)[1]
    assert counts.tolist() == [4 * passes] * 3


def test_repeated_questions_name_the_system_prompt_by_group_and_the_rest_by_pair() -> None:
    spec = {**SHARED, "num_groups": 2, "prompts_per_group": 2, "system_prompt_tokens": 100,
            "question_tokens": 475, "repeat_questions": True}
    work = generate(arrivals={"process": "all_at_once"}, num_requests=8, shared_prefix=spec)
    assert work.prefix_ids is not None and work.prefix_id_tokens == 100  # pieces of 100 tokens
    ids = [tuple(work.prefix_ids[row]) for row in range(8)]
    assert all(len(piece_ids) == 6 for piece_ids in ids)  # 575 tokens
    assert sorted(ids.count(piece_ids) for piece_ids in set(ids)) == [2, 2, 2, 2]  # two passes
    pairs = sorted(set(ids), key=lambda piece_ids: piece_ids[0])
    (a, b), (c, d) = pairs[:2], pairs[2:]
    assert a[0] == b[0] != c[0] == d[0]  # the first piece, the system prompt, is the group's
    assert not set(a[1:]) & set(b[1:])   # the question's pieces are the pair's own
    assert not set(a) & set(c)


@pytest.mark.parametrize(("repeat", "second_pass_cached"), [(True, 560), (False, 96)])
def test_a_repeated_question_finds_its_whole_prompt_cached(repeat: bool,
                                                            second_pass_cached: int) -> None:
    from sim.config.scenario import parse_scenario
    from sim.runner.run import run_scenario

    scenario = parse_scenario({
        "model": "llama-3.1-8b", "hardware": {"gpu": "h100-sxm"},
        "engine": {"max_num_seqs": 8, "max_num_batched_tokens": 2048, "max_model_len": 4096},
        "workload": {"arrivals": {"process": "constant", "rate_per_s": 1}, "num_requests": 8,
                     "shared_prefix": {"num_groups": 2, "prompts_per_group": 2,
                                       "system_prompt_tokens": 100, "question_tokens": 475,
                                       "output_tokens": 2, "repeat_questions": repeat}}})
    cached = run_scenario(scenario).result.records.sort_values("arrival_s")["cached_tokens"]
    # 16-token blocks: the system prompt has 6 full ones (96 tokens), the prompt 35 (560)
    assert sorted(cached.iloc[:4]) == [0, 0, 96, 96]
    assert cached.iloc[4:].tolist() == [second_pass_cached] * 4


def test_without_repeated_questions_only_the_system_prompt_is_described() -> None:
    work = generate(arrivals={"process": "all_at_once"}, num_requests=8, shared_prefix=SHARED)
    assert work.prefix_ids is None


def test_independent_requests_share_nothing() -> None:
    work = generate(
        arrivals={"rate_per_s": 5.5},
        duration_s=60,
        lengths={"input": {"dist": "fixed", "value": 512}, "output": 128},
    )
    assert not work.prefix_key.any() and not work.prefix_tokens.any()
    assert set(work.input_tokens.tolist()) == {512}


def test_same_seed_same_workload() -> None:
    fields = {
        "arrivals": {"process": "gamma", "cv": 2},
        "stages": [{"rate_per_s": 2, "duration_s": 30}, {"rate_per_s": 6, "duration_s": 30}],
        "lengths": {"input": {"dist": "empirical", "dataset": "sharegpt"}, "output": 9},
    }
    first, again = generate(seed=5, **fields), generate(seed=5, **fields)
    assert first.to_frame().equals(again.to_frame())
    assert not first.to_frame().equals(generate(seed=6, **fields).to_frame())


def test_to_frame_has_one_row_per_request() -> None:
    work = Workload.from_arrays([0.0, 1.5], [10, 20], [1, 2], prefix_key=[0, 4], prefix_tokens=[0, 8])
    frame = work.to_frame()
    assert list(frame.columns) == [
        "arrival_s", "input_tokens", "output_tokens", "prefix_key", "prefix_tokens", "max_tokens"
    ]
    assert frame.index.name == "request_id"
    assert frame.loc[1].tolist() == [1.5, 20, 2, 4, 8, 0]
    assert frame["input_tokens"].dtype == np.int64


def test_from_arrays_copies_into_read_only_columns() -> None:
    arrivals = np.array([0.0, 1.0])
    work = Workload.from_arrays(arrivals, [1, 1], [1, 1])
    arrivals[0] = 5.0
    assert work.arrival_s[0] == 0.0
    with pytest.raises(ValueError):
        work.arrival_s[0] = 2.0


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ({"arrival_s": [0.0, 1.0], "input_tokens": [1], "output_tokens": [1, 1]}, "length"),
        ({"arrival_s": [2.0, 1.0], "input_tokens": [1, 1], "output_tokens": [1, 1]}, "sorted"),
        ({"arrival_s": [0.0], "input_tokens": [0], "output_tokens": [1]}, "input_tokens"),
        ({"arrival_s": [0.0], "input_tokens": [2.5], "output_tokens": [1]}, "whole numbers"),
        (
            {"arrival_s": [0.0], "input_tokens": [5], "output_tokens": [1],
             "prefix_key": [1], "prefix_tokens": [6]},
            "prefix_tokens",
        ),
        (
            {"arrival_s": [0.0], "input_tokens": [5], "output_tokens": [1],
             "prefix_key": [0], "prefix_tokens": [2]},
            "prefix_key is 0",
        ),
    ],
)
def test_inconsistent_columns_are_refused(columns: dict[str, Any], message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        Workload.from_arrays(**columns)


def test_a_class_mix_draws_classes_by_share_with_their_own_lengths_and_caps() -> None:
    spec = WorkloadSpec.model_validate({
        "arrivals": {"process": "poisson", "rate_per_s": 50},
        "num_requests": 4000,
        "max_tokens": 300,
        "classes": [
            {"name": "chat", "share": 3, "max_tokens": 500,
             "lengths": {"input": 800, "output": {"dist": "exponential", "mean": 200}}},
            {"name": "classify", "share": 1, "max_tokens": 4,
             "lengths": {"input": 120, "output": 2}},
        ],
    })
    workload = generate_workload(spec, np.random.default_rng(3))
    chat = workload.endpoints == "chat"
    assert 0.72 < chat.mean() < 0.78  # shares 3 : 1
    assert (workload.input_tokens[chat] == 800).all()
    assert (workload.input_tokens[~chat] == 120).all()
    assert (workload.output_tokens[~chat] == 2).all()
    # the lower of the class cap and the workload's cap applies
    assert (workload.max_tokens[chat] == 300).all()
    assert (workload.max_tokens[~chat] == 4).all()
    again = generate_workload(spec, np.random.default_rng(3))
    assert (again.endpoints == workload.endpoints).all()
