"""The Traces page: figures of bundled and uploaded traces, clear errors for bad files, replay."""

from pathlib import Path

import numpy as np
import pytest
import yaml

from streamlit.testing.v1 import AppTest

from app import trace_upload
from app.trace_replay import (base_scenarios, pool_hardware, replay_figures, replay_yaml,
                              slo_verdict, trace_spec)
from app.trace_upload import (check_upload, save_upload, saved_name, session_folder,
                              store_upload)
from app.trace_view import (bad_row_count_note, duration_text, length_histogram, length_table,
                            nice_bucket_s, rate_series, read_figures, readable_error)
from traces.errors import TraceError

PAGE = str(Path(__file__).resolve().parents[1] / "app" / "views" / "trace_explorer.py")
GOOD_CSV = (b"TIMESTAMP,ContextTokens,GeneratedTokens\n"
            b"2023-11-16 18:15:46.0,100,20\n"
            b"2023-11-16 18:15:47.0,300,40\n"
            b"2023-11-16 18:15:49.0,500,60\n"
            b"2023-11-16 18:15:50.0,700,80\n")
BAD_ROWS_CSV = (b"TIMESTAMP,ContextTokens,GeneratedTokens\n"
                b"2023-11-16 18:15:46.0,100,20\n"
                b"2023-11-16 18:15:47.0,-5,20\n"
                b"2023-11-16 18:15:48.0,300,x\n"
                b"2023-11-16 18:15:49.0,300,30\n")


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def page() -> AppTest:
    return AppTest.from_file(PAGE, default_timeout=120).run()


def upload(at: AppTest, name: str, data: bytes) -> AppTest:
    at.radio(key="traces_source").set_value("Upload a file").run()
    return at.file_uploader(key="traces_upload").set_value((name, data, "text/csv")).run()


# ---- the page --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def default_page() -> AppTest:
    return page()


def test_default_trace_renders_figures_and_replay(default_page):
    at = default_page
    assert not at.exception
    assert not at.error
    shown = metrics(at)
    assert shown["requests"] == "19,366"  # azure-conv-2023, every row
    assert shown["mean rate"] == "5.5 req/s"
    assert shown["requests replayed"] == "2,000"  # the default cap
    assert any(i.value.startswith("The replay stopped at 2,000 requests (Max requests)")
               for i in at.info)  # a capped window is said, not silent
    assert shown["SLO"] in ("met", "missed")
    assert shown["p95 TTFT"].endswith(("ms", " s"))
    assert len(at.get("vega_lite_chart")) >= 4  # rate, two histograms, replay TTFT
    assert any(button.label == "Download the replay scenario"
               for button in at.get("download_button"))


def test_another_bundled_trace_changes_the_numbers(default_page):
    at = default_page
    before = metrics(at)
    at.selectbox(key="traces_bundled").set_value("mooncake-synthetic")
    at.number_input(key="traces_max_requests").set_value(200).run()
    assert not at.exception and not at.error
    after = metrics(at)
    assert after["requests"] == "3,993"
    assert after["requests"] != before["requests"]
    assert after["prefix reuse"] == "65.1%"  # Mooncake traces carry prefix ids
    assert after["requests replayed"] == "200"


def test_rate_scale_changes_the_replay():
    at = page()
    at.number_input(key="traces_max_requests").set_value(300).run()
    before = metrics(at)
    at.number_input(key="traces_rate_scale").set_value(3.0).run()
    assert not at.exception and not at.error
    after = metrics(at)
    assert after["requests"] == before["requests"]  # the trace's own figures stay
    assert after["throughput"] != before["throughput"]  # 300 requests come three times faster


def test_the_explore_scenario_is_the_default_base():
    at = AppTest.from_file(PAGE, default_timeout=120)
    text = (Path(PAGE).parents[2] / "examples" / "plan-chat-8b.yaml").read_text()
    at.session_state["explore_scenario_yaml"] = text.replace("h100-sxm", "a100-80gb")
    at.run()
    assert not at.exception and not at.error
    assert at.selectbox(key="traces_base").value == "Explore page's last scenario"
    assert at.selectbox(key="traces_gpu:Explore page's last scenario").value == "a100-80gb"
    assert metrics(at)["requests replayed"] == "2,000"


@pytest.mark.parametrize("name, data, words", [
    ("garbage.csv", bytes(range(256)) * 8, "cannot tell the trace format"),
    ("wrong.csv", b"a,b,c\n1,2,3\n", "cannot tell the trace format"),
    ("empty.csv", b"", "the file is empty"),
])
def test_a_bad_upload_shows_an_error(name, data, words):
    at = upload(page(), name, data)
    assert not at.exception
    assert at.error
    message = at.error[0].value
    assert words in message
    assert "TIMESTAMP, ContextTokens, GeneratedTokens" in message or "empty" in message
    assert "/tmp" not in message  # the user's file name, not the server's copy
    assert not metrics(at)


def test_wrong_columns_with_a_chosen_format_name_the_missing_columns():
    at = upload(page(), "wrong.csv", b"a,b,c\n1,2,3\n")
    at.selectbox(key="traces_format").set_value("azure").run()
    assert not at.exception
    message = at.error[0].value
    assert "missing column(s) ['TIMESTAMP', 'ContextTokens', 'GeneratedTokens']" in message
    assert message.startswith("wrong.csv")


def test_an_oversized_upload_is_refused(monkeypatch):
    monkeypatch.setenv("SERVESIM_MAX_UPLOAD_MB", "1")
    at = upload(page(), "big.csv", GOOD_CSV + b"9" * 1_100_000)
    assert not at.exception
    assert "over this server's 1 MB upload limit" in at.error[0].value


def test_a_valid_upload_shows_its_figures():
    at = upload(page(), "mine.csv", GOOD_CSV)
    assert not at.exception and not at.error
    shown = metrics(at)
    assert shown["requests"] == "4"
    assert shown["duration"] == "4 s"
    assert shown["mean rate"] == "1.0 req/s"
    assert any("Detected: **azure**" in c.value for c in at.caption)
    assert shown["requests replayed"] == "4"
    assert any("temporary copy on this server" in c.value for c in at.caption)


def test_bad_rows_are_counted_then_skipped_on_request():
    at = upload(page(), "rows.csv", BAD_ROWS_CSV)
    assert not at.exception
    message = at.error[0].value
    assert "line 3, column 'ContextTokens': token count is below 1" in message
    assert "Bad rows: skip" in message
    assert "2 bad rows of 4" in message
    at.radio(key="traces_bad_rows").set_value("skip").run()
    assert not at.exception and not at.error
    assert metrics(at)["requests"] == "2"
    assert "2 bad rows dropped of 4 read" in at.warning[0].value


# ---- trace_upload ----------------------------------------------------------------------------

def test_max_upload_mb_reads_the_environment(monkeypatch):
    monkeypatch.delenv("SERVESIM_MAX_UPLOAD_MB", raising=False)
    assert trace_upload.max_upload_mb() == 200
    monkeypatch.setenv("SERVESIM_MAX_UPLOAD_MB", "5")
    assert trace_upload.max_upload_mb() == 5
    monkeypatch.setenv("SERVESIM_MAX_UPLOAD_MB", "lots")
    assert trace_upload.max_upload_mb() == 200


def test_check_upload_messages():
    check_upload("t.csv", 10, 1)  # fine
    check_upload("t.PARQUET", 1_000_000, 1)  # exactly at the limit
    with pytest.raises(TraceError, match=r"t.csv: the file is 2.5 MB, over this server's 1 MB "
                                         r"upload limit; .*--max-upload-mb"):
        check_upload("t.csv", 2_500_000, 1)
    with pytest.raises(TraceError, match="t.jsonl: the file is empty"):
        check_upload("t.jsonl", 0, 1)
    with pytest.raises(TraceError, match=r"t.txt: .txt is not a trace file type; upload a "
                                         r"\.csv, \.jsonl, \.json, \.parquet, \.pq file"):
        check_upload("t.txt", 10, 1)


def test_uploads_are_saved_by_content_hash(tmp_path):
    first = save_upload(b"abc", "Trace.CSV", tmp_path)
    # sha256("abc") starts ba7816bf8f01cfea414140de5dae2223
    assert first.name == "ba7816bf8f01cfea414140de5dae2223.csv"
    assert first.read_bytes() == b"abc"
    assert save_upload(b"abc", "other-name.csv", tmp_path) == first  # same bytes, same file
    second = save_upload(b"abd", "Trace.CSV", tmp_path)
    assert second != first and second.read_bytes() == b"abd"
    assert saved_name(b"abc", "x.jsonl").endswith(".jsonl")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([first.name, second.name])


class _Upload:
    def __init__(self, name: str, data: bytes, file_id: str = "id-1") -> None:
        self.name, self.data, self.file_id, self.size = name, data, file_id, len(data)
        self.reads = 0

    def getvalue(self) -> bytes:
        self.reads += 1
        return self.data


def test_store_upload_uses_one_folder_per_session_and_hashes_once():
    state_a, state_b = {}, {}
    file = _Upload("t.csv", GOOD_CSV)
    path_a = store_upload(file, state_a, limit_mb=1)
    assert store_upload(file, state_a, limit_mb=1) == path_a
    assert file.reads == 1  # the second rerun did not hash the bytes again
    path_b = store_upload(_Upload("t.csv", GOOD_CSV), state_b, limit_mb=1)
    assert path_a.name == path_b.name and path_a.parent != path_b.parent
    assert session_folder(state_a) == path_a.parent
    with pytest.raises(TraceError, match="empty"):
        store_upload(_Upload("e.csv", b""), state_a, limit_mb=1)


# ---- trace_view ------------------------------------------------------------------------------

def test_rate_series_buckets_and_last_partial_bucket():
    frame, width = rate_series(np.array([0.0, 0.5, 1.5, 2.0, 2.2, 9.0]))
    assert width == 1.0
    # buckets [0,1) 2, [1,2) 1, [2,3) 2, ... [8,9) 0, and 9.0 alone in a bucket it ends at
    assert frame["requests_per_s"].tolist()[:4] == [2.0, 1.0, 2.0, 0.0]
    assert len(frame) == 9  # the bucket starting at 9 s is not covered by the trace: left out
    assert frame["time_s"].tolist()[:2] == [0.5, 1.5]
    frame, width = rate_series(np.array([0.0, 1.0, 2.0, 3.0, 3.9]), max_points=2)
    assert width == 2.0
    assert frame["requests_per_s"].tolist() == [1.0, pytest.approx(3 / 1.9)]


def test_nice_bucket_and_duration_text():
    assert nice_bucket_s(3504) == 30.0  # an hour in at most 200 points
    assert nice_bucket_s(30 * 86400) == 21600.0
    assert nice_bucket_s(10) == 1.0
    assert duration_text(4) == "4 s"
    assert duration_text(3504) == "58.4 min"
    assert duration_text(7200) == "2 h"


def test_length_histogram_counts_every_request():
    values = np.array([1, 2, 3, 20, 50, 1000], dtype=np.int32)
    linear = length_histogram(values, bins=4)  # edges 1, 251, 501, 751, 1001
    assert linear["requests"].tolist() == [5, 0, 0, 1]
    log = length_histogram(values, bins=3, log=True)  # edges 1, ~10, ~100, 1001
    assert log["requests"].tolist() == [3, 2, 1]
    assert log["tokens_from"].iloc[0] == 1
    same = length_histogram(np.array([7, 7]), log=True)
    assert same["requests"].tolist() == [2]


def test_read_figures_of_a_bundled_trace():
    figures = read_figures("azure-code-2023")
    assert figures.format == "azure"
    assert figures.stats["rows"] == 8819
    assert figures.stats["prefix"] is None
    assert figures.input_hist[True]["requests"].sum() == 8819
    assert figures.output_hist[False]["requests"].sum() == 8819
    table = length_table(figures.stats)
    assert table.loc["input tokens", "p99"] == 7436
    assert table.loc["output tokens", "max"] == 1899


def test_bad_rows_note_and_readable_error(tmp_path):
    path = tmp_path / "abc123.csv"
    path.write_bytes(BAD_ROWS_CSV)
    assert bad_row_count_note(str(path), None, {}) == (
        ". The file has 2 bad rows of 4; skipping them keeps 2.")
    with pytest.raises(TraceError) as caught:
        read_figures(str(path))
    message = readable_error(str(caught.value), path, "mine.csv")
    assert message.startswith("mine.csv, line 3, column 'ContextTokens'")
    assert "choose **Bad rows: skip** to drop such rows" in message
    assert "--on-bad-rows" not in message
    long = readable_error("x.csv: oops (got '" + "z" * 500 + "'); fix the row")
    assert len(long) < 200 and long.endswith(" …); fix the row")
    odd = "x.csv: oops (got '*a_b*'); fix the row"
    assert readable_error(odd) == r"x.csv: oops (got '\*a\_b\*'); fix the row"
    assert readable_error(odd, markdown=False) == odd


# ---- trace_replay ----------------------------------------------------------------------------

def test_base_scenarios_are_single_pool_examples_without_a_trace():
    bases = base_scenarios()
    assert next(iter(bases)) == "llama3-8b-h100-shared-prefix.yaml"
    assert "azure-conv-2023-replay-h100.yaml" not in bases  # has its own trace
    assert "fleet-route-classify-to-8b.yaml" not in bases  # a fleet
    assert pool_hardware(bases["llama3-70b-h100-tp4-bursty.yaml"]) == ("h100-sxm", 2)


def test_replay_yaml_replaces_the_workload():
    spec = trace_spec("azure-conv-2023", None, "skip", None, 0.0, 600.0, 1.0, 2.0, 1.0)
    assert spec == {"path": "azure-conv-2023", "on_bad_rows": "skip", "end_s": 600.0,
                    "rate_scale": 2.0}
    base = base_scenarios()["llama3-8b-h100-shared-prefix.yaml"]
    data = yaml.safe_load(replay_yaml(base, spec, 500, gpu="a100-80gb", replicas=3, name="r"))
    assert data["workload"] == {"trace": spec, "num_requests": 500}
    assert data["hardware"]["gpu"] == "a100-80gb" and data["hardware"]["replicas"] == 3
    assert data["name"] == "r" and data["slo"] == {"ttft_p95_ms": 500, "tpot_p95_ms": 50}


def test_replay_figures_and_slo_verdict():
    assert slo_verdict({"ttft_p95_ms": None, "ttft_p95_met": None, "met": None}) == "no SLO"
    assert slo_verdict({"ttft_p95_met": True, "met": False, "reasons": [
        "20.0 % of requests rejected or unfinished > 1 %"]}) == (
        "missed: 20.0 % of requests rejected or unfinished > 1 %")
    summary = {
        "requests": {"arrived": 10, "rejected": 1},
        "ttft_ms": {"p50": 12.345, "p95": 250.0}, "tpot_ms": {"p95": 9.87},
        "e2e_ms": {"p95": 12_345.0},
        "throughput": {"requests_per_s": 1.5, "output_tokens_per_s": 1234.4},
        "cost": {"usd_per_million_tokens": 0.1234, "monthly_usd": 1927.2},
        "slo": {"ttft_p95_met": True, "tpot_p95_met": True, "met": True, "reasons": []},
        "trace": {"requests_replayed": 10, "rows": {"rows_dropped": 3}},
    }
    assert replay_figures(summary) == {
        "p50 TTFT": "12.3 ms", "p95 TTFT": "250 ms", "p95 TPOT": "9.9 ms", "p95 E2E": "12.3 s",
        "throughput": "1.5 req/s", "output tokens/s": "1,234", "$ per 1M tokens": "$0.123",
        "monthly bill": "$1,927", "SLO": "met", "requests replayed": "10", "rejected": "1",
        "bad rows dropped": "3",
    }
