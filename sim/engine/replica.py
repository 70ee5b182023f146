"""One model replica as a SimPy process: a step loop that sleeps when there is nothing to do.

Nothing outside a replica can change what it does until the next request arrives (replicas do
not talk to each other, and the router only looks at them when a request arrives). So the loop
runs every step that ends before the next arrival without handing control back to SimPy, and
only waits in SimPy time for a step during which a request arrives, so the router sees the
replica as it is mid-step. A run of identical decode steps is planned in closed form; if the
arriving request is routed to this replica, the run is cut after the step in progress (the
request joins the next one), otherwise it goes on: no request finishes before a run's last step,
so a replica mid-run looks to the router exactly as it did when the run began.

With open-loop arrivals every arrival time is known in advance, and the replica need not be a
SimPy process at all (``driven``): the arrival process calls ``advance(t)`` on every replica
before it routes the request arriving at ``t``, which applies every step and run that ends
before ``t`` and keeps the one in progress at ``t`` pending; ``submit`` cuts that one. The
replica then costs no SimPy event, where a process waits in SimPy time for every run an
arrival falls into. Both ways give the same steps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import simpy

from sim.engine.batch import Batch
from sim.engine.latency_model import LatencyModel
from sim.engine.request import Request
from sim.engine.scheduler import ContinuousScheduler
from sim.engine.static_scheduler import StaticScheduler
from sim.engine.step_log import StepLog
from sim.engine.step_series import StepSeries


class PlannedStep(NamedTuple):
    """A scheduled step (or decode run) whose effects are applied when it ends."""

    start_s: float
    end_s: float
    timing: StepSeries | float
    num_steps: int
    batch: Batch
    kv_used_start: int


class ArrivalClock:
    """When the next request arrives anywhere (infinity once arrivals are over), and which
    replica it will go to when the router can tell in advance (None otherwise)."""

    __slots__ = ("next_s", "next_replica")

    def __init__(self) -> None:
        self.next_s = float("inf")
        self.next_replica: int | None = None


class Replica:
    def __init__(
        self,
        env: simpy.Environment,
        index: int,
        scheduler: ContinuousScheduler | StaticScheduler,
        latency: LatencyModel,
        on_finish: Callable[[Request, float], None],
        clock: ArrivalClock,
        macro_steps: bool = True,
        driven: bool = False,
        log: StepLog | None = None,
    ) -> None:
        if driven and (not macro_steps or isinstance(scheduler, StaticScheduler)):
            raise ValueError("a driven replica plans runs and never holds its queue")
        self.env = env
        self.index = index
        self.scheduler = scheduler
        self.latency = latency
        self.log = StepLog() if log is None else log  # a streamed run passes one that keeps totals
        self._on_finish = on_finish
        self._clock = clock
        self._macro_steps = macro_steps
        self._wake: simpy.Event | None = None
        # requests submitted here whose reply has not ended: what a router in front counts. A
        # plain counter (the scheduler's queues give the same number), because a router reads
        # every replica's at every arrival
        self.num_outstanding = 0
        # when the step just run began (infinity after idling), so the scheduler knows what an
        # asynchronous engine had seen when it planned the next step (sim.engine.scheduler)
        self._last_step_start_s = float("inf")
        self._hides_host_work = getattr(latency, "async_scheduling", False)
        # only request-level batchers ever hold a queue back (continuous ones are always ready)
        self._holds = isinstance(scheduler, StaticScheduler)
        self.driven = driven
        # driven: the step or run in progress at the last ``advance``, not applied yet, and
        # where the replica's own time stands when it has none
        self._pending: PlannedStep | None = None
        self._now = 0.0
        # driven: when ``advance`` next has something to do (a run to apply or a step to plan)
        self.due_s = float("inf")
        if not driven:
            env.process(self._run())

    def submit(self, request: Request) -> None:
        now = request.queued_s = self.env.now
        request.replica = self.index
        self.num_outstanding += 1
        if self.driven:
            if self._pending is not None:  # the request joins after the step in progress
                self._pending = self._cut(self._pending, now)
                self.due_s = self._pending.end_s
            elif not self.scheduler.has_work:  # idle until now
                self._now = self.due_s = now
                self._last_step_start_s = float("inf")  # no step in flight planned the next
            self.scheduler.add(request)
            return
        self.scheduler.add(request)
        if self._wake is not None and not self._wake.triggered:
            self._wake.succeed()

    def advance(self, until: float) -> None:
        """(Driven) Apply every step and run that ends before ``until``; keep the one in
        progress at ``until`` pending, as a process would wait through it."""
        step = self._pending
        if step is not None:
            if step.end_s >= until:
                return
            self._pending = None
            self._apply(step)
            now = step.end_s
        else:
            now = self._now
        scheduler = self.scheduler
        # only steps that start before ``until``: one starting then is planned once every
        # request arriving then is in
        while now < until and scheduler.has_work:
            step = self._plan(now)
            if step.end_s >= until:
                self._pending = step
                self.due_s = step.end_s
                return
            self._apply(step)
            now = step.end_s
        self._now = now
        self.due_s = now if scheduler.has_work else float("inf")

    def _run(self):
        env = self.env
        scheduler = self.scheduler
        while True:
            if not scheduler.has_work:
                self._wake = env.event()
                yield self._wake
                self._wake = None
                self._last_step_start_s = float("inf")  # no step in flight planned the next
            now = env.now
            ready = scheduler.ready_at(now)
            if ready > now:  # a batcher holds its queue for more requests
                yield from self._hold_until(ready)
                continue
            horizon = self._clock.next_s
            holds = self._holds
            while scheduler.has_work:
                if holds:
                    ready = scheduler.ready_at(now)
                    if ready > now:
                        if ready >= horizon:
                            break  # a request may arrive here first and change the batch
                        now = ready
                step = self._plan(now)
                if step.end_s >= horizon:  # a request arrives by the end of this step
                    if step.num_steps == 1 or self._clock.next_replica == self.index:
                        # it comes here: the run stops after the step it falls in
                        step = self._cut(step, horizon)
                        yield env.timeout(step.end_s - env.now)
                    else:
                        step = yield from self._wait_through(step)
                self._apply(step)
                now = step.end_s
                if now >= horizon:
                    break

    def _hold_until(self, ready_s: float):
        """Wait until ``ready_s`` or until a request is submitted here, whichever is first."""
        env = self.env
        self._wake = env.event()
        yield self._wake | env.timeout(ready_s - env.now)
        self._wake = None

    def _plan(self, now: float) -> PlannedStep:
        """Schedule the next step (or run of decode steps) starting at ``now``."""
        scheduler = self.scheduler
        batch = scheduler.schedule(now, self._last_step_start_s)
        if batch.num_tokens == 0:
            raise RuntimeError("scheduler produced an empty step while work is pending")
        steps = scheduler.decode_horizon() if self._macro_steps else 1
        # a step after the engine idled has no GPU step to hide its host work behind
        overlapped = self._last_step_start_s != float("inf") or not self._hides_host_work
        if steps == 1:
            timing: StepSeries | float = self.latency.step_time(batch, overlapped)
            duration = timing
        elif not overlapped:  # (rare: a decode run right after idling) its first step apart
            rest = self.latency.decode_run(batch.decode_seqs,
                                           batch.decode_context_tokens + batch.decode_seqs,
                                           steps - 1)
            timing = StepSeries.after_step(self.latency.step_time(batch, overlapped), rest)
            duration = timing.total
        else:
            timing = self.latency.decode_run(batch.decode_seqs, batch.decode_context_tokens, steps)
            duration = timing.total
        return PlannedStep(now, now + duration, timing, steps, batch, scheduler.blocks_used)

    def _wait_through(self, step: PlannedStep):
        """Wait in SimPy time until a decode run ends, unless a request submitted here cuts it.

        The wake-up event doubles as the run's end: the timeout's callback fires it with
        "done" unless a submission fired it first.
        """
        env = self.env
        wake = self._wake = env.event()
        env.timeout(step.end_s - env.now).callbacks.append(
            lambda _: wake.triggered or wake.succeed("done")
        )
        reason = yield wake
        self._wake = None
        if reason != "done":
            step = self._cut(step, env.now)
            yield env.timeout(max(0.0, step.end_s - env.now))
        return step

    def _cut(self, step: PlannedStep, arrival_s: float) -> PlannedStep:
        """The part of a decode run up to the end of the step in progress at ``arrival_s``
        (and of the one after it, which an asynchronous engine had already planned)."""
        if step.num_steps == 1:
            return step
        started = max(1, step.timing.steps_started_before(arrival_s - step.start_s))
        started = min(step.num_steps, started + self.scheduler.plans_ahead)
        timing, total = step.timing.prefix(started)
        start = step.start_s
        return PlannedStep(start, start + total, timing, started, step.batch, step.kv_used_start)

    def _apply(self, step: PlannedStep) -> None:
        end = step.end_s
        if step.num_steps == 1:
            self._last_step_start_s = step.start_s
        else:
            first, slope, count = step.timing.pieces[-1]
            self._last_step_start_s = end - (first + slope * (count - 1))
        finished = self.scheduler.complete(step.num_steps, end)
        self.num_outstanding -= len(finished)
        self.log.add(step.start_s, step.timing, step.num_steps, step.batch, step.kv_used_start,
                     self.scheduler.memory())
        for request in finished:
            self._on_finish(request, end)
