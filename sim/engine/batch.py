"""What one engine step computes: the input of the latency model."""

from __future__ import annotations

from typing import NamedTuple


class Batch(NamedTuple):
    """The work of one step, in the aggregate terms a step's time depends on.

    A prefill chunk of ``n`` new tokens after ``c`` already computed ones attends to
    ``n * c + n * (n + 1) / 2`` (query, key) pairs under the causal mask and reads ``c + n``
    tokens of KV; a decoding sequence with context ``c`` attends to ``c`` tokens.
    """

    prefill_tokens: int = 0
    prefill_seqs: int = 0
    prefill_attention_pairs: float = 0.0
    prefill_kv_tokens: int = 0
    decode_seqs: int = 0
    decode_context_tokens: int = 0
    # KV of prefix-cache hits copied back from host memory (the CPU offload tier) this step
    loaded_kv_tokens: int = 0
    # of the decoding sequences, those that already finished and ride along (async
    # scheduling) in a step that has no other work: their tokens are discarded, so they are no
    # inter-token gaps
    leaving_seqs: int = 0

    @property
    def num_tokens(self) -> int:
        return self.prefill_tokens + self.decode_seqs

    @property
    def num_seqs(self) -> int:
        return self.prefill_seqs + self.decode_seqs


def chunk_terms(new_tokens: int, computed: int) -> tuple[float, int]:
    """Attention pairs and KV tokens read by a prefill chunk (see ``Batch``)."""
    return new_tokens * computed + new_tokens * (new_tokens + 1) / 2, computed + new_tokens
