"""A 2,000-token context reused over a 10-turn conversation: what prefix caching saves.

Every turn of a chat re-sends the whole conversation so far. Without a prefix cache each turn
pays its whole prompt in prefill; with one, turn k finds turn k-1's prompt and reply cached and
pays only the tokens after their last full KV block. This script simulates the same
conversations with caching on and off (Llama-3.1-8B on one H100) and checks the simulated
prefill against that hand count. Prints the markdown block of docs/validation.md ("sessions").

    python benchmarks/session_story.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sim.config.scenario import parse_scenario
from sim.runner.pool_run import RunOutcome
from sim.runner.run import run_scenario

CONVERSATIONS = 300
TURNS = 10
FIRST_TURN_TOKENS = 2000
NEW_TOKENS = 100
REPLY_TOKENS = 200
THINK_TIME_S = 10.0
RATE_PER_S = 0.5  # new conversations per second: ~60 under way at once, all fitting the cache
BLOCK_SIZE = 16


def scenario(prefix_caching: bool):
    return parse_scenario({
        "name": f"sessions-{'cache' if prefix_caching else 'no-cache'}",
        "model": "llama-3.1-8b",
        "hardware": {"gpu": "h100-sxm"},
        "engine": {"prefix_caching": prefix_caching, "block_size": BLOCK_SIZE},
        "workload": {
            "arrivals": {"process": "poisson", "rate_per_s": RATE_PER_S},
            "num_requests": CONVERSATIONS * TURNS,
            "sessions": {"turns": TURNS, "think_time_s": THINK_TIME_S,
                         "first_turn_tokens": FIRST_TURN_TOKENS, "new_tokens": NEW_TOKENS,
                         "reply_tokens": REPLY_TOKENS},
        },
    })


def hand_prefill(turns: int = TURNS, first: int = FIRST_TURN_TOKENS, new: int = NEW_TOKENS,
                 reply: int = REPLY_TOKENS, block_size: int = BLOCK_SIZE) -> list[tuple[int, int]]:
    """Per turn (prompt tokens, prefill tokens with a cache that evicts nothing).

    Turn k's prompt is turn k-1's prompt, its reply and the new tokens. Turn k-1 leaves its
    full blocks cached: the last reply token is sampled but never computed, so they cover
    (prompt + reply - 1) // block_size blocks; and at least one prompt token is always
    computed, as in vLLM.
    """
    out = []
    prompt = first
    cached = 0
    for _ in range(turns):
        hit = min(cached, (prompt - 1) // block_size) * block_size
        out.append((prompt, prompt - hit))
        cached = (prompt + reply - 1) // block_size
        prompt += reply + new
    return out


def per_turn(outcome: RunOutcome) -> pd.DataFrame:
    records = outcome.result.records
    done = records[records["status"] == "completed"]
    return done.groupby("turn").agg(
        requests=("rid", "size"),
        prompt=("prompt_tokens", "mean"),
        prompt_sum=("prompt_tokens", "sum"),
        cached_sum=("cached_tokens", "sum"),
        ttft_ms=("ttft_s", lambda s: 1e3 * s.mean()),
    )


def page_block() -> str:
    cache, plain = run_scenario(scenario(True)), run_scenario(scenario(False))
    on, off = per_turn(cache), per_turn(plain)
    hand = hand_prefill()
    lines = [
        "| turn | prompt tokens | prefill tokens, no cache | prefill tokens, cache | by hand "
        "| hit rate | mean TTFT no cache / cache (ms) |",
        "|---|---|---|---|---|---|---|",
    ]
    for turn, (prompt, paid) in enumerate(hand, start=1):
        row_on, row_off = on.loc[turn], off.loc[turn]
        computed_on = (row_on.prompt_sum - row_on.cached_sum) / row_on.requests
        computed_off = (row_off.prompt_sum - row_off.cached_sum) / row_off.requests
        lines.append(
            f"| {turn} | {row_on.prompt:,.0f} | {computed_off:,.0f} | {computed_on:,.0f} "
            f"| {paid:,} | {100 * row_on.cached_sum / row_on.prompt_sum:.1f} % "
            f"| {row_off.ttft_ms:,.0f} / {row_on.ttft_ms:,.0f} |"
        )
    paid_on = int(cache.result.steps["prefill_tokens"].sum())
    paid_off = int(plain.result.steps["prefill_tokens"].sum())
    conversations = int(on["requests"].min())
    hand_on = conversations * sum(paid for _, paid in hand)
    hand_off = conversations * sum(prompt for prompt, _ in hand)
    summary = cache.summary
    lines += [
        "",
        f"{conversations} conversations of {TURNS} turns ({FIRST_TURN_TOKENS:,}-token first "
        f"turn, then {NEW_TOKENS} new tokens and a {REPLY_TOKENS}-token reply per turn, "
        f"{THINK_TIME_S:g} s think time), {RATE_PER_S:g} new conversations/s, Llama-3.1-8B on "
        f"one H100 ({summary['kv']['num_gpu_blocks']:,} blocks of {BLOCK_SIZE} tokens), "
        f"seed {summary['seed']}. Prefill tokens per conversation from the records "
        "(prompt minus cached); totals from the step log.",
        "",
        "| prefill tokens, all conversations | simulated | by hand |",
        "|---|---|---|",
        f"| without caching | {paid_off:,} | {hand_off:,} |",
        f"| with caching | {paid_on:,} | {hand_on:,} |",
        f"| ratio | {paid_off / paid_on:.2f}x | {hand_off / hand_on:.2f}x |",
        "",
        f"Preemptions: {summary['kv']['preemptions']} with caching, "
        f"{plain.summary['kv']['preemptions']} without. Overall prefix hit rate "
        f"{100 * summary['kv']['prefix_cache_hit_rate']:.1f} %; mean TTFT "
        f"{plain.summary['ttft_ms']['mean']:,.0f} ms without caching, "
        f"{summary['ttft_ms']['mean']:,.0f} ms with it.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(page_block())
