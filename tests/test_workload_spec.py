"""The workload section accepts what the documentation shows and names the field of a mistake."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ValidationError

from sim.engine.errors import ScenarioError
from sim.workload.workload_spec import LengthSpec, SharedPrefixSpec, WorkloadSpec

LENGTHS = {"input": {"dist": "fixed", "value": 512}, "output": {"dist": "fixed", "value": 128}}
SHARED = {
    "num_groups": 8,
    "prompts_per_group": 32,
    "system_prompt_tokens": 2000,
    "question_tokens": 200,
    "output_tokens": 256,
}


class Scenario(BaseModel):
    """Stands in for the top-level scenario, so error locations start at `workload`."""

    workload: WorkloadSpec


def workload(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "arrivals": {"process": "poisson", "rate_per_s": 5.5},
        "num_requests": 100,
        "lengths": LENGTHS,
    }
    base.update(fields)
    return {key: value for key, value in base.items() if value is not None}


def error_text(fields: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as caught:
        Scenario(workload=fields)
    return str(caught.value)


def test_documented_example_parses() -> None:
    text = """
    workload:
      arrivals: {process: gamma, rate_per_s: 5.5, cv: 2.0}
      duration_s: 3600
      lengths:
        input:  {dist: fixed, value: 512}
        output: {dist: exponential, mean: 128, max: 1536}
    """
    spec = Scenario.model_validate(yaml.safe_load(text)).workload
    assert spec.arrivals is not None and spec.arrivals.cv == 2.0
    assert spec.lengths is not None and spec.lengths.output.max == 1536


@pytest.mark.parametrize(
    "fields",
    [
        workload(),
        workload(num_requests=None, duration_s=60.0),
        workload(arrivals={"process": "constant", "rate_per_s": 2}),
        workload(arrivals={"process": "all_at_once"}),
        workload(arrivals=None, stages=[{"rate_per_s": 2, "duration_s": 60}]),
        workload(
            arrivals={"process": "gamma", "cv": 3},
            stages=[{"rate_per_s": 0, "duration_s": 5}, {"rate_per_s": 8, "duration_s": 60}],
            num_requests=50,
        ),
        workload(lengths=None, shared_prefix=SHARED, num_requests=None),
        workload(
            lengths=None,
            shared_prefix={**SHARED, "output_tokens": {"dist": "uniform", "min": 1, "max": 9}},
        ),
    ],
)
def test_valid_workloads_parse(fields: dict[str, Any]) -> None:
    assert isinstance(Scenario(workload=fields).workload, WorkloadSpec)


@pytest.mark.parametrize(
    "spec",
    [
        {"dist": "fixed", "value": 1},
        {"dist": "uniform", "min": 3, "max": 3},
        {"dist": "exponential", "mean": 0.5},
        {"dist": "lognormal", "mean": 512, "sigma": 0.8, "max": 4096},
        {"dist": "empirical", "dataset": "arxiv"},
    ],
)
def test_each_length_distribution_parses(spec: dict[str, Any]) -> None:
    assert LengthSpec.model_validate(spec).dist == spec["dist"]


def test_token_count_is_shorthand_for_fixed_length() -> None:
    spec = SharedPrefixSpec.model_validate(SHARED)
    assert spec.output_tokens == LengthSpec(dist="fixed", value=256)
    assert spec.num_prompts == 8 * 32


def test_specs_are_frozen_and_hashable() -> None:
    spec = Scenario(workload=workload(arrivals=None, stages=[{"rate_per_s": 2, "duration_s": 6}]))
    assert hash(spec.workload) == hash(spec.workload.model_copy())
    with pytest.raises(ValidationError):
        spec.workload.num_requests = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("fields", "names"),
    [
        (workload(arrivals={"rate_per_s": 1, "burst": 2}), ["workload.arrivals.burst", "Extra"]),
        (workload(colour="red"), ["workload.colour"]),
        (workload(arrivals={"rate_per_s": -1}), ["workload.arrivals.rate_per_s", "greater than"]),
        (workload(num_requests=0), ["workload.num_requests"]),
        (
            workload(lengths={"input": {"dist": "uniform", "min": 9, "max": 3}, "output": 1}),
            ["workload.lengths.input", "min=9", "max=3"],
        ),
        (
            workload(lengths={"input": {"dist": "fixed", "value": 0}, "output": 1}),
            ["workload.lengths.input.value"],
        ),
        (
            workload(lengths={"input": {"dist": "exponential", "mean": 0}, "output": 1}),
            ["workload.lengths.input.mean"],
        ),
        (
            workload(lengths={"input": 5, "output": {"dist": "lognormal", "mean": 4}}),
            ["workload.lengths.output", "needs sigma"],
        ),
        (
            workload(lengths={"input": {"dist": "fixed", "value": 3, "max": 9}, "output": 1}),
            ["workload.lengths.input", "max not used by dist 'fixed'"],
        ),
        (
            workload(lengths={"input": {"dist": "empirical", "dataset": "imdb"}, "output": 1}),
            ["workload.lengths.input.dataset", "sharegpt"],
        ),
        (workload(shared_prefix=SHARED), ["workload", "exactly one of lengths", "shared_prefix"]),
        (workload(lengths=None), ["workload", "exactly one of lengths"]),
        (workload(arrivals=None), ["workload", "no arrival rate", "rate_per_s"]),
        (workload(arrivals={"process": "constant"}), ["workload", "arrivals.rate_per_s"]),
        (
            workload(stages=[{"rate_per_s": 2, "duration_s": 9}]),
            ["workload", "arrivals.rate_per_s", "stages"],
        ),
        (
            workload(arrivals=None, stages=[{"rate_per_s": 0, "duration_s": 9}]),
            ["workload", "stages", "rate_per_s 0"],
        ),
        (
            workload(arrivals=None, stages=[{"rate_per_s": 1, "duration_s": 9}], duration_s=5),
            ["workload", "duration_s", "stages"],
        ),
        (
            workload(arrivals={"process": "all_at_once"}, num_requests=None, duration_s=60),
            ["workload", "duration_s", "num_requests"],
        ),
        (
            workload(arrivals={"process": "all_at_once", "rate_per_s": 3}),
            ["workload.arrivals", "rate_per_s"],
        ),
        (workload(arrivals={"process": "gamma", "rate_per_s": 1}), ["workload.arrivals", "cv"]),
        (workload(arrivals={"rate_per_s": 1, "cv": 2}), ["workload.arrivals", "cv=2.0", "gamma"]),
        (
            workload(arrivals={"process": "gamma", "rate_per_s": 1, "cv": 0}),
            ["workload.arrivals.cv"],
        ),
        (workload(num_requests=None), ["workload", "no size", "num_requests", "duration_s"]),
    ],
)
def test_mistakes_name_the_field(fields: dict[str, Any], names: list[str]) -> None:
    text = error_text(fields)
    for name in names:
        assert name in text


def test_cross_field_mistakes_carry_a_scenario_error() -> None:
    with pytest.raises(ValidationError) as caught:
        Scenario(workload=workload(lengths=None))
    (error,) = caught.value.errors()
    assert error["loc"] == ("workload",)
    assert isinstance(error["ctx"]["error"], ScenarioError)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"lengths": {"input": 10, "output": 10}}, "remove classes"),
        ({"classes": [{"name": "a", "share": 1, "lengths": {"input": 1, "output": 1}},
                      {"name": "a", "share": 2, "lengths": {"input": 1, "output": 1}}]},
         "must be unique"),
        ({"classes": [{"name": "a", "share": 0, "lengths": {"input": 1, "output": 1}}]},
         "share"),
    ],
)
def test_bad_class_mixes_are_named(change: dict, message: str) -> None:
    data = {"arrivals": {"process": "poisson", "rate_per_s": 1}, "num_requests": 10,
            "classes": [{"name": "chat", "share": 1, "lengths": {"input": 5, "output": 5}}],
            **change}
    with pytest.raises((ScenarioError, ValidationError), match=message):
        WorkloadSpec.model_validate(data)
