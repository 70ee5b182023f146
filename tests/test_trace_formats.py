"""Each trace format reads its real (or fixture) file into the normalized form, exactly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from traces.errors import TraceError
from traces.formats import llmservingsim
from traces.formats.normalized import write_normalized
from traces.schema import COLUMNS
from traces.trace import FORMATS, Trace, detect_format, open_trace

DATA = Path(__file__).parent / "data" / "traces"
BURSTGPT = DATA / "burstgpt.csv"
BURSTGPT_SESSIONS = DATA / "burstgpt-sessions.csv"
VLLM_BENCH = DATA / "vllm-bench-result.json"
LLMSERVINGSIM = DATA / "sharegpt-llama-3.1-8b-300-sps10.jsonl"


def read(source, format: str | None = None, **kwargs) -> tuple[pa.Table, Trace]:
    trace = open_trace(source, format, **kwargs)
    return trace.read(), trace


def assert_normalized(table: pa.Table) -> None:
    for name in table.column_names:
        assert table.schema.field(name).type == COLUMNS[name], name
    arrival = table["arrival_s"].to_numpy()
    assert arrival[0] == 0.0
    assert np.all(np.diff(arrival) >= 0)
    assert np.all(np.diff(table["line"].to_numpy()) > 0)


# --- the bundled traces ---------------------------------------------------------------------

@pytest.mark.parametrize("name, format, rows, first", [
    ("azure-conv-2023", "azure", 19_366, (374, 44)),
    ("azure-code-2023", "azure", 8_819, (4808, 10)),
    ("mooncake-conversation", "mooncake", 12_031, (6758, 500)),
    ("mooncake-synthetic", "mooncake", 3_993, (40160, 6)),
    ("splitwise-conv", "splitwise", 19_366, (374, 44)),
    ("splitwise-code", "splitwise", 8_819, (4808, 10)),
])
def test_bundled_traces_read_whole(name, format, rows, first) -> None:
    table, trace = read(name)
    assert trace.format == format
    assert table.num_rows == rows
    assert (table["input_tokens"][0].as_py(), table["output_tokens"][0].as_py()) == first
    assert trace.report.summary()["rows_dropped"] == 0
    assert_normalized(table)


def test_azure_and_splitwise_hold_the_same_conversation_rows() -> None:
    azure, _ = read("azure-conv-2023")
    splitwise, _ = read("splitwise-conv")
    assert azure["input_tokens"].equals(splitwise["input_tokens"])
    assert np.allclose(azure["arrival_s"].to_numpy(), splitwise["arrival_s"].to_numpy(), atol=1e-3)


def test_mooncake_prefix_ids_cover_512_token_blocks() -> None:
    table, trace = read("mooncake-conversation")
    assert trace.prefix_block_tokens == 512
    assert table["prefix_ids"][0].as_py() == list(range(14))
    blocks = np.array([len(ids) for ids in table["prefix_ids"].to_pylist()])
    assert np.all(blocks == -(-table["input_tokens"].to_numpy() // 512))


# --- BurstGPT ------------------------------------------------------------------------------

def test_burstgpt_reads_the_published_layout() -> None:
    table, trace = read(BURSTGPT, on_bad_rows="skip")
    assert trace.format == "burstgpt"
    assert table.slice(0, 1).to_pylist()[0] == {
        "arrival_s": 0.0, "input_tokens": 538, "output_tokens": 33, "request_id": "0", "line": 2,
        "model": "GPT-4", "endpoint": "Conversation log",
    }
    assert table["arrival_s"][1].as_py() == 12.0  # Timestamp 17 less the first row's 5
    assert set(table["model"].to_pylist()) == {"ChatGPT", "GPT-4"}
    assert set(table["endpoint"].to_pylist()) == {"Conversation log", "API log"}
    assert_normalized(table)


def test_burstgpt_failed_requests_are_counted_bad_rows() -> None:
    table, trace = read(BURSTGPT, on_bad_rows="skip")
    summary = trace.report.summary()
    assert (summary["rows_read"], summary["rows_kept"], table.num_rows) == (40, 37, 37)
    assert summary["dropped_by_reason"] == {"token count is below 1": 3}
    assert 13 not in table["line"].to_pylist()
    with pytest.raises(TraceError, match=r"burstgpt\.csv, line 13, column 'Response tokens'"):
        open_trace(BURSTGPT).read()


def test_burstgpt_sessions_layout_keeps_sessions() -> None:
    table, trace = read(BURSTGPT_SESSIONS, on_bad_rows="skip")
    assert trace.format == "burstgpt"
    assert table.num_rows == 23 and trace.report.rows_dropped == 1
    assert table.slice(0, 1).to_pylist()[0] == {
        "arrival_s": 0.0, "input_tokens": 18, "output_tokens": 18, "request_id": "0", "line": 2,
        "session_id": "1472188", "model": "ChatGPT", "endpoint": "Conversation log",
    }
    # each turn's prompt carries the conversation so far
    for session in set(table["session_id"].to_pylist()):
        turns = table.filter(pa.compute.equal(table["session_id"], session))
        assert np.all(np.diff(turns["input_tokens"].to_numpy()) > 0)
    assert_normalized(table)


# --- vLLM benchmark results ----------------------------------------------------------------

def test_vllm_bench_arrivals_are_the_start_times() -> None:
    table, trace = read(VLLM_BENCH, on_bad_rows="skip")
    result = json.loads(VLLM_BENCH.read_text())
    assert trace.format == "vllm_bench"
    assert trace.report.summary()["dropped_by_reason"] == {"token count is below 1": 1}
    assert table.num_rows == 31 and 18 not in table["line"].to_pylist()  # the failed request
    starts = np.array(result["start_times"])
    kept = table["line"].to_numpy() - 1
    assert np.allclose(table["arrival_s"].to_numpy(), starts[kept] - starts[0])
    assert table["input_tokens"].to_pylist() == [result["input_lens"][i] for i in kept]
    assert_normalized(table)


def write_bench(tmp_path: Path, count: int, **fields) -> Path:
    result = {"input_lens": [100] * count, "output_lens": [10] * count, **fields}
    path = tmp_path / "result.json"
    path.write_text(json.dumps(result))
    return path


def test_vllm_bench_without_start_times_draws_poisson_arrivals(tmp_path) -> None:
    path = write_bench(tmp_path, 20_000, request_rate=4.0)
    first, _ = read(path)
    again, _ = read(path, options={"seed": 0})
    other, _ = read(path, options={"seed": 1})
    gaps = np.diff(first["arrival_s"].to_numpy())
    assert first["arrival_s"][0].as_py() == 0.0
    assert first.equals(again) and not first.equals(other)
    assert gaps.mean() == pytest.approx(0.25, rel=0.03)
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, rel=0.05)  # exponential gaps


def test_vllm_bench_burstiness_shapes_the_gaps(tmp_path) -> None:
    table, _ = read(write_bench(tmp_path, 20_000, request_rate=4.0, burstiness=0.25))
    gaps = np.diff(table["arrival_s"].to_numpy())
    assert gaps.mean() == pytest.approx(0.25, rel=0.05)
    assert (gaps.std() / gaps.mean()) ** 2 == pytest.approx(4.0, rel=0.1)  # CV^2 = 1/shape


def test_vllm_bench_infinite_rate_sends_everything_at_once(tmp_path) -> None:
    table, _ = read(write_bench(tmp_path, 5, request_rate="inf"))
    assert table["arrival_s"].to_pylist() == [0.0] * 5


def test_vllm_bench_without_any_timing_is_an_error(tmp_path) -> None:
    with pytest.raises(TraceError, match="request_rate None"):
        read(write_bench(tmp_path, 5))


# --- LLMServingSim -------------------------------------------------------------------------

def test_llmservingsim_reads_the_real_workload() -> None:
    table, trace = read(LLMSERVINGSIM)
    rows = [json.loads(line) for line in LLMSERVINGSIM.read_text().splitlines()]
    assert trace.format == "llmservingsim" and trace.prefix_block_tokens == 16
    assert table.num_rows == 300
    first = table.slice(0, 1).to_pylist()[0]
    assert (first["input_tokens"], first["output_tokens"], first["line"]) == (2358, 531, 1)
    assert table["arrival_s"][1].as_py() == pytest.approx((347_938_951 - 46_926_808) / 1e9)
    assert table["input_tokens"].to_pylist() == [r["input_toks"] for r in rows]
    assert_normalized(table)


def test_llmservingsim_prefix_ids_chain_full_16_token_blocks() -> None:
    table, _ = read(LLMSERVINGSIM)
    ids = table["prefix_ids"].to_pylist()
    assert [len(i) for i in ids] == [n // 16 for n in table["input_tokens"].to_pylist()]
    # pinned: the same on every run and platform
    assert ids[0][:2] == [-3013537521367060207, 3653248095660297725]
    # two prompts share exactly as many leading ids as they have equal leading 16-token blocks
    prompts = [blocks(json.loads(line)["input_tok_ids"])
               for line in LLMSERVINGSIM.read_text().splitlines()]
    for a in range(len(prompts)):
        for b in range(a + 1, len(prompts)):
            assert leading_equal(ids[a], ids[b]) == leading_equal(prompts[a], prompts[b])


def blocks(tokens: list[int]) -> list[list[int]]:
    return [tokens[i:i + 16] for i in range(0, len(tokens) // 16 * 16, 16)]


def leading_equal(a: list, b: list) -> int:
    count = 0
    while count < min(len(a), len(b)) and a[count] == b[count]:
        count += 1
    return count


def test_block_ids_depend_on_every_token_up_to_the_block() -> None:
    tokens = np.arange(1000, 1040)  # two full blocks and 8 tokens over
    ids = llmservingsim.block_ids(tokens)
    assert len(ids) == 2
    late = tokens.copy()
    late[20] += 1  # in the second block
    assert llmservingsim.block_ids(late) == [ids[0], llmservingsim.block_ids(late)[1]]
    assert llmservingsim.block_ids(late)[1] != ids[1]
    early = tokens.copy()
    early[3] += 1  # in the first block: changes both
    assert all(x != y for x, y in zip(llmservingsim.block_ids(early), ids))
    over = tokens.copy()
    over[35] += 1  # past the last full block: no id covers it
    assert llmservingsim.block_ids(over) == ids


# --- generic -------------------------------------------------------------------------------

BURSTGPT_MAPPING = {"arrival": "Timestamp", "input": "Request tokens",
                    "output": "Response tokens", "model": "Model", "endpoint": "Log Type"}


def test_generic_csv_with_a_mapping_reads_like_the_dedicated_format() -> None:
    generic, _ = read(BURSTGPT, "generic", on_bad_rows="skip", options=BURSTGPT_MAPPING)
    dedicated, _ = read(BURSTGPT, on_bad_rows="skip")
    assert generic.equals(dedicated)


def test_generic_jsonl_in_milliseconds(tmp_path) -> None:
    path = tmp_path / "log.jsonl"
    rows = [{"t": 1000 + 250 * i, "p": 10 + i, "c": 5, "id": f"r{i}", "prio": i % 2}
            for i in range(5)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    table, _ = read(path, "generic", options={
        "arrival": "t", "arrival_unit": "ms", "input": "p", "output": "c", "request_id": "id",
        "priority": "prio"})
    assert table["arrival_s"].to_pylist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert table["request_id"].to_pylist() == ["r0", "r1", "r2", "r3", "r4"]
    assert table["priority"].to_pylist() == [0, 1, 0, 1, 0]
    assert table["line"].to_pylist() == [1, 2, 3, 4, 5]


def test_generic_parquet_with_timestamps_streams_rows(tmp_path) -> None:
    path = tmp_path / "log.parquet"
    stamps = np.datetime64("2024-05-01T12:00:00") + np.arange(1000) * np.timedelta64(2, "s")
    pq.write_table(pa.table({"when": pa.array(stamps, pa.timestamp("ms", tz="UTC")),
                             "prompt": np.arange(1, 1001), "reply": np.full(1000, 7),
                             "user": [f"u{i % 3}" for i in range(1000)]}), path)
    trace = open_trace(path, "generic", chunk_bytes=64 * 100, options={
        "arrival": "when", "arrival_unit": "datetime", "input": "prompt", "output": "reply",
        "session_id": "user"})
    chunks = list(trace.chunks())
    assert len(chunks) == 10
    table = pa.concat_tables(chunks)
    assert table["arrival_s"].to_pylist() == [2.0 * i for i in range(1000)]
    assert table["line"].to_pylist() == list(range(1, 1001))
    assert table["session_id"][4].as_py() == "u1"


def test_generic_datetime_text(tmp_path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("at,in,out\n2024-05-01 12:00:00,5,6\n2024-05-01T12:00:01.5+00:00,5,6\n")
    table, _ = read(path, "generic", options={"arrival": "at", "arrival_unit": "datetime",
                                              "input": "in", "output": "out"})
    assert table["arrival_s"].to_pylist() == [0.0, 1.5]


def test_generic_names_a_missing_column_and_the_ones_there_are() -> None:
    with pytest.raises(TraceError, match=r"no column 'Tokens' \(option input\).*'Request tokens'"):
        read(BURSTGPT, "generic", options={**BURSTGPT_MAPPING, "input": "Tokens"})


def test_generic_needs_the_required_options() -> None:
    with pytest.raises(TraceError, match="missing: output"):
        read(BURSTGPT, "generic", options={"arrival": "Timestamp", "input": "Request tokens"})
    with pytest.raises(TraceError, match="arrival_unit"):
        read(BURSTGPT, "generic", options={**BURSTGPT_MAPPING, "arrival_unit": "minutes"})


def test_unknown_options_are_refused() -> None:
    with pytest.raises(TraceError, match=r"unknown option\(s\) \['arival'\]"):
        open_trace(BURSTGPT, "generic", options={**BURSTGPT_MAPPING, "arival": "x"})
    with pytest.raises(TraceError, match="it takes none"):
        open_trace(BURSTGPT, options={"seed": 1})


# --- normalized ----------------------------------------------------------------------------

@pytest.mark.parametrize("source", ["mooncake-synthetic", LLMSERVINGSIM, BURSTGPT_SESSIONS])
def test_normalized_round_trip(tmp_path, source) -> None:
    original = open_trace(source, on_bad_rows="skip", chunk_bytes=1 << 16)
    path = tmp_path / "trace.parquet"
    rows = write_normalized(original.chunks(), path, original.prefix_block_tokens, original.format)
    table, trace = read(path)
    assert trace.format == "normalized"
    assert rows == table.num_rows
    assert table.equals(original.read())
    assert trace.prefix_block_tokens == original.prefix_block_tokens
    metadata = pq.read_schema(path).metadata
    assert metadata[b"servesim.source_format"] == original.format.encode()


def test_normalized_without_rows_is_still_a_trace(tmp_path) -> None:
    path = tmp_path / "empty.parquet"
    assert write_normalized([], path, 0, "azure") == 0
    assert detect_format(path) == "normalized"
    with pytest.raises(TraceError, match="no usable rows"):
        open_trace(path).read()


def test_normalized_prefix_ids_need_their_block_size(tmp_path) -> None:
    path = tmp_path / "hand-made.parquet"
    pq.write_table(pa.table({"arrival_s": [0.0], "input_tokens": [32], "output_tokens": [1],
                             "request_id": ["a"], "line": [1], "prefix_ids": [[1, 2]]}), path)
    with pytest.raises(TraceError, match="servesim.prefix_block_tokens"):
        _ = open_trace(path).prefix_block_tokens


# --- detection, chunking -------------------------------------------------------------------

FILES = {
    "burstgpt": [BURSTGPT, BURSTGPT_SESSIONS],
    "vllm_bench": [VLLM_BENCH],
    "llmservingsim": [LLMSERVINGSIM],
}


def bundled(name: str) -> Path:
    return open_trace(name).path


def test_each_file_is_claimed_by_its_own_sniffer_only(tmp_path) -> None:
    files = {**FILES, "azure": [bundled("azure-conv-2023")], "splitwise": [bundled("splitwise-conv")],
             "mooncake": [bundled("mooncake-conversation")]}
    normalized = tmp_path / "n.parquet"
    write_normalized(open_trace("azure-code-2023").chunks(), normalized, 0, "azure")
    files["normalized"] = [normalized]
    for format, paths in files.items():
        for path in paths:
            head = path.read_text(errors="replace")[:4096]
            claims = [name for name, module in FORMATS.items() if module.sniff(path, head)]
            assert claims == [format], path.name
            assert detect_format(path) == format


def test_generic_is_never_detected(tmp_path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("t,p,c\n0,1,1\n")
    with pytest.raises(TraceError, match="cannot tell the trace format"):
        detect_format(path)


@pytest.mark.parametrize("source, format, options, chunk_bytes", [
    (BURSTGPT, None, {}, 200),
    (LLMSERVINGSIM, None, {}, 1 << 14),
    (VLLM_BENCH, None, {}, 200),
    ("mooncake-synthetic", None, {}, 1 << 16),
    ("splitwise-code", None, {}, 1 << 12),
    (BURSTGPT, "generic", BURSTGPT_MAPPING, 200),
])
def test_small_chunks_read_the_same_rows(source, format, options, chunk_bytes) -> None:
    whole, _ = read(source, format, on_bad_rows="skip", options=options)
    pieces = open_trace(source, format, on_bad_rows="skip", chunk_bytes=chunk_bytes,
                        options=options)
    chunks = list(pieces.chunks())
    assert len(chunks) > 1
    assert pa.concat_tables(chunks).equals(whole)


def test_azure_2024_timestamps_with_a_utc_offset(tmp_path: Path) -> None:
    """The 2024 week-long Azure traces carry an offset on every timestamp."""
    path = tmp_path / "AzureLLMInferenceTrace_conv_1week.csv"
    path.write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2024-05-10 00:00:00.009930+00:00,2269,263\n"
        "2024-05-10 00:00:00.522510+00:00,1232,198\n"
        "2024-05-10 00:00:02+00:00,35,12\n"
    )
    trace = open_trace(path)
    assert trace.format == "azure"
    table = trace.read()
    assert table["arrival_s"].to_pylist() == pytest.approx([0.0, 0.51258, 1.99007])
    assert table["input_tokens"].to_pylist() == [2269, 1232, 35]


def test_a_cell_that_is_no_number_is_quoted_as_the_file_writes_it(tmp_path) -> None:
    from traces.errors import TraceError
    from traces.source_cell import cell_text
    from traces.trace import open_trace

    path = tmp_path / "azure.csv"
    path.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n"
                    "2024-05-10 00:00:01+00:00,100,20\n"
                    "2024-05-10 00:00:02+00:00,abc,20\n")
    with pytest.raises(TraceError, match=r"line 3, column 'ContextTokens': token count is "
                                         r"missing or not a number \(got 'abc'\)"):
        for _ in open_trace(path).chunks():
            pass
    path.write_text(path.read_text().replace("abc", ""))
    with pytest.raises(TraceError, match=r"\(got ''\)"):
        for _ in open_trace(path).chunks():
            pass
    lines = tmp_path / "t.jsonl"
    lines.write_text('{"timestamp": 0, "input_length": 10}\n{"timestamp": 1, "input_length": "lots"}\n')
    assert cell_text(str(lines), 2, "input_length") == "lots"
    assert cell_text(str(lines), 1, "input_length") == "10"
    assert cell_text(str(lines), 9, "input_length") is None
    assert cell_text(str(tmp_path / "x.parquet"), 1, "a") is None
