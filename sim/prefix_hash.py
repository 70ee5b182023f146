"""Content hashes of the shareable blocks at the start of a prompt.

Two descriptions of shared content reach the engine: a generated workload's
(prefix_key, prefix_tokens), and a trace's prefix ids (one per fixed-size block of the trace's
own, e.g. Mooncake's 512 tokens, chained: equal ids mean equal content up to that block's end).


vLLM hashes each full block together with its parent's hash, so equal hashes mean equal
content *and* equal everything before it. A workload describes shared content as
(prefix_key, prefix_tokens): requests with the same nonzero key start with the same
``prefix_tokens`` tokens. Within one key the block index alone then identifies the chain, so
the hash can be ``key << 24 | index`` (distinct for every key and index below 2**24 blocks).
"""

from __future__ import annotations

_INDEX_BITS = 24
_UINT64 = (1 << 64) - 1


def shared_block_hashes(prefix_key: int, prefix_tokens: int, block_size: int) -> tuple[int, ...]:
    """Chained hashes of the full blocks inside a request's shared prefix (empty if none)."""
    if prefix_key <= 0 or prefix_tokens < block_size:
        return ()
    base = prefix_key << _INDEX_BITS
    return tuple(range(base, base + prefix_tokens // block_size))


def trace_block_hashes(ids: list[int], id_tokens: int, prompt_tokens: int,
                       block_size: int) -> tuple[int, ...]:
    """Hashes of the engine's full blocks inside the identified part of a prompt.

    Block j ends at token t = (j + 1) * block_size - 1; the content up to t is identified by the
    id of the trace block holding t and t's offset in it, whatever the two block sizes are.
    These hashes are negative so they can never meet ``shared_block_hashes``.
    """
    covered = min(len(ids) * id_tokens, prompt_tokens)
    unsigned = [i & _UINT64 for i in ids]  # ids may be signed 64-bit hashes
    return tuple(
        -((unsigned[t // id_tokens] << 16) | (t % id_tokens)) - 1
        for t in range(block_size - 1, covered, block_size)
    )
