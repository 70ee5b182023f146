"""Runs a workload through a pool of replicas in SimPy and collects the results.

The only module that builds a SimPy environment: arrivals are one process, each replica's step
loop another. Nothing here plots, prints or writes files.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import simpy

from sim.engine.batching_policy import BatchingPolicy
from sim.engine.block_pool import BlockPool
from sim.engine.contiguous_scheduler import ContiguousScheduler
from sim.engine.errors import ScenarioError
from sim.engine.latency_model import LatencyModel
from sim.engine.replica import ArrivalClock, Replica
from sim.engine.request import Request
from sim.engine.scheduler import ContinuousScheduler, SchedulerLimits
from sim.engine.slot_pool import SlotPool
from sim.engine.static_scheduler import StaticScheduler
from sim.engine.step_log import StepLog, expand_pieces, steps_frame
from sim.engine.step_totals import StepTotals
from sim.fleet.gateway import GatewayPolicy
from sim.fleet.intake import ClosedLoop, Conversations, Intake, open_loop
from sim.fleet.record import RecordLog, RequestRecord
from sim.fleet.record_digest import RecordDigest
from sim.fleet.record_stream import RecordStream
from sim.workload.session_workload import SessionWorkload
from sim.workload.workload import Workload

_GC_ALLOCATIONS = 50_000  # allocations between collections of the youngest generation



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
    gateway: GatewayPolicy | None = None  # micro-batching in front of the replicas
    cpu_blocks: int = 0  # KV blocks of host memory behind each replica's GPU cache

    def __post_init__(self) -> None:
        capacity = self.num_gpu_blocks * self.limits.block_size
        if self.max_model_len > capacity:
            # vLLM refuses to start here too: one full-length request could never fit.
            raise ScenarioError(
                f"engine.max_model_len {self.max_model_len} exceeds the KV cache "
                f"({self.num_gpu_blocks} blocks x {self.limits.block_size} = {capacity} tokens): "
                "lower engine.max_model_len or give the cache more memory"
            )


@dataclass(frozen=True)
class StreamedTotals:
    """What a streamed run kept instead of its record and step tables: the records went to a
    file, the rest into sums and histograms (the inter-token durations without the client's
    per-token streaming cost, ``itl_offset_s``, which every gap adds)."""

    records_path: str
    records: RecordDigest
    steps: StepTotals
    itl_offset_s: float


@dataclass
class SimulationResult:
    # None in a streamed run (see ``streamed``)
    records: pd.DataFrame | None
    steps: pd.DataFrame | None
    # decode steps as linear pieces, rows (first duration, slope, count, sequences decoding):
    # the inter-token latencies without a row per step (sim.results.piece_distribution)
    itl_pieces: np.ndarray
    num_gpu_blocks: int
    replicas: int
    preemptions: int
    lookup_tokens: int
    hit_tokens: int  # prompt tokens served from the prefix cache, both tiers
    cpu_hit_tokens: int  # of those, loaded from host memory
    truncated_outputs: int  # cut at max_model_len
    capped_outputs: int = 0  # cut at the request's max_tokens
    output_tokens_saved: int = 0  # tokens the caps above kept from being generated
    rejected_reasons: dict[str, int] = field(default_factory=dict)
    gateway_hold_s: np.ndarray = field(default_factory=lambda: np.empty(0))  # per request held
    gateway_groups: int = 0  # groups released to replicas (requests, without a gateway)
    wall_s: float = 0.0
    streamed: StreamedTotals | None = None  # a streamed run's totals, in place of its tables

    @property
    def itl_durations_s(self) -> np.ndarray:
        """Every decode step's duration (one entry per step: large for long runs)."""
        return expand_pieces(self.itl_pieces)[0]

    @property
    def itl_weights(self) -> np.ndarray:
        """Sequences that got a token in each step of ``itl_durations_s``."""
        return expand_pieces(self.itl_pieces)[1]

    @property
    def prefix_cache_hit_rate(self) -> float:
        return self.hit_tokens / self.lookup_tokens if self.lookup_tokens else 0.0


def simulate(
    setup: EngineSetup,
    workload: Workload | Iterable[Workload] | SessionWorkload,
    progress: Callable[[int, int], None] | None = None,
    stream: RecordStream | None = None,
) -> SimulationResult:
    """Simulate ``workload`` to completion (every admitted request finishes).

    A workload may come as consecutive chunks (a streamed trace): they are read one at a time,
    so memory holds one chunk and the requests in flight, not the whole trace. A session
    workload sends its conversations' turns as their replies end. With a ``stream`` the
    records are written to its file and the steps kept as totals (``StreamedTotals``), so
    memory does not grow with the number of requests either.
    """
    with _fewer_collections():
        return _simulate(setup, workload, progress, stream)


@contextmanager
def _fewer_collections():
    """A run allocates millions of short-lived tuples and makes few reference cycles, so
    Python's default (a collection every 700 allocations, each re-scanning the engine's live
    state) costs a tenth of a run; collect less often while it runs, and restore after."""
    old = gc.get_threshold()
    gc.set_threshold(max(old[0], _GC_ALLOCATIONS), *old[1:])
    try:
        yield
    finally:
        gc.set_threshold(*old)


def _simulate(
    setup: EngineSetup,
    workload: Workload | Iterable[Workload] | SessionWorkload,
    progress: Callable[[int, int], None] | None,
    stream: RecordStream | None,
) -> SimulationResult:
    wall_start = time.perf_counter()
    env = simpy.Environment()
    records = RecordLog(stream)
    closed: ClosedLoop | None = None
    conversations: Conversations | None = None

    # What a streaming client waits for outside the engine: HTTP and tokenization before the
    # request reaches it (a constant shift of every arrival, which leaves the engine's
    # schedule as it is), and detokenization and streaming of every output token.
    ingest_s = setup.latency.request_overhead_s
    per_token_s = setup.latency.output_token_overhead_s

    def on_finish(r: Request, finish_s: float) -> None:
        records.append(
            RequestRecord(
                r.rid, r.replica, "completed", r.arrival_s, r.first_scheduled_s + ingest_s,
                r.first_token_s + ingest_s + per_token_s,
                finish_s + ingest_s + per_token_s * r.num_output, r.prompt_tokens,
                r.num_output, r.cached_tokens, r.preemptions, r.trace_id, r.endpoint,
                r.session, r.turn,
            )
        )
        if closed is not None:
            closed.send_next()
        if conversations is not None:
            conversations.reply_ended(r)

    clock = ArrivalClock()
    # with open-loop arrivals the arrival process drives the replicas (sim.engine.replica)
    open_loop_arrivals = not (isinstance(workload, SessionWorkload)
                              or isinstance(workload, Workload) and workload.concurrency)
    driven = open_loop_arrivals and setup.macro_steps and setup.batching is None
    replicas = [
        Replica(env, i, _scheduler(setup), setup.latency, on_finish, clock, setup.macro_steps,
                driven, StepLog(StepTotals()) if stream is not None else None)
        for i in range(setup.replicas)
    ]
    intake = Intake(replicas, setup.router, setup.max_model_len, setup.limits.block_size,
                    setup.prefix_caching, records, progress)
    if isinstance(workload, SessionWorkload):
        if setup.gateway is not None:
            raise ScenarioError("a gateway cannot hold the turns of a session workload")
        conversations = Conversations(env, intake, workload, clock)
        conversations.start()
    elif isinstance(workload, Workload) and workload.concurrency:
        if setup.gateway is not None:
            raise ScenarioError("a gateway cannot hold requests of a closed-loop workload")
        closed = ClosedLoop(env, intake, intake.rows(workload), workload.concurrency, clock)
        closed.start()
    else:
        env.process(open_loop(env, intake, intake.rows(workload), clock, setup.gateway))
    env.run()
    if progress is not None:
        progress(intake.rows_seen, max(intake.total, intake.rows_seen))
    streamed = None
    if stream is None:
        frame, steps = records.frame(), _steps_frame(replicas)
        itl = np.concatenate([replica.log.itl_pieces() for replica in replicas])
        itl[:, 0] += per_token_s  # every gap carries one more token's streaming
    else:
        records.close_stream()
        frame = steps = None
        itl = np.empty((0, 4))
        totals = StepTotals()
        for replica in replicas:
            totals.merge(replica.log.close_totals())
        streamed = StreamedTotals(str(stream.path), stream.digest, totals, per_token_s)
    schedulers = [r.scheduler for r in replicas]
    return SimulationResult(
        records=frame,
        steps=steps,
        itl_pieces=itl,
        num_gpu_blocks=setup.num_gpu_blocks,
        replicas=setup.replicas,
        preemptions=sum(s.num_preemptions for s in schedulers),
        lookup_tokens=sum(s.lookup_tokens for s in schedulers),
        hit_tokens=sum(s.hit_tokens for s in schedulers),
        cpu_hit_tokens=sum(s.cpu_hit_tokens for s in schedulers),
        truncated_outputs=intake.truncated,
        capped_outputs=intake.capped,
        output_tokens_saved=intake.saved,
        rejected_reasons=intake.rejected,
        gateway_hold_s=np.asarray(intake.hold_s),
        gateway_groups=intake.groups,
        wall_s=time.perf_counter() - wall_start,
        streamed=streamed,
    )


def _scheduler(setup: EngineSetup) -> ContinuousScheduler | StaticScheduler:
    blocks, block_size = setup.num_gpu_blocks, setup.limits.block_size
    if setup.batching is not None:
        return StaticScheduler(setup.batching, num_blocks=blocks, block_size=block_size,
                               paged=setup.kv_allocation == "paged")
    if setup.kv_allocation == "contiguous":
        return ContiguousScheduler(setup.limits, SlotPool(blocks, block_size))
    pool = BlockPool(blocks, caching=setup.prefix_caching, cpu_blocks=setup.cpu_blocks)
    return ContinuousScheduler(setup.limits, pool)


def _steps_frame(replicas: list[Replica]) -> pd.DataFrame:
    return steps_frame([replica.log for replica in replicas])
