"""Runs a workload through a pool of replicas in SimPy and collects the results.

The only module that builds a SimPy environment: arrivals are one process, each replica's step
loop another. Nothing here plots, prints or writes files.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import simpy

from sim.batching_policy import BatchingPolicy
from sim.block_pool import BlockPool
from sim.contiguous_scheduler import ContiguousScheduler
from sim.errors import ScenarioError
from sim.latency_model import LatencyModel
from sim.prefix_hash import shared_block_hashes, trace_block_hashes
from sim.record import RequestRecord, records_frame
from sim.replica import ArrivalClock, Replica
from sim.request import Request
from sim.router import make_router
from sim.scheduler import ContinuousScheduler, SchedulerLimits
from sim.slot_pool import SlotPool
from sim.static_scheduler import StaticScheduler
from sim.workload import Workload

_NAN = float("nan")
_PROGRESS_EVERY = 2048  # arrivals between progress callbacks


@dataclass(frozen=True)
class EngineSetup:
    """Everything one pool of identical replicas needs, already resolved from catalogs."""

    limits: SchedulerLimits
    num_gpu_blocks: int
    prefix_caching: bool
    max_model_len: int
    latency: LatencyModel
    replicas: int = 1
    router: str = "round_robin"
    # Plan runs of identical decode steps at once. Off = one event per step: slower, and kept
    # so tests can prove both modes give the same records.
    macro_steps: bool = True
    # How KV memory is handed out: "paged" blocks as tokens arrive, or "contiguous" slots
    # reserved for each request's maximum length when it is admitted.
    kv_allocation: str = "paged"
    # Request-level batching (static or dynamic batches); None = iteration-level scheduling.
    batching: BatchingPolicy | None = None

    def __post_init__(self) -> None:
        capacity = self.num_gpu_blocks * self.limits.block_size
        if self.max_model_len > capacity:
            # vLLM refuses to start here too: one full-length request could never fit.
            raise ScenarioError(
                f"engine.max_model_len {self.max_model_len} exceeds the KV cache "
                f"({self.num_gpu_blocks} blocks x {self.limits.block_size} = {capacity} tokens): "
                "lower engine.max_model_len or give the cache more memory"
            )


@dataclass
class SimulationResult:
    records: pd.DataFrame
    steps: pd.DataFrame
    itl_durations_s: np.ndarray
    itl_weights: np.ndarray
    num_gpu_blocks: int
    replicas: int
    preemptions: int
    lookup_tokens: int
    hit_tokens: int
    truncated_outputs: int  # cut at max_model_len
    capped_outputs: int = 0  # cut at the request's max_tokens
    output_tokens_saved: int = 0  # tokens the caps above kept from being generated
    rejected_reasons: dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0

    @property
    def prefix_cache_hit_rate(self) -> float:
        return self.hit_tokens / self.lookup_tokens if self.lookup_tokens else 0.0


def simulate(
    setup: EngineSetup,
    workload: Workload | Iterable[Workload],
    progress: Callable[[int, int], None] | None = None,
) -> SimulationResult:
    """Simulate ``workload`` to completion (every admitted request finishes).

    A workload may come as consecutive chunks (a streamed trace): they are read one at a time,
    so memory holds one chunk and the requests in flight, not the whole trace.
    """
    wall_start = time.perf_counter()
    env = simpy.Environment()
    records: list[RequestRecord] = []

    def on_finish(r: Request, finish_s: float) -> None:
        records.append(
            RequestRecord(
                r.rid, r.replica, "completed", r.arrival_s, r.first_scheduled_s,
                r.first_token_s, finish_s, r.prompt_tokens, r.num_output, r.cached_tokens,
                r.preemptions, r.trace_id,
            )
        )

    clock = ArrivalClock()
    replicas = [
        Replica(env, i, _scheduler(setup), setup.latency, on_finish, clock, setup.macro_steps)
        for i in range(setup.replicas)
    ]
    counters = {"truncated": 0, "capped": 0, "saved": 0}
    rejected: dict[str, int] = {}
    env.process(
        _arrivals(env, workload, setup, replicas, clock, records, counters, rejected, progress)
    )
    env.run()
    steps = _steps_frame(replicas)
    durations, weights = _itl(replicas)
    schedulers = [r.scheduler for r in replicas]
    return SimulationResult(
        records=records_frame(records),
        steps=steps,
        itl_durations_s=durations,
        itl_weights=weights,
        num_gpu_blocks=setup.num_gpu_blocks,
        replicas=setup.replicas,
        preemptions=sum(s.num_preemptions for s in schedulers),
        lookup_tokens=sum(s.lookup_tokens for s in schedulers),
        hit_tokens=sum(s.hit_tokens for s in schedulers),
        truncated_outputs=counters["truncated"],
        capped_outputs=counters["capped"],
        output_tokens_saved=counters["saved"],
        rejected_reasons=rejected,
        wall_s=time.perf_counter() - wall_start,
    )


def _scheduler(setup: EngineSetup) -> ContinuousScheduler | StaticScheduler:
    blocks, block_size = setup.num_gpu_blocks, setup.limits.block_size
    if setup.batching is not None:
        return StaticScheduler(setup.batching, num_blocks=blocks, block_size=block_size,
                               paged=setup.kv_allocation == "paged")
    if setup.kv_allocation == "contiguous":
        return ContiguousScheduler(setup.limits, SlotPool(blocks, block_size))
    return ContinuousScheduler(setup.limits, BlockPool(blocks, caching=setup.prefix_caching))


def _arrivals(env, workload, setup, replicas, clock, records, counters, rejected, progress):
    router = make_router(setup.router)
    max_len = setup.max_model_len
    chunks = [workload] if isinstance(workload, Workload) else workload
    total = len(workload) if isinstance(workload, Workload) else 0  # 0: unknown (streamed)
    rid = 0
    for chunk in chunks:
        for arrival, prompt, output, cap, trace_id, hashes in _rows(chunk, rid, setup):
            if arrival > env.now:
                clock.next_s = arrival
                target = router.peek(replicas)
                clock.next_replica = target.index if target is not None else None
                yield env.timeout(arrival - env.now)
            if progress is not None and rid % _PROGRESS_EVERY == 0:
                progress(rid, total)
            reason = _rejection(prompt, max_len)
            if reason:
                rejected[reason] = rejected.get(reason, 0) + 1
                records.append(RequestRecord(
                    rid, -1, "rejected", arrival, _NAN, _NAN, _NAN, prompt, 0, 0, 0, trace_id
                ))
            else:
                request = Request(
                    rid=rid,
                    arrival_s=arrival,
                    prompt_tokens=prompt,
                    output_tokens=_capped_output(prompt, output, cap, max_len, counters),
                    block_hashes=hashes,
                    trace_id=trace_id,
                    reserve_tokens=min(prompt + cap, max_len) if cap else max_len,
                )
                router.pick(replicas).submit(request)
            rid += 1
    clock.next_s = float("inf")
    if progress is not None:
        progress(rid, max(total, rid))


def _rows(chunk: Workload, first_rid: int, setup: EngineSetup) -> Iterator[tuple]:
    """Per request: arrival, prompt, output, max_tokens, trace id and prefix block hashes."""
    n = len(chunk)
    block_size = setup.limits.block_size
    prompts = chunk.input_tokens.tolist()
    trace_ids = (chunk.trace_ids.tolist() if chunk.trace_ids is not None
                 else [str(first_rid + i) for i in range(n)])
    if not setup.prefix_caching:
        hashes = [()] * n
    elif chunk.prefix_ids is not None:
        hashes = [trace_block_hashes(list(ids), chunk.prefix_id_tokens, p, block_size)
                  for ids, p in zip(chunk.prefix_ids, prompts)]
    else:
        hashes = [shared_block_hashes(k, t, block_size)
                  for k, t in zip(chunk.prefix_key.tolist(), chunk.prefix_tokens.tolist())]
    return zip(chunk.arrival_s.tolist(), prompts, chunk.output_tokens.tolist(),
               chunk.max_tokens.tolist(), trace_ids, hashes)


def _rejection(prompt: int, max_model_len: int) -> str:
    return "prompt_exceeds_max_model_len" if prompt >= max_model_len else ""


def _capped_output(prompt: int, output: int, max_tokens: int, max_model_len: int,
                   counters: dict[str, int]) -> int:
    """The reply length after the request's max_tokens and the context limit, counted."""
    wanted = output
    if max_tokens and output > max_tokens:
        output = max_tokens
        counters["capped"] += 1
    if prompt + output > max_model_len:  # generation stops at the context limit
        output = max_model_len - prompt
        counters["truncated"] += 1
    counters["saved"] += wanted - output
    return output


def _steps_frame(replicas: list[Replica]) -> pd.DataFrame:
    frames = []
    for replica in replicas:
        frame = replica.log.frame()
        frame.insert(0, "replica", replica.index)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _itl(replicas: list[Replica]) -> tuple[np.ndarray, np.ndarray]:
    parts = [replica.log.itl_samples() for replica in replicas]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
