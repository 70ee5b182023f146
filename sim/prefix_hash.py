"""Content hashes of the shareable blocks at the start of a prompt.

vLLM hashes each full block together with its parent's hash, so equal hashes mean equal
content *and* equal everything before it. A workload describes shared content as
(prefix_key, prefix_tokens): requests with the same nonzero key start with the same
``prefix_tokens`` tokens. Within one key the block index alone then identifies the chain, so
the hash can be ``key << 24 | index`` (distinct for every key and index below 2**24 blocks).
"""

from __future__ import annotations

_INDEX_BITS = 24


def shared_block_hashes(prefix_key: int, prefix_tokens: int, block_size: int) -> tuple[int, ...]:
    """Chained hashes of the full blocks inside a request's shared prefix (empty if none)."""
    if prefix_key <= 0 or prefix_tokens < block_size:
        return ()
    base = prefix_key << _INDEX_BITS
    return tuple(range(base, base + prefix_tokens // block_size))
