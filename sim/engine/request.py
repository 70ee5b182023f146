"""A request's mutable state while it is inside one replica.

vLLM's unit of progress: a request has ``num_tokens`` (prompt plus tokens generated so far) and
``num_computed`` (tokens whose KV is in the cache). Each step hands it some of the missing tokens;
that one rule covers prefill, chunked prefill, decode, prefix-cache hits and recompute after
preemption.

While a request is *decoding* every step adds exactly one computed token and one output token,
so the replica does not touch it each step: it stores offsets from the replica's step counter
(``computed = step + computed_offset``) and materialises the counts when the request leaves the
decoding set (it finishes, is preempted, or the replica needs the exact figure).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True, eq=False)
class Request:
    rid: int
    arrival_s: float
    prompt_tokens: int
    output_tokens: int  # tokens it will generate (the workload's length after caps)
    # its content before its own: (owner, end block) segments of shared or earlier content
    # (sim.engine.prefix_hash); its own prompt tail and reply follow
    segments: tuple[tuple[int, int], ...] = ()
    num_computed: int = 0
    num_output: int = 0
    # its blocks in the pool: [owner, first, end] chain ranges it holds, in position order;
    # ``loose`` blocks that hold nothing cacheable (duplicates of content cached meanwhile);
    # ``counted`` leading blocks already in one of the two (the rest: its own full blocks,
    # cached when it leaves, and its partial last block)
    holds: list = field(default_factory=list)
    loose: int = 0
    counted: int = 0
    computed_offset: int = 0  # while decoding: num_computed = step + computed_offset
    output_offset: int = 0  # while decoding: num_output = step + output_offset
    first_scheduled_s: float | None = None
    first_token_s: float | None = None
    cached_tokens: int = 0  # prompt tokens served from the prefix cache at first admission
    cpu_cached_tokens: int = 0  # of those, loaded from the host-memory tier
    preemptions: int = 0
    replica: int = 0
    trace_id: str = ""
    endpoint: str | None = None
    # the most slots it may ever need: prompt plus max_tokens, within max_model_len (what a
    # contiguous KV allocator reserves up front); 0 = prompt plus output_tokens
    reserve_tokens: int = 0
    queued_s: float = 0.0  # when it reached the replica's queue (after any gateway hold)
    # it stops at a length limit (max_tokens or the context limit), which the engine sees
    # coming, rather than at an end-of-sequence token, which it only sees in the step's output
    length_stop: bool = False
    session: int = -1  # its conversation's number in the run; -1: not part of one
    turn: int = -1  # its turn in the conversation, from 1

    @property
    def num_tokens(self) -> int:
        return self.prompt_tokens + self.num_output

    @property
    def final_tokens(self) -> int:
        """Its length when done: the KV slots it will have used."""
        return self.prompt_tokens + self.output_tokens

    @property
    def reservation(self) -> int:
        return self.reserve_tokens or self.final_tokens

    @property
    def remaining_prefill(self) -> int:
        return self.num_tokens - self.num_computed
