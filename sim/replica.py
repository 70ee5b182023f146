"""One model replica as a SimPy process: a step loop that sleeps when there is nothing to do.

Each pass asks the scheduler for the next step and the latency model for its time. A pure
decode step that will repeat unchanged is run as one timeout covering the whole run; if a
request arrives meanwhile and could be admitted, the run is cut at the end of the step in
progress (the engine would have seen the arrival at that step boundary).
"""

from __future__ import annotations

from collections.abc import Callable

import simpy

from sim.latency_model import LatencyModel
from sim.request import Request
from sim.scheduler import ContinuousScheduler
from sim.step_series import StepSeries
from sim.step_log import StepLog


class Replica:
    def __init__(
        self,
        env: simpy.Environment,
        index: int,
        scheduler: ContinuousScheduler,
        latency: LatencyModel,
        on_finish: Callable[[Request], None],
        macro_steps: bool = True,
    ) -> None:
        self.env = env
        self.index = index
        self.scheduler = scheduler
        self.latency = latency
        self.log = StepLog()
        self.busy_s = 0.0
        self._on_finish = on_finish
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
        pool = scheduler.pool
        while True:
            if not scheduler.has_work:
                self._wake = env.event()
                yield self._wake
                self._wake = None
                continue
            start = env.now
            batch = scheduler.schedule(start)
            if batch.num_tokens == 0:
                raise RuntimeError("scheduler produced an empty step while work is pending")
            used_start = pool.num_used
            steps = scheduler.decode_horizon() if self._macro_steps else 1
            if steps == 1:
                timing: StepSeries | float = self.latency.step_time(batch)
                yield env.timeout(timing)
            else:
                timing = self.latency.decode_run(
                    batch.decode_seqs, batch.decode_context_tokens, steps
                )
                timing = yield from self._sleep_through(timing)
                steps = timing.num_steps
            finished = scheduler.complete(steps, env.now)
            self.busy_s += env.now - start
            self.log.add(start, timing, steps, batch, used_start, pool.num_used)
            for request in finished:
                self._on_finish(request)

    def _sleep_through(self, run: StepSeries):
        """Wait out a decode run; cut it short after the current step if work arrives.

        The wake-up event doubles as the run's end: the timeout's callback fires it with
        "done" unless an arrival fired it first.
        """
        env = self.env
        if not self.scheduler.admission_open():
            yield env.timeout(run.total)
            return run
        start = env.now
        wake = self._wake = env.event()
        env.timeout(run.total).callbacks.append(
            lambda _: wake.triggered or wake.succeed("done")
        )
        reason = yield wake
        self._wake = None
        if reason == "done":
            return run
        # Steps that had started by now run to completion; the arrival joins the next one.
        started = max(1, run.steps_started_before(env.now - start))
        cut, total = run.prefix(started)
        yield env.timeout(max(0.0, start + total - env.now))
        return cut
