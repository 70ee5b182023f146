"""`servesim traces`: info, convert and list, and clear errors for bad trace files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sim.commands.cli import main

AZURE_WITH_A_BAD_ROW = """TIMESTAMP,ContextTokens,GeneratedTokens
2023-11-16 18:15:46.0000000,374,44
2023-11-16 18:15:47.0000000,-5,109
2023-11-16 18:15:49.0000000,1020,12
2023-11-16 18:15:52.0000000,880,70
"""


@pytest.fixture
def bad_trace(tmp_path: Path) -> Path:
    path = tmp_path / "azure.csv"
    path.write_text(AZURE_WITH_A_BAD_ROW)
    return path


def test_info_prints_the_report(capsys) -> None:
    assert main(["traces", "info", "azure-conv-2023"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("azure-conv-2023.csv (azure)\n")
    assert "requests        19,366" in out and "rate over time" in out


def test_info_json_has_the_figures(capsys) -> None:
    assert main(["traces", "info", "mooncake-synthetic", "--json", "--bucket-s", "300"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["format"] == "mooncake" and info["rows"] == 3_993
    assert info["rate_over_time"]["bucket_s"] == 300 and len(info["rate_over_time"]["counts"]) == 4
    assert info["prefix"]["reuse_ratio"] == pytest.approx(0.651, abs=1e-3)
    assert {"p50", "p90", "p99", "mean"} <= set(info["input_tokens"])
    assert info["bad_rows"] is None


def test_a_bad_row_stops_info_with_its_line_and_the_fix(bad_trace: Path, capsys) -> None:
    assert main(["traces", "info", str(bad_trace)]) == 2
    err = capsys.readouterr().err
    assert "line 3, column 'ContextTokens': token count is below 1 (got -5.0)" in err
    assert "--on-bad-rows skip" in err and "Traceback" not in err


def test_info_under_skip_reports_the_dropped_rows(bad_trace: Path, capsys) -> None:
    assert main(["traces", "info", str(bad_trace), "--on-bad-rows", "skip"]) == 0
    out = capsys.readouterr().out
    assert "requests        3" in out
    assert "bad rows: 1 dropped of 4 read" in out
    assert "1 x token count is below 1; first:" in out and "line 3" in out
    assert main(["traces", "info", str(bad_trace), "--on-bad-rows", "skip", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["bad_rows"]["rows_dropped"] == 1


def test_an_unknown_trace_or_format_is_a_clear_error(capsys) -> None:
    assert main(["traces", "info", "no-such-trace"]) == 2
    assert "give a path or a bundled name (azure-code-2023" in capsys.readouterr().err
    assert main(["traces", "info", "azure-conv-2023", "--format", "csvish"]) == 2
    assert "unknown trace format 'csvish'" in capsys.readouterr().err


def test_list_shows_every_bundled_trace_with_rows_and_source(capsys) -> None:
    assert main(["traces", "list", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert set(rows) == {"azure-conv-2023", "azure-code-2023", "mooncake-conversation",
                         "mooncake-synthetic", "splitwise-conv", "splitwise-code"}
    assert rows["mooncake-conversation"]["rows"] == 12_031
    assert rows["azure-conv-2023"]["source"].startswith("Azure/AzurePublicDataset")
    assert rows["azure-code-2023"]["license"] == "CC-BY-4.0"
    assert main(["traces", "list"]) == 0
    assert "splitwise-conv" in capsys.readouterr().out


def test_convert_writes_normalized_parquet_that_reads_back(tmp_path: Path, capsys) -> None:
    pytest.importorskip("traces.formats.normalized")
    from traces.trace import open_trace

    out = tmp_path / "conv.parquet"
    assert main(["traces", "convert", "mooncake-synthetic", str(out)]) == 0
    assert "wrote 3,993 rows" in capsys.readouterr().out
    back = open_trace(out)
    original = open_trace("mooncake-synthetic").read()
    again = back.read()
    assert back.prefix_block_tokens == 512
    for column in ("arrival_s", "input_tokens", "output_tokens", "prefix_ids"):
        assert again[column].to_pylist() == original[column].to_pylist()


def test_convert_under_skip_drops_bad_rows(bad_trace: Path, tmp_path: Path, capsys) -> None:
    pytest.importorskip("traces.formats.normalized")
    out = tmp_path / "clean.parquet"
    assert main(["traces", "convert", str(bad_trace), str(out), "--on-bad-rows", "skip"]) == 0
    assert "wrote 3 rows" in capsys.readouterr().out
    assert main(["traces", "convert", str(bad_trace), str(tmp_path / "x.parquet")]) == 2
    assert not (tmp_path / "x.parquet").exists()  # no half-written file


def test_convert_wants_a_parquet_file(tmp_path: Path, capsys) -> None:
    assert main(["traces", "convert", "azure-conv-2023", str(tmp_path / "out.csv")]) == 2
    assert "must be a .parquet file" in capsys.readouterr().err


def test_a_generic_trace_is_read_through_its_column_mapping(tmp_path: Path, capsys) -> None:
    path = tmp_path / "log.csv"
    path.write_text("ts_ms,prompt,reply,tenant\n1000,10,5,a\n1500,20,6,b\n3000,30,7,a\n")
    mapping = ["--column", "arrival=ts_ms", "--column", "arrival_unit=ms",
               "--column", "input=prompt", "--column", "output=reply",
               "--column", "session_id=tenant"]
    assert main(["traces", "info", str(path), "--format", "generic", *mapping, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["rows"], info["span_s"], info["sessions"]) == (3, 2.0, 2)
    assert main(["traces", "info", str(path), "--format", "generic"]) == 2
    assert "needs the column names as options" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["traces", "info", str(path), "--column", "arrival"])
