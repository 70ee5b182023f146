"""One model replica as a SimPy process: a step loop that sleeps when there is nothing to do.

Nothing outside a replica can change what it does until the next request arrives (replicas do
not talk to each other, and the router only looks at them when a request arrives). So the loop
runs every step that ends before the next arrival without handing control back to SimPy, and
only waits in SimPy time for a step during which a request arrives, so the arrival sees the
replica as it is mid-step. A run of identical decode steps is planned in closed form and cut
where the next arrival falls.
"""

from __future__ import annotations

from collections.abc import Callable

import simpy

from sim.latency_model import LatencyModel
from sim.request import Request
from sim.scheduler import ContinuousScheduler
from sim.step_log import StepLog
from sim.step_series import StepSeries


class ArrivalClock:
    """When the next request arrives anywhere (infinity once arrivals are over)."""

    __slots__ = ("next_s",)

    def __init__(self) -> None:
        self.next_s = float("inf")


class Replica:
    def __init__(
        self,
        env: simpy.Environment,
        index: int,
        scheduler: ContinuousScheduler,
        latency: LatencyModel,
        on_finish: Callable[[Request, float], None],
        clock: ArrivalClock,
        macro_steps: bool = True,
    ) -> None:
        self.env = env
        self.index = index
        self.scheduler = scheduler
        self.latency = latency
        self.log = StepLog()
        self.busy_s = 0.0
        self._on_finish = on_finish
        self._clock = clock
        self._macro_steps = macro_steps
        self._wake: simpy.Event | None = None
        env.process(self._run())

    @property
    def num_outstanding(self) -> int:
        return self.scheduler.num_outstanding

    def submit(self, request: Request) -> None:
        request.replica = self.index
        self.scheduler.add(request)
        if self._wake is not None and not self._wake.triggered:
            self._wake.succeed()

    def _run(self):
        env = self.env
        scheduler = self.scheduler
        while True:
            if not scheduler.has_work:
                self._wake = env.event()
                yield self._wake
                self._wake = None
            now = env.now
            horizon = self._clock.next_s
            while scheduler.has_work:
                end = self._step(now, horizon)
                if end > horizon:  # a request arrives during this step: let SimPy catch up
                    yield env.timeout(end - env.now)
                self._finish_step(end)
                now = end
                if end > horizon:
                    break

    def _step(self, now: float, horizon: float) -> float:
        """Schedule the next step (or run of decode steps) starting at ``now``; return its end."""
        scheduler = self.scheduler
        batch = scheduler.schedule(now)
        if batch.num_tokens == 0:
            raise RuntimeError("scheduler produced an empty step while work is pending")
        steps = scheduler.decode_horizon() if self._macro_steps else 1
        if steps == 1:
            timing: StepSeries | float = self.latency.step_time(batch)
            duration = timing
        else:
            timing = self.latency.decode_run(batch.decode_seqs, batch.decode_context_tokens, steps)
            if now + timing.total > horizon:
                # Cut the run after the step the next arrival falls in. No request finishes
                # before a run's last step, so the arrival sees the replica as it really is.
                steps = max(1, timing.steps_started_before(horizon - now))
                timing = timing.prefix(steps)[0]
            duration = timing.total
        self._pending = (now, timing, steps, batch, self.scheduler.pool.num_used)
        return now + duration

    def _finish_step(self, end: float) -> None:
        start, timing, steps, batch, used_start = self._pending
        finished = self.scheduler.complete(steps, end)
        self.busy_s += end - start
        self.log.add(start, timing, steps, batch, used_start, self.scheduler.pool.num_used)
        for request in finished:
            self._on_finish(request, end)
