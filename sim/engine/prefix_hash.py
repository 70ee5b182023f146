"""What a request's tokens are, in the terms the prefix cache compares: content segments.

vLLM hashes each full block together with everything before it, so two blocks match only when
all tokens up to their ends do. servesim names a block's content by its position in the
request's token sequence and the *owner* of its last token, the content stream that token
belongs to. A request's tokens are a list of segments ``(owner, end)``: blocks
``[previous end, end)`` belong to ``owner``::

    shared system prompt (key 5)     own prompt tail and reply
    [ 5: blocks 0..92 ][ block 93 straddles: its last token is own ][ own ....
    segments: ((5, 93), (OWN + rid, NO_END))

Owners never collide: a workload's prefix keys are small positive numbers, a trace's prefix ids
negative, a request's own content ``OWN + rid``. Every request that uses an owner's content
starts it at the same position (content only grows at its end), which is what lets the block
pool keep each owner's cached blocks as one chain.
"""

from __future__ import annotations

OWN = 1 << 48  # own content of request rid is owner OWN + rid
NO_END = 1 << 62  # the own segment runs to the end of the request, whatever it generates
_UINT64 = (1 << 64) - 1
Segments = tuple[tuple[int, int], ...]


def own_segment(rid: int) -> tuple[int, int]:
    return OWN + rid, NO_END


def is_own(owner: int) -> bool:
    return owner >= OWN


def shared_prefix_segments(prefix_key: int, prefix_tokens: int, block_size: int) -> Segments:
    """The full blocks inside a shared prefix of ``prefix_tokens`` tokens (none if no key)."""
    if prefix_key <= 0 or prefix_tokens < block_size:
        return ()
    if prefix_key >= OWN:
        raise ValueError(f"prefix keys must be below {OWN}, got {prefix_key}")
    return ((prefix_key, prefix_tokens // block_size),)


def trace_segments(ids: list[int], id_tokens: int, prompt_tokens: int,
                   block_size: int) -> Segments:
    """Segments of the identified part of a prompt: one per trace prefix id.

    A trace names its prompts' leading blocks of ``id_tokens`` tokens with chained ids (equal
    ids = equal content up to that block's end, e.g. Mooncake's 512-token blocks). An engine
    block belongs to the id of the trace block holding its last token, whatever the two block
    sizes are.
    """
    covered = min(len(ids) * id_tokens, prompt_tokens)
    segments = []
    start = 0
    for i, trace_id in enumerate(ids):
        end = min((i + 1) * id_tokens, covered) // block_size
        if end > start:
            segments.append((-(trace_id & _UINT64) - 1, end))  # ids may be signed 64-bit
            start = end
        if (i + 1) * id_tokens >= covered:
            break
    return tuple(segments)


def next_turn_segments(previous: Segments, rid: int, conversation_tokens: int,
                       block_size: int) -> Segments:
    """Segments of a conversation's next turn: the previous turn's segments, then that turn's
    own content (request ``rid``: its prompt tail and reply) up to the last full block of the
    ``conversation_tokens`` (its prompt plus its reply) that the next prompt re-sends::

        turn k:    [ previous segments ][ own: rid_k ...prompt tail, reply... ]
        turn k+1:  [ previous segments ][ OWN + rid_k, to the last full block ][ own ...

    No segment is added when the previous turn filled no block past its segments.
    """
    end = conversation_tokens // block_size
    if end <= (previous[-1][1] if previous else 0):
        return previous
    return (*previous, (OWN + rid, end))
