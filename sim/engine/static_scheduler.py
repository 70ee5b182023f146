"""Request-level batching: a batch is formed, runs until its longest request ends, then the next.

This is how servers batched before iteration-level scheduling (a Hugging Face pipeline behind a
batcher, FasterTransformer, Triton's dynamic batcher): the ``BatchingPolicy`` says when a batch
starts and how many queued requests it takes; nobody joins a running batch. The batch's first
step computes every prompt whole; then each step generates one token for every row still
generating. A row that is done sits idle (it is returned to its client at once) while the others
finish; its memory is only given back with the batch when KV memory is contiguous.

KV memory is either ``contiguous`` (each row reserves its maximum length up front) or ``paged``
(rows take blocks as they grow, and a finished row's blocks are freed at once). Either way a
batch only takes as many requests as the memory holds at their maximum lengths, so a batch never
runs out of memory mid-way.
"""

from __future__ import annotations

from collections import deque

from sim.engine.batch import Batch, chunk_terms
from sim.engine.batching_policy import BatchingPolicy
from sim.engine.request import Request


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


class StaticScheduler:
    """One replica's batches. Same interface as ``ContinuousScheduler``; plain Python, no clock."""

    num_preemptions = 0
    plans_ahead = 0  # request-level batchers schedule synchronously
    lookup_tokens = 0  # no prefix cache
    hit_tokens = 0
    cpu_hit_tokens = 0

    def __init__(self, policy: BatchingPolicy, *, num_blocks: int, block_size: int,
                 paged: bool) -> None:
        self.policy = policy
        self.block_size = block_size
        self.paged = paged
        self.num_slots = num_blocks * block_size
        self.waiting: deque[Request] = deque()
        self.active: list[Request] = []  # rows still generating
        self.idle: list[Request] = []  # rows done while the batch runs on
        self._prefilling = False  # the scheduled step is the batch's prompt step

    # ---- queries -------------------------------------------------------------------------

    @property
    def num_running(self) -> int:
        return len(self.active)

    @property
    def num_outstanding(self) -> int:
        return len(self.waiting) + len(self.active)

    @property
    def has_work(self) -> bool:
        return bool(self.waiting or self.active)

    @property
    def blocks_used(self) -> int:
        if self.paged:
            return sum(_ceil_div(r.num_computed, self.block_size) for r in self.active)
        return _ceil_div(self._reserved(), self.block_size)

    def ready_at(self, now: float) -> float:
        if self.active:
            return now
        if not self.waiting:
            return float("inf")
        return max(now, self.policy.ready_at(len(self.waiting), self.waiting[0].queued_s))

    def memory(self) -> tuple[int, int, int, int, int]:
        """Blocks in use, then token states, reservation, internal and external slots."""
        computed = sum(r.num_computed for r in self.active)
        if self.paged:
            tail = sum(-r.num_computed % self.block_size for r in self.active)
            return self.blocks_used, computed, 0, tail, 0
        final = sum(r.final_tokens for r in self.active)
        return self.blocks_used, computed, final - computed, self._reserved() - final, 0

    # ---- steps ---------------------------------------------------------------------------

    def add(self, request: Request) -> None:
        self.waiting.append(request)

    def schedule(self, now: float, visible_s: float = float("inf")) -> Batch:
        """The next step; ``visible_s`` is ignored (request-level batchers run synchronously)."""
        if self.active:
            return Batch(decode_seqs=len(self.active),
                         decode_context_tokens=sum(r.num_computed + 1 for r in self.active))
        self._form_batch(now)
        pairs = sum(chunk_terms(r.prompt_tokens, 0)[0] for r in self.active)
        prompt_tokens = sum(r.prompt_tokens for r in self.active)
        return Batch(prompt_tokens, len(self.active), pairs, prompt_tokens, 0, 0)

    def decode_horizon(self) -> int:
        """Decode steps until the next row is done (a batch's prompt step stands alone)."""
        if self._prefilling:
            return 1
        return min(r.output_tokens - r.num_output for r in self.active)

    def complete(self, num_steps: int, end_s: float) -> list[Request]:
        if self._prefilling:
            self._prefilling = False
            for r in self.active:
                r.num_computed = r.prompt_tokens
                r.num_output = 1
                r.first_token_s = end_s
        else:
            for r in self.active:
                r.num_computed += num_steps
                r.num_output += num_steps
        done = [r for r in self.active if r.num_output >= r.output_tokens]
        if done:
            self.active = [r for r in self.active if r.num_output < r.output_tokens]
            if not self.paged:
                self.idle += done
            if not self.active:
                self.idle = []  # the batch is over: its memory goes back
        return done

    def _form_batch(self, now: float) -> None:
        """Take the batch the policy allows from the queue's head, as far as memory holds it."""
        queued = len(self.waiting)
        size = self.policy.batch_size(queued, now, self.waiting[0].queued_s)
        room = self.num_slots
        while self.waiting and len(self.active) < size:
            need = self._footprint(self.waiting[0])
            if need > room and self.active:
                break
            room -= need
            request = self.waiting.popleft()
            request.first_scheduled_s = now
            self.active.append(request)
        self._prefilling = True

    def _footprint(self, request: Request) -> int:
        """Memory a row may come to need, in slots (whole blocks when paged)."""
        if self.paged:
            return _ceil_div(request.reservation, self.block_size) * self.block_size
        return request.reservation

    def _reserved(self) -> int:
        return sum(r.reservation for r in self.active) + sum(r.reservation for r in self.idle)
