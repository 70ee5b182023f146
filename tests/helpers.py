"""Small building blocks for engine tests: a latency model with round numbers, and setups."""

from __future__ import annotations

from sim.engine.batch import Batch
from sim.engine.batching_policy import BatchingPolicy
from sim.engine.scheduler import SchedulerLimits
from sim.engine.step_series import StepSeries
from sim.fleet.gateway import GatewayPolicy
from sim.fleet.simulation import EngineSetup


class LinearLatency:
    """step = base + per_token * tokens + per_context * decode context (seconds).

    Simple enough that a test can compute a timeline by hand, and shaped like the real model
    (a decode run's durations grow linearly), so both engine modes can be compared on it.
    """

    # no costs outside the engine: a record's times are the engine's own
    request_overhead_s = output_token_overhead_s = 0.0

    def __init__(self, base: float = 0.010, per_token: float = 0.001, per_context: float = 0.0):
        self.base, self.per_token, self.per_context = base, per_token, per_context

    def step_time(self, batch: Batch, overlapped: bool = True) -> float:
        tokens = batch.prefill_tokens + batch.decode_seqs
        return self.base + self.per_token * tokens + self.per_context * batch.decode_context_tokens

    def decode_run(self, num_seqs: int, first_context: int, num_steps: int) -> StepSeries:
        a = self.per_token * num_seqs + self.per_context * first_context
        return StepSeries.of_lines(
            self.base, a, self.per_context * num_seqs, 0.0, 0.0, num_steps
        )


def make_setup(
    *,
    num_gpu_blocks: int = 1000,
    block_size: int = 16,
    max_num_seqs: int = 256,
    max_num_batched_tokens: int = 2048,
    chunked_prefill: bool = True,
    prefix_caching: bool = True,
    max_model_len: int | None = None,
    latency: object | None = None,
    replicas: int = 1,
    router: str = "round_robin",
    macro_steps: bool = True,
    kv_allocation: str = "paged",
    batching: BatchingPolicy | None = None,
    gateway: GatewayPolicy | None = None,
    async_scheduling: bool = False,
    whole_prompt_admission: bool = False,
) -> EngineSetup:
    return EngineSetup(
        limits=SchedulerLimits(max_num_seqs, max_num_batched_tokens, block_size, chunked_prefill,
                               async_scheduling, whole_prompt_admission),
        num_gpu_blocks=num_gpu_blocks,
        prefix_caching=prefix_caching,
        max_model_len=max_model_len or num_gpu_blocks * block_size,
        latency=latency or LinearLatency(),  # type: ignore[arg-type]
        replicas=replicas,
        router=router,
        macro_steps=macro_steps,
        kv_allocation=kv_allocation,
        batching=batching,
        gateway=gateway,
    )


def banded_profile(folder, seen=(0.8, 1.3), unseen=(0.6, 1.8)) -> str:
    """A per-operator profile file with fixed coefficients (the fit's starting priors, so
    results do not move when the shipped profile is refitted), trained on Llama-3.1-8B on one
    H100, with a made-up error band: ``seen`` factors on that GPU, ``unseen`` elsewhere."""
    import dataclasses
    from pathlib import Path

    import yaml

    from calibrate.operator_fit import NEUTRAL_START

    def table(pair):
        stats = {"mean": list(pair), "p95": list(pair), "p99": list(pair)}
        return {"ttft_ms": stats, "tpot_ms": stats, "itl_ms": {"mean": list(pair)},
                "e2e_ms": stats}

    path = Path(folder) / "banded.yaml"
    path.write_text(yaml.safe_dump({
        "name": "banded", "form": "operators",
        "coefficients": dataclasses.asdict(NEUTRAL_START),
        "training_data": {"models": ["llama-3.1-8b"], "gpus": ["h100-sxm"],
                          "tensor_parallel": [1]},
        "error_band": {"basis": "test band", "seen_gpu": table(seen),
                       "unseen_gpu": table(unseen)},
    }))
    return str(path)
