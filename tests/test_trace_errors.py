"""Malformed traces, in every format: an error that points at the row, or a count of what was
dropped, and never any other exception.

Every format is written from the same five good rows through a ``Layout`` (its columns and how
it stores arrival times); each case spoils one value, one line or the whole file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from traces.errors import TraceError
from traces.trace import Trace, open_trace

GOOD = [(0.0, 100, 10), (1.0, 200, 20), (2.0, 300, 30), (3.0, 400, 40), (4.0, 500, 50)]
TEXT = "abc"  # a cell that is no number
AZURE_START = datetime(2023, 11, 16, 18, 15, 46)


@dataclass(frozen=True)
class Layout:
    format: str
    kind: str  # csv | jsonl | json (one object of lists) | parquet
    columns: tuple[str, str, str]  # the file's arrival, input and output column
    arrival: Callable[[float], object]  # seconds -> what the file holds
    extra: Callable[[int], dict] = lambda i: {}  # the file's other columns, row i
    options: dict = field(default_factory=dict)

    @property
    def first_line(self) -> int:
        """The line (or position) an error gives for the first row."""
        return 2 if self.kind == "csv" else 1

    def row(self, index: int, arrival: object, input_: object, output: object) -> dict:
        stored = self.arrival(arrival) if isinstance(arrival, float) else arrival
        return {self.columns[0]: stored, self.columns[1]: input_, self.columns[2]: output,
                **self.extra(index)}

    def write(self, directory: Path, rows: list, drop: str | None = None) -> Path:
        """rows: (arrival_s, input, output) tuples, or raw lines (str) put in as they are."""
        names = [name for name in self.row(0, 0.0, 1, 1) if name != drop]
        rows = [{n: self.row(i, *r)[n] for n in names} if isinstance(r, tuple) else r
                for i, r in enumerate(rows)]
        path = directory / f"{self.format}.{self.kind}"
        if self.kind == "csv":
            lines = [r if isinstance(r, str) else ",".join(_cell(r[n]) for n in names) for r in rows]
            path.write_text("\n".join([",".join(names), *lines]) + "\n")
        elif self.kind == "jsonl":
            path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
        elif self.kind == "json":
            lists = {n: [r[n] for r in rows] for n in names}
            path.write_text(json.dumps({"request_rate": 4.0, **lists}))
        else:
            types = {self.columns[1]: pa.float64(), self.columns[2]: pa.float64()}
            pq.write_table(pa.table({n: pa.array([r[n] for r in rows], types.get(n)) for n in names}),
                           path)
        return path

    def open(self, path: Path, policy: str) -> Trace:
        return open_trace(path, self.format, on_bad_rows=policy, options=self.options)


def _cell(value: object) -> str:
    return "" if value is None else str(value)


LAYOUTS = [
    Layout("azure", "csv", ("TIMESTAMP", "ContextTokens", "GeneratedTokens"),
           lambda s: (AZURE_START + timedelta(seconds=s)).strftime("%Y-%m-%d %H:%M:%S.%f0")),
    Layout("splitwise", "csv", ("arrived_at", "num_prefill_tokens", "num_decode_tokens"),
           lambda s: s),
    Layout("burstgpt", "csv", ("Timestamp", "Request tokens", "Response tokens"), lambda s: 100 + s,
           lambda i: {"Model": "ChatGPT", "Total tokens": 0, "Log Type": "API log"}),
    Layout("mooncake", "jsonl", ("timestamp", "input_length", "output_length"), lambda s: 1000 * s,
           lambda i: {"hash_ids": [i]}),
    Layout("llmservingsim", "jsonl", ("arrival_time_ns", "input_toks", "output_toks"),
           lambda s: int(5e7 + s * 1e9), lambda i: {"input_tok_ids": list(range(16))}),
    Layout("vllm_bench", "json", ("start_times", "input_lens", "output_lens"), lambda s: 9000 + s),
    Layout("generic", "csv", ("ts", "prompt", "completion"), lambda s: int(1000 * s),
           options={"arrival": "ts", "arrival_unit": "ms", "input": "prompt",
                    "output": "completion"}),
    Layout("generic", "jsonl", ("time", "in", "out"),
           lambda s: (AZURE_START + timedelta(seconds=s)).isoformat() + "Z",
           options={"arrival": "time", "arrival_unit": "datetime", "input": "in", "output": "out"}),
    Layout("generic", "parquet", ("t", "p", "c"), lambda s: s,
           options={"arrival": "t", "input": "p", "output": "c"}),
    Layout("normalized", "parquet", ("arrival_s", "input_tokens", "output_tokens"), lambda s: s,
           lambda i: {"request_id": str(i), "line": i + 1}),
]
IDS = [f"{layout.format}-{layout.kind}" for layout in LAYOUTS]
LINE_KINDS = ("csv", "jsonl")


def layouts(*kinds: str) -> list:
    return [pytest.param(layout, id=name) for layout, name in zip(LAYOUTS, IDS)
            if not kinds or layout.kind in kinds]


def spoil(row: int, role: int, value: object) -> list:
    rows = [list(r) for r in GOOD]
    rows[row][role] = value
    return [tuple(r) for r in rows]


# --- one bad value -------------------------------------------------------------------------

ARRIVAL, INPUT, OUTPUT = 0, 1, 2
VALUE_CASES = {  # name: (row, role, value, reason)
    "not-a-number": (2, INPUT, TEXT, "token count is missing or not a number"),
    "negative": (2, OUTPUT, -5, "token count is below 1"),
    "zero": (1, OUTPUT, 0, "token count is below 1"),
    "empty-cell": (3, INPUT, None, "token count is missing or not a number"),
    "fraction": (2, INPUT, 12.5, "token count is not a whole number"),
    "absurd": (4, INPUT, 10**9, "token count is above 10,000,000"),
    "no-arrival": (2, ARRIVAL, None, "arrival time is missing or not a number"),
    "unsorted": (3, ARRIVAL, 1.5,
                 "arrival time goes back before an earlier row (sort the trace by time)"),
}


def value_cases() -> list:
    return list(_value_cases())


def _value_cases():
    for layout, name in zip(LAYOUTS, IDS):
        for case, spec in VALUE_CASES.items():
            if layout.kind == "parquet" and spec[2] == TEXT:
                continue  # a Parquet column has one type
            yield pytest.param(layout, *spec, id=f"{name}-{case}")


@pytest.mark.parametrize("layout, row, role, value, reason", value_cases())
def test_a_bad_value_is_pointed_at(tmp_path, layout, row, role, value, reason) -> None:
    path = layout.write(tmp_path, spoil(row, role, value))
    with pytest.raises(TraceError) as error:
        layout.open(path, "error").read()
    message = str(error.value)
    where = f"{path}, line {layout.first_line + row}, column {layout.columns[role]!r}"
    assert f"{where}: {reason}" in message


@pytest.mark.parametrize("layout, row, role, value, reason", value_cases())
def test_a_bad_value_is_dropped_and_counted(tmp_path, layout, row, role, value, reason) -> None:
    trace = layout.open(layout.write(tmp_path, spoil(row, role, value)), "skip")
    table = trace.read()
    kept = [i for i in range(len(GOOD)) if i != row]
    assert table["line"].to_pylist() == [layout.first_line + i for i in kept]
    assert table["input_tokens"].to_pylist() == [GOOD[i][1] for i in kept]
    assert_counted(trace, read=5, dropped={reason: 1})


def assert_counted(trace: Trace, read: int, dropped: dict) -> None:
    summary = trace.report.summary()
    assert summary["rows_read"] == read
    assert summary["dropped_by_reason"] == dropped
    assert summary["rows_read"] == summary["rows_kept"] + summary["rows_dropped"]


@pytest.mark.parametrize("layout", layouts())
def test_several_problems_are_counted_by_reason(tmp_path, layout) -> None:
    rows = spoil(1, OUTPUT, 0)
    rows[2] = (2.0, None, 30)
    rows[3] = (3.0, 10**9, 40)
    trace = layout.open(layout.write(tmp_path, rows), "skip")
    assert trace.read()["input_tokens"].to_pylist() == [100, 500]
    assert_counted(trace, read=5, dropped={"token count is below 1": 1,
                                           "token count is missing or not a number": 1,
                                           "token count is above 10,000,000": 1})


# --- one bad line --------------------------------------------------------------------------

LONG_NUMBER = '{"a": ' + "9" * 5000 + "}"  # more digits than Python turns into an int
BROKEN = {  # kind of file: (a broken line, the reason it is counted under)
    "csv": [("3.0,300", "has 2 field(s) where the header has")],
    "jsonl": [('{"broken": ', "not valid JSON"), ("[1, 2, 3]", "not a JSON object"),
              ("42", "not a JSON object")],
}


@pytest.mark.parametrize("layout, line, reason", [
    pytest.param(layout, line, reason, id=f"{name}-{line[:12]}")
    for layout, name in zip(LAYOUTS, IDS) for line, reason in BROKEN.get(layout.kind, [])
])
def test_a_broken_line_is_pointed_at_or_counted(tmp_path, layout, line, reason) -> None:
    rows: list = list(GOOD)
    rows[2] = line
    path = layout.write(tmp_path, rows)
    with pytest.raises(TraceError) as error:
        layout.open(path, "error").read()
    assert f"{path}, line {layout.first_line + 2}, column '(row)': {reason}" in str(error.value)
    trace = layout.open(path, "skip")
    assert trace.read()["line"].to_pylist() == [layout.first_line + i for i in (0, 1, 3, 4)]
    [(problem, count)] = trace.report.summary()["dropped_by_reason"].items()
    assert problem.startswith(reason) and count == 1
    assert_counted(trace, read=5, dropped={problem: 1})


@pytest.mark.parametrize("layout", layouts("jsonl"))
def test_a_number_too_long_for_python_is_counted(tmp_path, layout) -> None:
    # the broken line sends the piece the careful way, where Python's json meets the long number
    trace = layout.open(layout.write(tmp_path, [GOOD[0], '{"broken": ', LONG_NUMBER, *GOOD[3:]]),
                        "skip")
    assert trace.read().num_rows == 3
    assert_counted(trace, read=5, dropped={"not valid JSON (Expecting value)": 1,
                                           "not valid JSON (a number too long)": 1})


@pytest.mark.parametrize("layout", layouts(*LINE_KINDS))
def test_blank_lines_are_no_rows_but_keep_line_numbers(tmp_path, layout) -> None:
    rows: list = [GOOD[0], "", GOOD[1], "", "", *spoil(2, INPUT, None)[2:]]
    path = layout.write(tmp_path, rows)
    with pytest.raises(TraceError, match=f"line {layout.first_line + 5}, "):
        layout.open(path, "error").read()
    trace = layout.open(path, "skip")
    assert trace.read()["line"].to_pylist() == [layout.first_line + i for i in (0, 2, 6, 7)]
    assert_counted(trace, read=5, dropped={"token count is missing or not a number": 1})


def test_vllm_bench_broken_json_names_the_line(tmp_path) -> None:
    path = tmp_path / "result.json"
    path.write_text('{"input_lens": [1, 2],\n "output_lens": [1, 2')
    for policy in ("error", "skip"):
        with pytest.raises(TraceError, match=rf"{path}, line 2: not valid JSON"):
            open_trace(path, "vllm_bench", on_bad_rows=policy).read()


@pytest.mark.parametrize("document, match", [
    ("[1, 2]", "holds a list"),
    ('{"input_lens": {"a": 1}, "output_lens": [1]}', "column 'input_lens'"),
    ('{"input_lens": [1, 2], "output_lens": [1], "request_rate": 1}', "has 1 entries"),
    (LONG_NUMBER, "not valid JSON"),
])
def test_vllm_bench_wrong_json_types_are_errors(tmp_path, document, match) -> None:
    path = tmp_path / "result.json"
    path.write_text(document)
    with pytest.raises(TraceError, match=match):
        open_trace(path, "vllm_bench", on_bad_rows="skip").read()


# --- the whole file ------------------------------------------------------------------------

@pytest.mark.parametrize("layout", layouts())
@pytest.mark.parametrize("policy", ["error", "skip"])
def test_a_missing_column_is_named(tmp_path, layout, policy) -> None:
    path = layout.write(tmp_path, GOOD, drop=layout.columns[INPUT])
    trace = layout.open(path, policy)
    with pytest.raises(TraceError) as error:
        trace.read()
    message = str(error.value)
    assert str(path) in message
    if policy == "error" or "no usable rows" not in message:
        assert repr(layout.columns[INPUT]) in message or f"[{layout.columns[INPUT]!r}]" in message
    else:  # a JSON-lines field missing from every row: every row is counted
        assert_counted(trace, read=5, dropped={"token count is missing or not a number": 5})


@pytest.mark.parametrize("layout", layouts())
@pytest.mark.parametrize("policy", ["error", "skip"])
def test_an_empty_file_is_an_error(tmp_path, layout, policy) -> None:
    path = layout.write(tmp_path, [])
    path.write_bytes(b"")
    with pytest.raises(TraceError, match=str(path)):
        layout.open(path, policy).read()


@pytest.mark.parametrize("layout", layouts())
def test_a_file_without_rows_has_no_usable_rows(tmp_path, layout) -> None:
    path = layout.write(tmp_path, [])
    if layout.kind == "csv":
        path.write_text(path.read_text() + "\n")
    elif layout.kind == "jsonl":
        path.write_text("\n  \n")
    trace = layout.open(path, "skip")
    with pytest.raises(TraceError, match=f"{path}: no usable rows"):
        trace.read()
    assert_counted(trace, read=0, dropped={})


GARBAGE = bytes(range(256)) * 3 + b"\x00\xff\n\x89PNG\r\n\x1a\n" + bytes(range(255, -1, -1))


@pytest.mark.parametrize("layout", layouts())
@pytest.mark.parametrize("policy", ["error", "skip"])
def test_binary_garbage_is_an_error(tmp_path, layout, policy) -> None:
    path = layout.write(tmp_path, [])
    path.write_bytes(GARBAGE)
    trace = layout.open(path, policy)
    with pytest.raises(TraceError, match=str(path)):
        trace.read()
    if policy == "skip":
        assert trace.report.rows_read == trace.report.rows_kept + trace.report.rows_dropped


def test_a_truncated_parquet_file_is_an_error(tmp_path) -> None:
    for layout in LAYOUTS:
        if layout.kind == "parquet":
            path = layout.write(tmp_path, GOOD)
            path.write_bytes(path.read_bytes()[:-40])
            with pytest.raises(TraceError, match=str(path)):
                layout.open(path, "skip").read()


# --- fuzzing -------------------------------------------------------------------------------

# SERVESIM_FUZZ_EXAMPLES=5000 for a long hunt
FUZZ = settings(max_examples=int(os.environ.get("SERVESIM_FUZZ_EXAMPLES", 40)), deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def read_anything(layout: Layout, path: Path, policy: str) -> tuple[Trace, bool]:
    """Read the file to the end; only a TraceError may stop it. Under skip, nothing goes uncounted.
    Also says whether every row was looked at (no error, or none but "no usable rows")."""
    trace = layout.open(path, policy)
    try:
        trace.read()
        whole = True
    except TraceError as error:
        whole = "no usable rows" in str(error)
    if policy == "skip":
        report = trace.report
        assert report.rows_read == report.rows_kept + report.rows_dropped
    return trace, whole


@pytest.mark.parametrize("layout", layouts())
@pytest.mark.parametrize("policy", ["error", "skip"])
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # see below
@FUZZ
@given(data=st.binary(max_size=600), keep_header=st.booleans())
def test_fuzz_random_bytes(tmp_path, layout, policy, data, keep_header) -> None:
    # pyarrow cannot hand a CSV row that is not UTF-8 to our handler: it prints the decoding
    # error as "ignored" and stops with ArrowInvalid, which the reader turns into a TraceError
    path = layout.write(tmp_path, [])
    header = path.read_bytes() if keep_header and layout.kind == "csv" else b""
    path.write_bytes(header + data)
    read_anything(layout, path, policy)


CSV_CELL = st.text(alphabet="0123456789.-+e ,xX:", max_size=12)


@pytest.mark.parametrize("layout", layouts("csv"))
@pytest.mark.parametrize("policy", ["error", "skip"])
@FUZZ
@given(lines=st.lists(CSV_CELL, max_size=12))
def test_fuzz_csv_lines(tmp_path, layout, policy, lines) -> None:
    path = layout.write(tmp_path, [])
    names = path.read_text().split("\n")[0].split(",")
    path.write_text("\n".join([",".join(names), *lines]))
    trace, whole = read_anything(layout, path, policy)
    if policy == "skip" and whole:  # every line holding anything is a row, good or counted
        blank = [line == "" or (line.count(",") == len(names) - 1 and not line.strip(","))
                 for line in lines]
        assert trace.report.rows_read == blank.count(False)


JSON_VALUE = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=5),
    st.lists(st.integers(min_value=-(2**70), max_value=2**70), max_size=20),
)


@st.composite
def json_lines(draw, layout: Layout) -> list[str]:
    keys = st.sampled_from([*layout.columns, *layout.extra(0), "other"])
    row = st.dictionaries(keys, JSON_VALUE, max_size=6).map(json.dumps)
    raw = st.text(alphabet=st.characters(blacklist_characters="\n", blacklist_categories=["Cs"]),
                  max_size=20)
    long_number = st.integers(4000, 4600).map(lambda digits: '{"x": ' + "7" * digits + "}")
    return draw(st.lists(st.one_of(row, raw, long_number), max_size=10))


@pytest.mark.parametrize("layout", layouts("jsonl"))
@pytest.mark.parametrize("policy", ["error", "skip"])
@FUZZ
@given(data=st.data())
def test_fuzz_json_lines(tmp_path, layout, policy, data) -> None:
    lines = data.draw(json_lines(layout))
    path = layout.write(tmp_path, lines)
    trace, whole = read_anything(layout, path, policy)
    if policy == "skip" and whole:  # every line holding more than JSON whitespace is a row
        assert trace.report.rows_read == sum(1 for line in lines if line.strip(" \t\r"))


@st.composite
def bench_results(draw) -> dict:
    count = draw(st.integers(0, 8))
    lists = st.lists(JSON_VALUE, min_size=count, max_size=count)
    document = {"input_lens": draw(lists), "output_lens": draw(lists)}
    if draw(st.booleans()):
        document["start_times"] = draw(lists)
    extra = st.sampled_from(["request_rate", "burstiness", "start_times", "input_lens", "request_ids"])
    others = st.one_of(JSON_VALUE, st.lists(JSON_VALUE, max_size=8), st.just("inf"))
    document.update(draw(st.dictionaries(extra, others, max_size=3)))
    return document


@pytest.mark.parametrize("policy", ["error", "skip"])
@FUZZ
@given(document=bench_results())
def test_fuzz_vllm_bench(tmp_path, policy, document) -> None:
    layout = next(layout for layout in LAYOUTS if layout.format == "vllm_bench")
    path = tmp_path / "result.json"
    path.write_text(json.dumps(document))
    trace, whole = read_anything(layout, path, policy)
    if policy == "skip" and whole:
        assert trace.report.rows_read == len(document["input_lens"])
