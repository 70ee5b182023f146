"""Continuous batching over contiguous KV memory, to isolate paging's effect from batching's.

Scheduling is the same iteration-level loop as ``ContinuousScheduler`` (token budget, sequence
limit, chunked prefill), but memory works the way servers worked before paged attention: a
request is admitted only when one unbroken run of slots for its maximum length (prompt plus
max_tokens, within max_model_len) is free, and keeps it until it finishes. Decoding never needs
new memory, so nothing is ever preempted; instead fewer requests run at once.
"""

from __future__ import annotations

from sim.engine.request import Request
from sim.engine.scheduler import ContinuousScheduler, SchedulerLimits
from sim.engine.slot_pool import SlotPool


class ContiguousScheduler(ContinuousScheduler):
    _paged = False

    def __init__(self, limits: SchedulerLimits, pool: SlotPool) -> None:
        super().__init__(limits, pool)  # type: ignore[arg-type]
        self.pool: SlotPool = pool  # type: ignore[assignment]
        self._final_tokens = 0  # sum of the running requests' final lengths

    def memory(self) -> tuple[int, int, int, int, int]:
        computed = self._context_offset + self.step * len(self.decoding)
        computed += sum(r.num_computed for r in self.prefilling.values())
        reserved = self.pool.used_slots
        external = self.pool.unusable_for(self.waiting[0].reservation) if self.waiting else 0
        return (self.pool.num_used, computed, self._final_tokens - computed,
                reserved - self._final_tokens, external)

    def decode_horizon(self) -> int:
        if (self._chunks or self._unseen_waiting or not self.decoding
                or (self._leaving and self.waiting)):
            return 1
        return self._next_finish_step() - self.step + 1

    def _schedule_prefilling(self, budget: int) -> int:
        for request in self.prefilling.values():
            if budget <= 0:
                break
            tokens = min(request.remaining_prefill, budget)
            self._chunks.append((request, tokens))
            budget -= tokens
        return budget

    def _try_admit(self, request: Request, budget: int, now: float) -> int:
        tokens = request.num_tokens
        if tokens > budget and not self.limits.chunked_prefill:
            return 0
        if not self.pool.reserve(request.rid, request.reservation):
            return 0
        tokens = min(tokens, budget)
        self.waiting.popleft()
        self._final_tokens += request.final_tokens
        self.lookup_tokens += request.num_tokens
        if request.first_scheduled_s is None:
            request.first_scheduled_s = now
        self.prefilling[request.rid] = request
        self._chunks.append((request, tokens))
        return tokens

    def _release(self, request: Request, *, finished: bool) -> None:
        if not finished:
            raise RuntimeError("contiguous memory is reserved up front: nothing is preempted")
        self.pool.free(request.rid)
        self._final_tokens -= request.final_tokens
