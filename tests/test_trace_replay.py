"""Traces replayed through the simulator: ids kept, prefix ids turned into cache hits."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from sim.commands.cli import main
from sim.config.scenario import parse_scenario
from sim.engine.errors import ScenarioError
from sim.engine.prefix_hash import shared_prefix_segments, trace_segments
from sim.runner.run import run_scenario
from traces.trace import open_trace

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def scenario(trace: dict, **workload: object) -> dict:
    return {
        "model": "llama-3.1-8b",
        "hardware": {"gpu": "h100-sxm"},
        "workload": {"trace": trace, **workload},
    }


def test_the_azure_conversation_hour_replays_from_a_scenario_file(tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    assert main(["run", str(EXAMPLES / "azure-conv-2023-replay-h100.yaml"), "--out", str(out),
                 "--format", "json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["requests"]["completed"] == 19_366
    assert summary["trace"]["format"] == "azure"
    assert summary["trace"]["rows"]["rows_kept"] == 19_366
    records = pd.read_parquet(out / "requests.parquet")
    # the trace's own ids (row numbers of the CSV) join the results back to the log
    assert records["trace_id"].tolist()[:3] == ["0", "1", "2"]
    assert records.loc[records["trace_id"] == "1", "prompt_tokens"].item() == 396
    assert records["arrival_s"].iloc[1] == pytest.approx(4.3145790, abs=1e-6)


def unbounded_reuse(trace: str, rows: int) -> float:
    """Share of prompt tokens in blocks whose id an earlier request already had."""
    table = open_trace(trace).read().slice(0, rows)
    seen: set[int] = set()
    reused = total = 0
    for ids, prompt in zip(table["prefix_ids"].to_pylist(), table["input_tokens"].to_pylist()):
        for i, block_id in enumerate(ids):
            tokens = min(512, prompt - 512 * i)
            total += tokens
            reused += tokens if block_id in seen else 0
        seen.update(ids)
    return reused / total


def test_mooncake_hash_ids_become_prefix_cache_hits() -> None:
    """With a cache too big to evict, simulated hits equal the trace's own reuse."""

    def run(caching: bool) -> dict:
        data = scenario({"path": "mooncake-synthetic"}, num_requests=1500)
        data["hardware"] = {"gpu": "h200"}
        data["engine"] = {"prefix_caching": caching, "num_gpu_blocks": 2_000_000,
                          "max_model_len": 131_072}
        return run_scenario(parse_scenario(data)).summary

    cached, uncached = run(True), run(False)
    reuse = unbounded_reuse("mooncake-synthetic", 1500)
    assert reuse > 0.2
    assert cached["kv"]["prefix_cache_hit_rate"] == pytest.approx(reuse, abs=0.01)
    assert uncached["kv"]["prefix_cache_hit_rate"] == 0.0
    assert cached["ttft_ms"]["mean"] < uncached["ttft_ms"]["mean"]


def test_num_requests_and_max_tokens_apply_to_a_trace() -> None:
    data = scenario({"path": "azure-code-2023"}, num_requests=500, max_tokens=16)
    summary = run_scenario(parse_scenario(data)).summary
    assert summary["requests"]["arrived"] == 500
    assert summary["requests"]["capped_by_max_tokens"] > 0


@pytest.mark.parametrize("pools", [False, True])
def test_a_window_past_the_trace_is_a_scenario_error(pools: bool) -> None:
    data = scenario({"path": "azure-code-2023", "start_s": 10_000_000, "end_s": 10_000_100})
    if pools:
        data["fleet"] = {"pools": [{"name": "only", "model": "llama-3.1-8b",
                                    "hardware": {"gpu": "h100-sxm"}}],
                         "routes": [{"to": "only"}]}
        del data["model"], data["hardware"]
    with pytest.raises(ScenarioError, match="no requests to replay.*widen the time window"):
        run_scenario(parse_scenario(data))


def test_a_bad_trace_row_is_named_and_exits_2(tmp_path: Path, capsys) -> None:
    trace = tmp_path / "bad.csv"
    trace.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n"
                     "2023-11-16 18:15:46.6805900,374,44\n"
                     "2023-11-16 18:15:47.1000000,abc,44\n")
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(scenario({"path": str(trace)})))
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert "line 3" in err and "ContextTokens" in err and "on-bad-rows skip" in err
    data = scenario({"path": str(trace), "on_bad_rows": "skip"})
    summary = run_scenario(parse_scenario(data)).summary
    assert summary["requests"]["arrived"] == 1
    assert summary["trace"]["rows"]["rows_dropped"] == 1


def test_a_trace_cannot_be_combined_with_generated_arrivals() -> None:
    from sim.engine.errors import ScenarioError

    with pytest.raises(ScenarioError, match="remove arrivals"):
        parse_scenario(scenario({"path": "azure-conv-2023"}, arrivals={"rate_per_s": 3}))


def test_trace_segments_map_any_block_size_onto_the_trace_ids() -> None:
    a = trace_segments([7, 8], 512, 1024, 16)
    b = trace_segments([7, 9], 512, 1000, 16)
    # only full blocks of the prompt: 64 and 62 of them, 32 per 512-token trace block
    assert [end for _, end in a] == [32, 64] and [end for _, end in b] == [32, 62]
    assert a[0] == b[0] and a[1][0] != b[1][0]  # the same first id, different second ones
    # engine blocks larger than the trace's: a block belongs to its last token's trace block
    assert trace_segments([1, 2, 3, 4], 16, 64, 32) == trace_segments([5, 2, 6, 4], 16, 64, 32)
    assert [end for _, end in trace_segments([1, 2, 3, 4], 16, 64, 32)] == [1, 2]
    # never the owner of a generated workload's shared prefix, whatever the ids' signs
    owners = {owner for owner, _ in trace_segments(list(range(40)), 16, 640, 16)}
    assert not owners & {owner for owner, _ in shared_prefix_segments(1, 640, 16)}
    assert trace_segments([-5], 16, 16, 16) != trace_segments([5], 16, 16, 16)


def test_a_relative_trace_path_is_read_from_the_scenario_folder(tmp_path: Path, monkeypatch,
                                                                capsys) -> None:
    folder = tmp_path / "plans"
    folder.mkdir()
    (folder / "mine.csv").write_text("arrived_at,num_prefill_tokens,num_decode_tokens\n"
                                     "0.0,100,10\n0.5,200,20\n")
    (folder / "s.yaml").write_text(yaml.safe_dump(scenario({"path": "mine.csv"})))
    monkeypatch.chdir(tmp_path)
    assert main(["run", str(folder / "s.yaml"), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["requests"]["completed"] == 2


def test_the_earliest_bad_line_is_reported_whatever_its_problem(tmp_path: Path) -> None:
    from traces.errors import TraceError

    trace = tmp_path / "t.csv"
    trace.write_text("arrived_at,num_prefill_tokens,num_decode_tokens\n"
                     "0.0,100,10\n1.0,-5,10\nbad,100,10\n")
    with pytest.raises(TraceError, match="line 3"):
        open_trace(trace).read()


def test_endpoint_caps_cut_replies_and_size_contiguous_reservations(tmp_path: Path) -> None:
    """Per-endpoint caps cut the replies exactly, are counted, and become each request's
    max_tokens, which is what a contiguous KV allocator reserves for."""
    trace = tmp_path / "log.csv"
    trace.write_text("t,p,c,kind\n0.0,100,500,chat\n0.1,100,50,chat\n0.2,100,500,code\n"
                     "0.3,100,900,batch\n")
    spec = {"path": str(trace), "format": "generic",
            "columns": {"arrival": "t", "input": "p", "output": "c", "endpoint": "kind"},
            "max_tokens_by_endpoint": {"chat": 200, "code": 300, "*": 800}}
    data = scenario(spec, max_tokens=1000)
    data["engine"] = {"kv_allocation": "contiguous"}
    outcome = run_scenario(parse_scenario(data))
    chunks = list(outcome.workload)
    assert [c.max_tokens.tolist() for c in chunks] == [[200, 200, 300, 800]]
    records = outcome.result.records.sort_values("rid")
    assert records["output_tokens"].tolist() == [200, 50, 300, 800]
    requests = outcome.summary["requests"]
    assert requests["capped_by_max_tokens"] == 3
    assert requests["output_tokens_saved"] == 300 + 200 + 100
    assert outcome.summary["kv"]["waste"]["internal_fragmentation"] > 0
    by_endpoint = outcome.summary["by_endpoint"]
    assert {k: v["output_tokens"] for k, v in by_endpoint.items()} == {
        "chat": 250, "code": 300, "batch": 800}
