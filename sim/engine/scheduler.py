"""Continuous batching, as vLLM v1 schedules it.

Every step has a token budget (``max_num_batched_tokens``). Running requests are served first,
in admission order, then waiting ones first-come-first-served while the budget, the sequence
limit (``max_num_seqs``) and free KV blocks allow. A request gets the tokens it lacks
(``num_tokens - num_computed``), cut to the budget: that is chunked prefill. A new request
starts with the blocks its prefix hits in the cache already computed. When a running request
needs a block and none is free, the most recently admitted running request is preempted: its
blocks are freed, and it goes back to the front of the queue to be recomputed later (its own
blocks stay cached until evicted, so the recompute may be short). After a preemption nobody new
is admitted in that step.

With **asynchronous scheduling** (vLLM's default on GPUs in current releases) the engine plans
step n+1 while the GPU runs step n, so (1) a request that reached the queue after step n began
is first scheduled in step n+2 (``schedule``'s ``visible_s``), unless the engine had nothing
else to run, and (2) a request that stopped at an end-of-sequence token in step n was already
planned into step n+1: it rides along in that step as a *leaving* sequence (its sequence slot,
a token of budget and its blocks still held; its discarded token is charged only when nothing
else runs in the step) and gives its blocks back only when that step ends. A request that
stops at its length limit (max_tokens, the context limit) leaves at once: the scheduler knows
in advance that it is done.

The running list is kept as two ordered parts, ``decoding`` then ``prefilling``. That is the
admission order: a request can only be admitted behind one that is still prefilling when that
one's prefill ended in the same step, so prefilling requests are always the youngest.

Decoding requests are handled in aggregate: each step adds one token to each, so the
scheduler keeps only their number, the sum of their contexts, how many need a new block on
each step of the block-size cycle, and a heap of the steps at which they finish. That lets a
run of identical decode steps be planned and applied at once (``decode_horizon``), with no
per-request work per step.
"""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass

from sim.engine.batch import Batch, chunk_terms
from sim.engine.block_pool import BlockPool
from sim.engine.prefix_hash import OWN, is_own, own_segment
from sim.engine.request import Request


@dataclass(frozen=True, slots=True)
class SchedulerLimits:
    max_num_seqs: int
    max_num_batched_tokens: int
    block_size: int
    chunked_prefill: bool = True
    async_scheduling: bool = False  # plan step n+1 while step n runs (see module docstring)
    # admit only if the whole prompt's blocks are free (vLLM >= 0.21), not just the chunk's
    whole_prompt_admission: bool = False
    # async: a request stopping at its length limit is left out of the next step (>= 0.12)
    async_skips_length_stop: bool = True


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


class ContinuousScheduler:
    """Schedules one replica's steps over a shared block pool. Plain Python, no clock."""

    _paged = True  # decoders take a new block every block_size steps (see ContiguousScheduler)

    def __init__(self, limits: SchedulerLimits, pool: BlockPool) -> None:
        if limits.max_num_batched_tokens < limits.max_num_seqs:
            raise ValueError("max_num_batched_tokens must be >= max_num_seqs")
        self.limits = limits
        self.pool = pool
        self.block_size = limits.block_size
        self.waiting: deque[Request] = deque()
        self.decoding: dict[int, Request] = {}
        self.prefilling: dict[int, Request] = {}
        self.step = 0  # index of the next step to schedule
        self._new_block_keys = [0] * limits.block_size
        self._context_offset = 0  # decode context at step s = _context_offset + s * len(decoding)
        self._finish_heap: list[tuple[int, int, Request]] = []
        # unused slots in the decoders' last blocks at the start of step ``self.step``
        self._decoder_tail = 0
        self._chunks: list[tuple[Request, int]] = []  # this step's prefill work: (request, tokens)
        self._preempted_this_step = False
        # async: finished at an end-of-sequence token, still in the step after (see top)
        self._leaving: list[Request] = []
        self._leaving_context = 0  # their contexts, plus the one token each computes
        self._leaving_tail = 0  # unused slots in their last blocks
        self._unseen_waiting = False  # this step left out requests it could not see yet
        self.num_preemptions = 0
        self.lookup_tokens = 0
        self.hit_tokens = 0
        self.cpu_hit_tokens = 0  # of hit_tokens, loaded from host memory
        self._loaded_tokens = 0  # loaded from host memory for the step being scheduled

    # ---- queries -------------------------------------------------------------------------

    @property
    def plans_ahead(self) -> int:
        """Steps already planned when a request arrives: it joins the step after them."""
        return 1 if self.limits.async_scheduling else 0

    @property
    def leaving(self) -> tuple[Request, ...]:
        """Requests that finished in the last step but ride along in the next (async)."""
        return tuple(self._leaving)

    @property
    def num_running(self) -> int:
        return len(self.decoding) + len(self.prefilling) + len(self._leaving)

    @property
    def num_outstanding(self) -> int:
        """Requests whose reply has not ended (what a router in front of the engine counts)."""
        return len(self.waiting) + len(self.decoding) + len(self.prefilling)

    @property
    def has_work(self) -> bool:
        return bool(self.waiting or self.decoding or self.prefilling or self._leaving)

    @property
    def blocks_used(self) -> int:
        return self.pool.num_used

    def ready_at(self, now: float) -> float:
        """When the next step may start: at once, iteration-level scheduling never waits."""
        return now

    def memory(self) -> tuple[int, int, int, int, int]:
        """Blocks in use, then their slots split as ``sim.engine.kv_state`` says (what the step log
        keeps).

        Paged memory reserves nothing ahead and has no holes; shared prefix blocks are full,
        so only each request's own last block can have an unused tail.
        """
        bs = self.block_size
        tail = self._decoder_tail
        if self.prefilling:
            tail += sum(-r.num_computed % bs for r in self.prefilling.values())
        tail += self._leaving_tail
        used = self.pool.num_blocks - self.pool.num_free
        return used, used * bs - tail, 0, tail, 0

    # ---- one step ------------------------------------------------------------------------

    def add(self, request: Request) -> None:
        self.waiting.append(request)

    def schedule(self, now: float, visible_s: float = float("inf")) -> Batch:
        """Choose the work of step ``self.step`` and allocate its KV blocks.

        ``visible_s`` is when the step before this one started, if it ran right up to ``now``:
        with async scheduling, waiting requests that reached the queue after it are not seen
        yet (this step was planned then), unless nothing else would run.
        """
        self._chunks = []
        self._preempted_this_step = False
        self._unseen_waiting = False
        self._loaded_tokens = 0
        step = self.step
        demand = self._new_block_keys[-step % self.block_size]
        if demand > self.pool.num_free:
            self._schedule_decoders_preempting(step)
        elif demand:
            self.pool.allocate(demand)
        budget = self.limits.max_num_batched_tokens - len(self.decoding) - len(self._leaving)
        if self.prefilling:
            budget = self._schedule_prefilling(budget)
        if self.waiting and not self._preempted_this_step:
            if not self.limits.async_scheduling or not (
                    self.decoding or self._chunks or self._leaving):
                visible_s = float("inf")  # synchronous, or idle: new requests join at once
            self._admit_waiting(budget, now, visible_s)
        return self._batch()

    def decode_horizon(self) -> int:
        """How many steps like the one just scheduled can run before anything changes.

        Only a pure decode step repeats (its first step may carry requests that finished in
        the step before, under async scheduling): the run ends at the next finish or where
        the free blocks would not cover the decoders' growth.
        """
        # Finished requests riding along leave after the first step; the run goes on unless
        # a waiting request could take their place.
        if (self._chunks or self._preempted_this_step or self._unseen_waiting
                or not self.decoding or (self._leaving and self.waiting)):
            return 1
        to_finish = self._next_finish_step() - self.step + 1
        free = self.pool.num_free
        # each decoder needs at most one new block per block_size steps
        if free >= len(self.decoding) * (to_finish // self.block_size + 1):
            return to_finish
        affordable = 1 + self._affordable_decode_steps(self.step + 1, free)
        return max(1, min(to_finish, affordable))

    def complete(self, num_steps: int, end_s: float) -> list[Request]:
        """Apply ``num_steps`` steps (several only for a pure decode run); return finishers."""
        first = self.step
        if self._leaving:
            for request in self._leaving:
                self._release(request, finished=True)
            self._leaving = []
            self._leaving_context = self._leaving_tail = 0
        decoders = len(self.decoding)
        if decoders and self._paged:
            bs = self.block_size
            # the first step's blocks were taken when it was scheduled
            new_blocks = self._new_block_keys[-first % bs]
            if num_steps > 1:
                demand = self._decode_demand(first + 1, num_steps - 1)
                if demand:
                    self.pool.allocate(demand)
                new_blocks += demand
            # each step fills one slot of every decoder's last block, except for the decoders
            # starting a new block (their tail goes from 0 to bs - 1): the new-block demand
            self._decoder_tail += new_blocks * bs - num_steps * decoders
        finished: list[Request] = []
        for request, tokens in self._chunks:
            request.num_computed += tokens
            if request.num_computed < request.num_tokens:
                continue
            del self.prefilling[request.rid]
            request.num_output += 1
            if request.first_token_s is None:
                request.first_token_s = end_s
            if request.num_output >= request.output_tokens:
                self._finish(request)
                finished.append(request)
            else:
                self._join_decoding(request, first + 1)
        self._chunks = []
        self.step = first + num_steps
        heap = self._finish_heap
        while heap and heap[0][0] < self.step:
            last_step, _, request = heapq.heappop(heap)
            if not self._is_current(request, last_step):
                continue
            self._leave_decoding(request, self.step)
            self._finish(request)
            finished.append(request)
        return finished

    def _finish(self, request: Request) -> None:
        """Free a finished request's blocks, or keep them one more step (see top)."""
        limits = self.limits
        if limits.async_scheduling and not (request.length_stop and limits.async_skips_length_stop):
            self._leaving.append(request)
            self._leaving_context += request.num_computed + 1
            self._leaving_tail += -request.num_computed % self.block_size
        else:
            self._release(request, finished=True)

    # ---- scheduling parts ----------------------------------------------------------------

    def _schedule_decoders_preempting(self, step: int) -> None:
        """Serve decoders in order; when blocks run out, preempt from the running tail."""
        order = list(self.decoding.values())
        end = len(order)  # order[:end] are still running
        i = 0
        while i < end:
            request = order[i]
            if (step + request.computed_offset) % self.block_size == 0:
                while self.pool.num_free == 0:
                    if self.prefilling:
                        self._preempt(next(reversed(self.prefilling.values())), step)
                    else:
                        end -= 1
                        self._preempt(order[end], step)
                        if end == i:
                            return
                self.pool.allocate(1)
            i += 1

    def _schedule_prefilling(self, budget: int) -> int:
        for request in list(self.prefilling.values()):
            if budget <= 0 or request.rid not in self.prefilling:
                break
            tokens = min(request.remaining_prefill, budget)
            need = _ceil_div(request.num_computed + tokens, self.block_size) - _ceil_div(
                request.num_computed, self.block_size
            )
            while need > self.pool.num_free:
                victim = next(reversed(self.prefilling.values()))
                self._preempt(victim, self.step)
                if victim is request:
                    return budget
            self.pool.allocate(need)
            self._cache_blocks(request, (request.num_computed + tokens) // self.block_size,
                               include_own=False)
            self._chunks.append((request, tokens))
            budget -= tokens
        return budget

    def _admit_waiting(self, budget: int, now: float, visible_s: float) -> None:
        limits = self.limits
        waiting = self.waiting
        while waiting and budget > 0 and self.num_running < limits.max_num_seqs:
            if waiting[0].queued_s > visible_s:
                self._unseen_waiting = True  # it is seen next step: no decode run past that
                return
            tokens = self._try_admit(waiting[0], budget, now)
            if not tokens:
                return
            budget -= tokens

    def _try_admit(self, request: Request, budget: int, now: float) -> int:
        """Admit the head of the queue if budget and blocks allow; return its tokens (0: no).

        Its cached leading blocks are hit: those on the GPU are referenced (the free ones taken
        out of the queue, which costs free blocks as new ones do), those in host memory are
        loaded into new blocks instead of being recomputed.
        """
        bs = self.block_size
        pool = self.pool
        if request.segments or request.preemptions:
            chain = (*request.segments, own_segment(request.rid))
            gpu_hits, cpu_hits = self._prefix_hits(request, chain)
        else:  # nothing shared and never computed before: its content is new to the cache
            chain = ()
            gpu_hits = cpu_hits = 0
        hit_blocks = gpu_hits + cpu_hits
        computed = hit_blocks * bs
        tokens = request.num_tokens - computed
        if tokens > budget and not self.limits.chunked_prefill:
            return 0
        tokens = min(tokens, budget)
        reclaimed = pool.reclaimable(chain, gpu_hits) if gpu_hits else 0
        new_blocks = _ceil_div(computed + tokens, bs) - gpu_hits
        # vLLM >= 0.21 first checks that the whole prompt would fit, still allocating only
        # the chunk; earlier releases check the chunk alone and may preempt later
        must_fit = (_ceil_div(request.num_tokens, bs) - gpu_hits
                    if self.limits.whole_prompt_admission else new_blocks)
        if must_fit + reclaimed > pool.num_free:
            return 0
        self.waiting.popleft()
        if hit_blocks:
            self._take_hits(request, chain, gpu_hits, hit_blocks)
        pool.allocate(new_blocks)
        request.num_computed = computed
        request.counted = hit_blocks
        self._cache_blocks(request, (computed + tokens) // bs, include_own=False)
        self.lookup_tokens += request.num_tokens
        self.hit_tokens += computed
        self.cpu_hit_tokens += cpu_hits * bs
        self._loaded_tokens += cpu_hits * bs
        if request.first_scheduled_s is None:
            request.first_scheduled_s = now
            request.cached_tokens = computed
            request.cpu_cached_tokens = cpu_hits * bs
        self.prefilling[request.rid] = request
        self._chunks.append((request, tokens))
        return tokens

    def _prefix_hits(self, request: Request, chain: tuple) -> tuple[int, int]:
        """Cached leading blocks: (on the GPU, in host memory right after them).

        At least the last token is always recomputed, as in vLLM, so a fully cached prompt
        still has one token to prefill.
        """
        if not self.pool.caching:
            return 0, 0
        return self.pool.cached_prefix(chain, (request.num_tokens - 1) // self.block_size)

    def _take_hits(self, request: Request, chain: tuple, gpu_hits: int, hits: int) -> None:
        """Reference the GPU hits and load the host-memory ones, segment by segment."""
        pool, holds, lo = self.pool, request.holds, 0
        for owner, hi in chain:
            if lo >= hits:
                break
            on_gpu = min(hi, gpu_hits)
            if on_gpu > lo:
                pool.acquire(owner, on_gpu)
                holds.append([owner, lo, on_gpu])
            end = min(hi, hits)
            if end > max(on_gpu, lo):  # the host-memory part, right after the GPU part
                held = max(on_gpu, lo)
                pool.extend(owner, lo, held, end)
                if held > lo:
                    holds[-1][2] = end
                else:
                    holds.append([owner, lo, end])
            lo = hi

    def _cache_blocks(self, request: Request, upto: int, *, include_own: bool) -> None:
        """Cache the request's full blocks below ``upto`` that it has not accounted for yet.

        Shared content is cached as soon as a step computes it, so requests running at the
        same time can hit it; a request's own blocks only when it leaves (nobody else can hit
        them before: a conversation's next turn comes after the reply). A block whose content
        another request cached meanwhile stays the request's own loose block, as in vLLM.
        """
        pos = request.counted
        if pos >= upto or not (include_own or request.segments):
            return
        if not self.pool.caching:
            request.loose += upto - pos
            request.counted = upto
            return
        pool, holds, lo = self.pool, request.holds, 0
        for owner, hi in (*request.segments, own_segment(request.rid)):
            if hi <= pos:
                lo = hi
                continue
            if is_own(owner) and not include_own:
                break
            end = min(hi, upto)
            held = holds[-1][2] if holds and holds[-1][0] == owner else lo
            if held == pos and pool.extend(owner, lo, held, end):
                if held > lo:
                    holds[-1][2] = end
                else:
                    holds.append([owner, lo, end])
            else:
                request.loose += end - pos
            pos = end
            if pos >= upto:
                break
            lo = hi
        request.counted = pos

    def _batch(self) -> Batch:
        decode_seqs = len(self.decoding)
        decode_context = self._context_offset + (self.step + 1) * decode_seqs
        if self._leaving and not decode_seqs and not self._chunks:
            # a step that runs only because finished requests were planned into it: their
            # discarded tokens are all its work (beside other work, one token each is not
            # charged: under 1 % of a step, see docs/engine.md)
            leaving = len(self._leaving)
            return Batch(0, 0, 0.0, 0, leaving, self._leaving_context, 0, leaving)
        if not self._chunks:
            return Batch(0, 0, 0.0, 0, decode_seqs, decode_context)
        prefill_tokens = prefill_pairs = prefill_kv = 0
        for request, tokens in self._chunks:
            pairs, kv = chunk_terms(tokens, request.num_computed)
            prefill_tokens += tokens
            prefill_pairs += pairs
            prefill_kv += kv
        return Batch(
            prefill_tokens=prefill_tokens,
            prefill_seqs=len(self._chunks),
            prefill_attention_pairs=prefill_pairs,
            prefill_kv_tokens=prefill_kv,
            decode_seqs=decode_seqs,
            decode_context_tokens=decode_context,
            loaded_kv_tokens=self._loaded_tokens,
        )

    # ---- decoding set bookkeeping ----------------------------------------------------------

    def _join_decoding(self, request: Request, next_step: int) -> None:
        request.computed_offset = request.num_computed - next_step
        request.output_offset = request.num_output - next_step
        self.decoding[request.rid] = request
        self._context_offset += request.computed_offset
        if self._paged:
            self._new_block_keys[request.computed_offset % self.block_size] += 1
            self._decoder_tail += -request.num_computed % self.block_size
        last_step = request.output_tokens - request.output_offset - 1
        heapq.heappush(self._finish_heap, (last_step, request.rid, request))

    def _leave_decoding(self, request: Request, step: int) -> None:
        """Remove from the decoding set, writing back its counts as of the start of ``step``."""
        del self.decoding[request.rid]
        self._context_offset -= request.computed_offset
        request.num_computed = step + request.computed_offset
        request.num_output = step + request.output_offset
        if self._paged:
            self._new_block_keys[request.computed_offset % self.block_size] -= 1
            self._decoder_tail -= -request.num_computed % self.block_size

    def _is_current(self, request: Request, last_step: int) -> bool:
        """A heap entry is stale if its request was preempted (and maybe re-admitted) since."""
        return (
            self.decoding.get(request.rid) is request
            and request.output_tokens - request.output_offset - 1 == last_step
        )

    def _next_finish_step(self) -> int:
        heap = self._finish_heap
        while not self._is_current(heap[0][2], heap[0][0]):
            heapq.heappop(heap)
        return heap[0][0]

    def _decode_demand(self, start: int, steps: int) -> int:
        """New blocks the decoders need over ``steps`` steps from step ``start``.

        Step ``s`` needs ``keys[-s % bs]`` blocks, so consecutive steps walk the keys
        backwards: a whole cycle needs one block per decoder, the rest is a slice sum.
        """
        bs = self.block_size
        keys = self._new_block_keys
        cycles, rest = divmod(steps, bs)
        total = len(self.decoding) * cycles
        if rest:
            top = -start % bs  # keys[top], keys[top - 1], ... keys[top - rest + 1] (wrapping)
            low = top - rest + 1
            total += sum(keys[low : top + 1]) if low >= 0 else sum(keys[: top + 1]) + sum(keys[low:])
        return total

    def _affordable_decode_steps(self, start: int, free: int) -> int:
        """The most decode steps from ``start`` whose new blocks fit in ``free`` blocks."""
        bs = self.block_size
        per_cycle = len(self.decoding)
        cycles = free // per_cycle
        left = free - cycles * per_cycle
        keys = self._new_block_keys
        extra = 0
        for j in range(bs):
            need = keys[-(start + j) % bs]
            if need > left:
                break
            left -= need
            extra += 1
        return cycles * bs + extra

    # ---- giving blocks back ----------------------------------------------------------------

    def _preempt(self, request: Request, step: int) -> None:
        if request.rid in self.decoding:
            self._leave_decoding(request, step)
        else:
            del self.prefilling[request.rid]
        self._release(request, finished=False)
        request.num_computed = 0
        request.preemptions += 1
        self.num_preemptions += 1
        self._preempted_this_step = True
        self.waiting.appendleft(request)

    def _release(self, request: Request, *, finished: bool) -> None:
        """Free a request's blocks, last block first, caching every full one.

        A preempted request hits its own cached blocks when it is admitted again; a finished
        one's stay cached for a conversation's next turn, until evicted.
        """
        full, partial = divmod(request.num_computed, self.block_size)
        pool = self.pool
        if (pool.caching and not request.holds and not request.counted and not request.segments
                and (not request.preemptions or pool.chain(OWN + request.rid) is None)):
            pool.release_own(OWN + request.rid, full, 1 if partial else 0)
        else:
            self._cache_blocks(request, full, include_own=True)
            pool.release(request.holds, request.loose + (1 if partial else 0))
        request.holds = []
        request.loose = request.counted = 0
