"""Multi-turn conversations: spec checks, exact timelines, cache hits by turn, trace sessions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmarks.session_story import hand_prefill
from sim.config.scenario import parse_scenario
from sim.engine.errors import ScenarioError
from sim.engine.prefix_hash import OWN, next_turn_segments
from sim.fleet.simulation import simulate
from sim.runner.run import run_scenario
from sim.workload.session_workload import SessionWorkload, generate_sessions
from sim.workload.workload_spec import WorkloadSpec
from tests.helpers import LinearLatency, make_setup

BS = 16


def conversations(*sessions: tuple[float, list[int], list[int], float]) -> SessionWorkload:
    """Conversations as (start, tokens added per turn, reply per turn, think time)."""
    added = [a for _, adds, _, _ in sessions for a in adds]
    replies = [r for _, _, reps, _ in sessions for r in reps]
    thinks = [t for _, adds, _, t in sessions for _ in adds]
    turns = np.array([len(adds) for _, adds, _, _ in sessions])
    return SessionWorkload(
        start_s=np.array([start for start, *_ in sessions], dtype=float), turns=turns,
        first_turn=np.cumsum(turns) - turns, added=np.array(added), reply=np.array(replies),
        think_s=np.array(thinks, dtype=float))


def expected_cached(added: list[int], replies: list[int], block_size: int = BS) -> list[int]:
    """By hand: turn k+1 hits turn k's full blocks of prompt plus reply minus the last reply
    token (sampled, never computed), and recomputes at least its own last prompt token."""
    out, prompt, cached = [], 0, 0
    for add, reply in zip(added, replies):
        prompt += add
        out.append(min(cached, (prompt - 1) // block_size) * block_size)
        cached = (prompt + reply - 1) // block_size
        prompt += reply
    return out


def session_scenario(sessions: dict, **workload) -> dict:
    return {
        "model": "llama-3.1-8b", "hardware": {"gpu": "h100-sxm"},
        "workload": {"arrivals": {"process": "poisson", "rate_per_s": 1.0},
                     "num_requests": 10, "sessions": sessions, **workload},
    }


BASE = {"turns": 3, "think_time_s": 5, "first_turn_tokens": 100, "new_tokens": 20,
        "reply_tokens": 10}


# ---- the scenario section ---------------------------------------------------------------

@pytest.mark.parametrize("change, field, fix", [
    ({"turns": 0}, "workload.sessions.turns", "give turns: 1 or more"),
    ({"think_time_s": -1}, "workload.sessions.think_time_s", "give 0 or more seconds"),
    ({"think_time_s": {"dist": "uniform", "min": -2, "max": 3}},
     "workload.sessions.think_time_s.min", "greater than or equal to 0"),
    ({"new_tokens": {"dist": "exponential", "mean": 100}}, "workload.sessions",
     "new_tokens: dist 'exponential' has no upper bound; add max"),
    ({"turns": {"dist": "empirical", "dataset": "sharegpt", "max": 9}},
     "workload.sessions", "turns: the empirical datasets hold token counts"),
])
def test_bad_sessions_are_refused_naming_the_field_and_fix(change, field, fix):
    with pytest.raises(ScenarioError) as exc:
        parse_scenario(session_scenario({**BASE, **change}))
    assert field in str(exc.value) and fix in str(exc.value)


def test_sessions_exclude_other_length_sources_and_closed_loop():
    with pytest.raises(ScenarioError, match="give exactly one of .* sessions"):
        parse_scenario(session_scenario(BASE, lengths={"input": 10, "output": 10}))
    closed = session_scenario(BASE)
    closed["workload"]["arrivals"] = {"process": "closed_loop", "concurrency": 2}
    with pytest.raises(ScenarioError, match="sessions: .*instead of closed_loop"):
        parse_scenario(closed)
    gated = {**session_scenario(BASE), "gateway": {"window_ms": 5}}
    with pytest.raises(ScenarioError, match="gateway: .*remove gateway or workload.sessions"):
        parse_scenario(gated)


def test_a_conversation_longer_than_max_model_len_is_refused_before_the_run():
    spec = {**BASE, "turns": 10, "reply_tokens": {"dist": "uniform", "min": 10, "max": 500}}
    scenario = session_scenario(spec)
    scenario["engine"] = {"max_model_len": 4096}
    # 100 + 9 x (20 + 500) + 500 = 5,280 tokens at the maxima
    with pytest.raises(ScenarioError, match=r"workload.sessions: .*5,280 tokens.*max_model_len "
                                            r"4,096: lower turns"):
        run_scenario(parse_scenario(scenario))
    scenario["workload"]["max_tokens"] = 300  # replies capped: 100 + 9 x 320 + 300 = 3,280
    assert run_scenario(parse_scenario(scenario)).summary["requests"]["rejected"] == 0


def test_num_requests_caps_the_turns_and_duration_bounds_the_starts():
    spec = WorkloadSpec.model_validate({"arrivals": {"process": "constant", "rate_per_s": 1},
                                        "num_requests": 7, "sessions": BASE})
    sessions = generate_sessions(spec, np.random.default_rng(0))
    assert sessions.turns.tolist() == [3, 3, 1] and len(sessions) == 7
    assert sessions.start_s.tolist() == [0.0, 1.0, 2.0]
    spec = WorkloadSpec.model_validate({"arrivals": {"process": "constant", "rate_per_s": 1},
                                        "duration_s": 4, "sessions": BASE})
    assert generate_sessions(spec, np.random.default_rng(0)).turns.tolist() == [3, 3, 3, 3]


# ---- content chain and timeline ---------------------------------------------------------

def test_next_turn_segments_chain_to_the_previous_turns_own_content():
    first = next_turn_segments((), 7, 110, BS)
    assert first == ((OWN + 7, 6),)
    assert next_turn_segments(first, 9, 140, BS) == ((OWN + 7, 6), (OWN + 9, 8))
    assert next_turn_segments(first, 9, 111, BS) == first  # no new full block: no segment


def test_exact_timeline_of_a_three_turn_conversation():
    added, replies, think = [100, 20, 20], [10, 10, 10], 5.0
    result = simulate(make_setup(latency=LinearLatency()), conversations((0.0, added, replies,
                                                                          think)))
    r = result.records
    assert r["turn"].tolist() == [1, 2, 3] and r["session"].tolist() == [0, 0, 0]
    # turn 1: a 100-token prefill (0.010 + 0.100 s), then 9 decode steps of 0.011 s
    assert r["first_token_s"][0] == pytest.approx(0.110)
    assert r["finish_s"][0] == pytest.approx(0.209)
    for k in (1, 2):  # each turn is sent exactly think time after the previous reply ends
        assert r["arrival_s"][k] == pytest.approx(r["finish_s"][k - 1] + think, abs=1e-12)
    assert r["prompt_tokens"].tolist() == [100, 130, 160]
    assert r["cached_tokens"].tolist() == expected_cached(added, replies) == [0, 96, 128]
    # turn 2 prefills only the 34 tokens after the cached 96
    assert r["first_token_s"][1] - r["arrival_s"][1] == pytest.approx(0.010 + 0.034)


def test_the_reply_as_generated_after_max_tokens_is_what_the_next_turn_resends():
    workload = conversations((0.0, [100, 20], [50, 10], 1.0))
    capped = SessionWorkload(**{**workload.__dict__, "max_tokens": 10})
    r = simulate(make_setup(), capped).records
    assert r["output_tokens"].tolist() == [10, 10]
    assert r["prompt_tokens"].tolist() == [100, 130]
    assert r["cached_tokens"].tolist() == [0, 96]


def test_without_prefix_caching_nothing_is_hit_but_records_carry_the_turns():
    r = simulate(make_setup(prefix_caching=False),
                 conversations((0.0, [100, 20, 20], [10, 10, 10], 1.0))).records
    assert r["cached_tokens"].tolist() == [0, 0, 0]
    assert r["turn"].tolist() == [1, 2, 3]


def test_a_turn_reaching_max_model_len_is_rejected_and_ends_its_conversation():
    workload = conversations((0.0, [100, 100, 100, 100], [10, 10, 10, 10], 1.0),
                             (0.5, [50], [5], 1.0))
    result = simulate(make_setup(max_model_len=220), workload)
    r = result.records.set_index("rid")
    assert r["status"].tolist() == ["completed", "completed", "completed", "rejected"]
    # turn 2: 100 + 10 + 100 = 210 tokens fit; turn 3 would re-send 320
    assert r.loc[3, "session"] == 0 and r.loc[3, "turn"] == 3
    assert r.loc[3, "prompt_tokens"] == 320
    assert result.rejected_reasons == {"prompt_exceeds_max_model_len": 1}


def test_simulated_prefill_equals_the_hand_count_and_hit_rate_by_turn():
    scenario = parse_scenario({
        "model": "llama-3.1-8b", "hardware": {"gpu": "h100-sxm"},
        "engine": {"block_size": BS},
        "workload": {"arrivals": {"process": "constant", "rate_per_s": 0.2},
                     "num_requests": 20,
                     "sessions": {"turns": 5, "think_time_s": 2, "first_turn_tokens": 1000,
                                  "new_tokens": 50, "reply_tokens": 100}},
    })
    outcome = run_scenario(scenario)
    hand = hand_prefill(turns=5, first=1000, new=50, reply=100, block_size=BS)
    assert int(outcome.result.steps["prefill_tokens"].sum()) == 4 * sum(p for _, p in hand)
    by_turn = outcome.summary["kv"]["prefix_cache_hit_rate_by_turn"]
    assert by_turn == {str(k): pytest.approx(1 - paid / prompt)
                       for k, (prompt, paid) in enumerate(hand, start=1)}
    assert by_turn["2"] == pytest.approx(1088 / 1150)  # 1,000 + 100 - 1 tokens: 68 blocks


def test_hit_rate_by_turn_is_null_without_conversations():
    summary = run_scenario(parse_scenario({
        "model": "llama-3.1-8b", "hardware": {"gpu": "h100-sxm"},
        "workload": {"arrivals": {"rate_per_s": 1.0}, "num_requests": 5,
                     "lengths": {"input": 100, "output": 10}},
    })).summary
    assert summary["kv"]["prefix_cache_hit_rate_by_turn"] is None
    records = run_scenario(parse_scenario(session_scenario(BASE))).result.records
    assert records["session"].dtype == np.int64 and records["turn"].dtype == np.int64


def test_prefix_affinity_keeps_every_turn_of_a_conversation_on_one_replica():
    workload = conversations(*[(0.3 * i, [200, 30, 30, 30], [20, 20, 20, 20], 0.5)
                               for i in range(12)])
    result = simulate(make_setup(replicas=3, router="prefix_affinity"), workload)
    r = result.records
    assert (r.groupby("session")["replica"].nunique() == 1).all()
    assert r["replica"].nunique() == 3  # conversations still spread over the replicas
    later = r[r["turn"] > 1]
    assert (later["cached_tokens"] > 0).all()


def test_session_workloads_give_the_same_records_in_both_engine_modes():
    workload = conversations(*[(0.1 * i, [300, 40, 40], [30, 60, 20], 0.05 * i)
                               for i in range(8)])
    fast = simulate(make_setup(num_gpu_blocks=80), workload).records
    plain = simulate(make_setup(num_gpu_blocks=80, macro_steps=False), workload).records
    # same requests, turns, replicas and cache hits; times equal up to rounding (a decode
    # run's closed form against a sum of steps)
    pd.testing.assert_frame_equal(fast, plain, check_exact=False, rtol=1e-9, atol=1e-9)


# ---- traces with session and turn columns -------------------------------------------------

def _trace_scenario(path, on_bad_rows="error") -> dict:
    return {
        "model": "llama-3.1-8b", "hardware": {"gpu": "h100-sxm"}, "engine": {"block_size": BS},
        "workload": {"trace": {"path": str(path), "format": "generic", "on_bad_rows": on_bad_rows,
                               "columns": {"arrival": "ts", "input": "in", "output": "out",
                                           "session_id": "sid", "turn": "turn"}}},
    }


def test_a_trace_with_session_and_turn_columns_chains_its_turns(tmp_path):
    path = tmp_path / "chat.csv"
    path.write_text("ts,sid,turn,in,out\n0,a,1,100,10\n1,b,1,50,5\n20,a,2,130,10\n"
                    "30,,,400,5\n40,a,3,160,10\n")
    outcome = run_scenario(parse_scenario(_trace_scenario(path)))
    r = outcome.result.records
    assert r["session"].tolist() == [0, 1, 0, -1, 0]
    assert r["turn"].tolist() == [1, 1, 2, -1, 3]
    assert r["cached_tokens"].tolist() == [0, 0, 96, 0, 128]  # as the generated conversation
    assert outcome.summary["kv"]["prefix_cache_hit_rate_by_turn"] == {
        "1": 0.0, "2": pytest.approx(96 / 130), "3": pytest.approx(128 / 160)}


@pytest.mark.parametrize("rows, line, column, problem", [
    ("0,a,1,100,10\n5,a,1.5,130,10\n", 3, "turn", "turn is missing or not a whole number"),
    ("0,a,2,100,10\n5,a,1,130,10\n", 3, "turn", "turn is not after the session's previous"),
    ("0,a,1,100,10\n5,a,2,105,10\n", 3, "in", "prompt is shorter than the session's previous"),
])
def test_malformed_turns_are_bad_rows(tmp_path, rows, line, column, problem):
    path = tmp_path / "bad.csv"
    path.write_text("ts,sid,turn,in,out\n" + rows + "9,b,1,40,4\n")
    with pytest.raises(ScenarioError) as exc:
        run_scenario(parse_scenario(_trace_scenario(path)))
    message = str(exc.value)
    assert f"bad.csv, line {line}, column '{column}': {problem}" in message
    assert "(got " in message and "on_bad_rows: skip" in message
    outcome = run_scenario(parse_scenario(_trace_scenario(path, "skip")))
    rows_report = outcome.summary["trace"]["rows"]
    assert rows_report["rows_dropped"] == 1 and rows_report["rows_kept"] == 2
    assert next(iter(rows_report["dropped_by_reason"])).startswith(problem)
