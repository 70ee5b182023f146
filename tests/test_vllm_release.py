"""vLLM release defaults: which behaviours and limits a scenario gets when it leaves them out."""

from __future__ import annotations

import pytest

from sim.config.deployment import engine_with_defaults, resolve
from sim.config.scenario import EngineSpec, parse_scenario
from sim.config.vllm_release import release_for
from sim.engine.errors import ScenarioError
from sim.engine.gpu import load_gpu
from sim.fleet.simulation import simulate
from sim.workload.workload import Workload
from tests.helpers import LinearLatency, make_setup


def test_a_version_uses_the_newest_release_entry_at_or_below_it() -> None:
    assert release_for("0.15.1").version == "0.14.0"
    assert release_for("v0.14").version == "0.14.0"
    assert release_for("0.13.9").version == "0.12.0"
    assert release_for("1.2").version == "0.21.0"


@pytest.mark.parametrize("bad", ["0.7.3", "latest", "1.2.3.4", ""])
def test_a_bad_or_too_old_version_names_the_field_and_the_fix(bad: str) -> None:
    document = {"model": "llama-3.1-8b", "hardware": {"gpu": "h100-sxm"},
                "engine": {"vllm_version": bad},
                "workload": {"arrivals": {"process": "all_at_once"}, "num_requests": 1,
                             "lengths": {"input": 10, "output": 1}}}
    with pytest.raises(ScenarioError, match=r"engine.vllm_version.*(0\.8\.0|e\.g\.)"):
        parse_scenario(document)


def test_async_scheduling_is_on_by_default_from_0_14_and_never_on_a_cpu() -> None:
    h100, cpu = load_gpu("h100-sxm"), load_gpu("x86-cpu-2c")
    assert engine_with_defaults(EngineSpec(vllm_version="0.13.0"), h100).async_scheduling is False
    assert engine_with_defaults(EngineSpec(vllm_version="0.14.0"), h100).async_scheduling is True
    assert engine_with_defaults(EngineSpec(), cpu).async_scheduling is False
    assert engine_with_defaults(EngineSpec(), cpu).enforce_eager is True
    # a setting given is kept, whatever the release does
    given = EngineSpec(vllm_version="0.10.0", async_scheduling=True)
    assert engine_with_defaults(given, h100).async_scheduling is True


@pytest.mark.parametrize(("gpu", "seqs", "tokens"), [
    ("h100-sxm", 1024, 8192),  # 80 GB, not an A100
    ("h200", 1024, 8192),
    ("a100-80gb", 256, 2048),  # vLLM leaves the A100 out of the large defaults
    ("l4", 256, 2048),
    ("x86-cpu-2c", 128, 2048),  # the CPU backend's own
])
def test_batch_limits_left_out_take_vllm_serve_defaults_for_the_gpu(
        gpu: str, seqs: int, tokens: int) -> None:
    engine = engine_with_defaults(EngineSpec(), load_gpu(gpu))
    assert (engine.max_num_seqs, engine.max_num_batched_tokens) == (seqs, tokens)


def test_given_limits_are_checked_together_with_the_defaults() -> None:
    with pytest.raises(ScenarioError, match="max_num_batched_tokens"):
        engine_with_defaults(EngineSpec(max_num_batched_tokens=512), load_gpu("h100-sxm"))


def test_cuda_graph_capture_sizes_follow_the_release() -> None:
    sizes = release_for("0.15.1").cuda_graph_sizes(max_num_seqs=1024, max_num_batched_tokens=8192)
    assert len(sizes) == 51  # [1, 2, 4], 8..248 by 8, 256..512 by 16
    assert sizes[:5] == (1, 2, 4, 8, 16) and sizes[-3:] == (480, 496, 512)
    # twice max_num_seqs, and never above the token budget
    assert release_for("0.15.1").cuda_graph_sizes(64, 8192)[-1] == 128
    assert release_for("0.15.1").cuda_graph_sizes(1024, 100)[-1] == 96
    # before 0.12 every size was a multiple of 8 up to the top
    old = release_for("0.11.0").cuda_graph_sizes(1024, 8192)
    assert old[-2:] == (504, 512) and len(old) == 3 + 64


def test_a_scenario_reports_the_engine_settings_that_took_effect() -> None:
    deployment = resolve(parse_scenario({
        "model": "llama-3.1-8b", "hardware": {"gpu": "h100-sxm"},
        "workload": {"arrivals": {"process": "poisson", "rate_per_s": 1}, "num_requests": 2,
                     "lengths": {"input": 100, "output": 10}},
    }))
    limits = deployment.setup.limits
    assert (limits.max_num_seqs, limits.max_num_batched_tokens) == (1024, 8192)
    assert limits.async_scheduling and not limits.whole_prompt_admission
    assert deployment.engine.vllm_version == "0.15.1"
    assert deployment.scenario.engine.max_num_seqs is None  # the file as written is kept


@pytest.mark.parametrize(("whole_prompt", "b_scheduled_s"), [(False, 0.010), (True, 0.200)])
def test_whole_prompt_admission_waits_until_the_whole_prompt_fits(
        whole_prompt: bool, b_scheduled_s: float) -> None:
    # 6 blocks of 16 tokens, a 32-token budget, 10 ms steps. A (32 prompt tokens, 20 outputs)
    # holds 3 blocks once it decodes (4 later). B (64 tokens = 4 blocks) arrives at 5 ms: its
    # first chunk (31 tokens, 2 blocks) fits beside A at 10 ms; its whole prompt fits only when
    # A has finished, after its 20th step, at 200 ms.
    setup = make_setup(latency=LinearLatency(base=0.010, per_token=0.0), num_gpu_blocks=6,
                       max_num_batched_tokens=32, max_num_seqs=2,
                       whole_prompt_admission=whole_prompt)
    workload = Workload.from_arrays([0.0, 0.005], [32, 64], [20, 1])
    records = simulate(setup, workload).records
    assert records.iloc[1].first_scheduled_s == pytest.approx(b_scheduled_s, abs=1e-12)
