"""Length distributions: the right mean, caps respected, at least one token, datasets intact."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.workload.length_dist import dataset_table, sample_input_output, sample_lengths
from sim.workload.workload_spec import LengthsSpec, LengthSpec

N = 100_000


def rng(seed: int = 11) -> np.random.Generator:
    return np.random.default_rng(seed)


def sample(n: int = N, seed: int = 11, **spec: Any) -> np.ndarray:
    return sample_lengths(LengthSpec(**spec), n, rng(seed), role="output")


def test_fixed_is_exact() -> None:
    tokens = sample(n=5, dist="fixed", value=512)
    assert tokens.dtype == np.int64
    assert tokens.tolist() == [512] * 5


def test_uniform_covers_both_ends_with_the_midpoint_mean() -> None:
    tokens = sample(dist="uniform", min=10, max=20)
    assert tokens.min() == 10 and tokens.max() == 20
    assert tokens.mean() == pytest.approx(15, rel=0.01)


def test_exponential_keeps_its_mean_and_respects_the_cap() -> None:
    assert sample(dist="exponential", mean=128).mean() == pytest.approx(128, rel=0.02)
    capped = sample(dist="exponential", mean=128, max=100)
    assert capped.max() == 100 and capped.min() >= 1


def test_lognormal_mean_is_the_mean_in_tokens() -> None:
    tokens = sample(dist="lognormal", mean=512, sigma=0.5)
    assert tokens.mean() == pytest.approx(512, rel=0.02)
    assert sample(dist="lognormal", mean=512, sigma=2.0, max=4096).max() == 4096


def test_same_seed_same_lengths() -> None:
    spec = {"dist": "lognormal", "mean": 300, "sigma": 1.0}
    np.testing.assert_array_equal(sample(n=50, **spec), sample(n=50, **spec))


@pytest.mark.parametrize("name", ["sharegpt", "arxiv"])
def test_bundled_datasets_are_whole_positive_token_counts(name: str) -> None:
    table = dataset_table(name)  # type: ignore[arg-type]
    assert list(table.columns) == ["num_prefill_tokens", "num_decode_tokens"]
    assert len(table) > 25_000
    assert (table.to_numpy() >= 1).all()


def test_empirical_sharegpt_reproduces_the_dataset_means() -> None:
    table = dataset_table("sharegpt")
    spec = LengthSpec(dist="empirical", dataset="sharegpt")
    inputs = sample_lengths(spec, N, rng(), role="input")
    outputs = sample_lengths(spec, N, rng(), role="output")
    # The dataset's own standard deviations give ~0.7% (input) and ~0.5% (output) standard errors.
    assert inputs.mean() == pytest.approx(table["num_prefill_tokens"].mean(), rel=0.03)
    assert outputs.mean() == pytest.approx(table["num_decode_tokens"].mean(), rel=0.03)


def test_same_dataset_on_both_sides_samples_whole_rows() -> None:
    empirical = LengthSpec(dist="empirical", dataset="sharegpt")
    inputs, outputs = sample_input_output(LengthsSpec(input=empirical, output=empirical), N, rng())
    rows = set(dataset_table("sharegpt").itertuples(index=False, name=None))
    pairs = set(zip(inputs.tolist(), outputs.tolist()))
    assert pairs <= rows


def test_joint_sampling_applies_each_sides_cap() -> None:
    lengths = LengthsSpec(
        input=LengthSpec(dist="empirical", dataset="arxiv", max=1000),
        output=LengthSpec(dist="empirical", dataset="arxiv", max=100),
    )
    inputs, outputs = sample_input_output(lengths, 10_000, rng())
    assert inputs.max() == 1000 and outputs.max() == 100


def test_different_sources_sample_each_side_on_its_own() -> None:
    lengths = LengthsSpec(
        input=LengthSpec(dist="empirical", dataset="arxiv"),
        output=LengthSpec(dist="fixed", value=7),
    )
    inputs, outputs = sample_input_output(lengths, 1000, rng())
    assert set(inputs.tolist()) <= set(dataset_table("arxiv")["num_prefill_tokens"].tolist())
    assert outputs.tolist() == [7] * 1000


length_specs = st.one_of(
    st.builds(lambda v: LengthSpec(dist="fixed", value=v), st.integers(1, 10_000)),
    st.tuples(st.integers(1, 5_000), st.integers(0, 5_000)).map(
        lambda lo_span: LengthSpec(dist="uniform", min=lo_span[0], max=lo_span[0] + lo_span[1])
    ),
    st.builds(
        lambda mean, cap: LengthSpec(dist="exponential", mean=mean, max=cap),
        st.floats(0.01, 1e5),
        st.none() | st.integers(1, 10_000),
    ),
    st.builds(
        lambda mean, sigma, cap: LengthSpec(dist="lognormal", mean=mean, sigma=sigma, max=cap),
        st.floats(0.01, 1e5),
        st.floats(0.01, 3),
        st.none() | st.integers(1, 10_000),
    ),
    st.builds(
        lambda name, cap: LengthSpec(dist="empirical", dataset=name, max=cap),
        st.sampled_from(["sharegpt", "arxiv"]),
        st.none() | st.integers(1, 10_000),
    ),
)


@settings(max_examples=100, deadline=None)
@given(spec=length_specs, role=st.sampled_from(["input", "output"]), seed=st.integers(0, 2**32))
def test_lengths_are_whole_tokens_within_bounds(spec: LengthSpec, role: str, seed: int) -> None:
    tokens = sample_lengths(spec, 500, rng(seed), role=role)  # type: ignore[arg-type]
    assert tokens.dtype == np.int64 and len(tokens) == 500
    assert tokens.min() >= (spec.min or 1)
    if spec.max is not None:
        assert tokens.max() <= spec.max
