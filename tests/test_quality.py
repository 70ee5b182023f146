"""Quality retention: the published table is sourced, dated and self-consistent; lookups follow
user > reference > catalog row > borrowed median; mistakes are named with their fix."""

from __future__ import annotations

import csv
import re
import statistics
from pathlib import Path

import pytest

import sim.config.quality as quality
from sim.config.model_catalog import list_models
from sim.config.quality import QUALITY_FILE, Retention, list_retention, retention_for
from sim.engine.dtypes import WEIGHT_DTYPES
from sim.engine.errors import ScenarioError

QUANTIZED = ("fp8", "int8", "awq-int4", "gptq-int4")


def _csv_rows() -> list[dict[str, str]]:
    with QUALITY_FILE.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _first_percent_per_model(weight_dtype: str) -> dict[str, float]:
    first: dict[str, float] = {}
    for row in _csv_rows():
        if row["weight_dtype"] == weight_dtype:
            first.setdefault(row["model"], float(row["retention_percent"]))
    return first


# ---- the table ----------------------------------------------------------------------------

def test_every_row_recomputes_from_its_scores() -> None:
    for row in _csv_rows():
        recomputed = float(row["quantized_score"]) / float(row["baseline_score"]) * 100
        assert float(row["retention_percent"]) == round(recomputed, 2), row


def test_every_row_has_an_http_source_a_month_and_a_basis() -> None:
    for row in _csv_rows():
        assert re.fullmatch(r"https?://\S+", row["source"]), row
        assert re.fullmatch(r"20\d\d-(0[1-9]|1[0-2])", row["as_of"]), row
        assert row["basis"].strip(), row


def test_rows_name_catalog_models_and_quantized_formats() -> None:
    for row in _csv_rows():
        assert row["model"] in list_models(), row
        assert row["weight_dtype"] in QUANTIZED, row


@pytest.mark.parametrize("weight_dtype", QUANTIZED)
def test_each_quantized_format_has_a_published_row(weight_dtype: str) -> None:
    assert weight_dtype in {row["weight_dtype"] for row in _csv_rows()}


@pytest.mark.parametrize("model", ["llama-3.1-8b", "llama-3.1-70b"])
def test_the_llama_3_1_models_are_covered(model: str) -> None:
    formats = {row["weight_dtype"] for row in _csv_rows() if row["model"] == model}
    assert {"fp8", "int8", "gptq-int4"} <= formats
    if model == "llama-3.1-8b":
        assert "awq-int4" in formats


def test_list_retention_returns_the_rows_in_file_order() -> None:
    listed = list_retention()
    raw = _csv_rows()
    assert [(r["model"], r["weight_dtype"], r["source"]) for r in listed] == [
        (r["model"], r["weight_dtype"], r["source"]) for r in raw]
    assert all(isinstance(r["retention_percent"], float) for r in listed)
    listed[0]["model"] = "changed"  # a copy: the cached table is untouched
    assert list_retention()[0]["model"] == raw[0]["model"]


# ---- what the data supports -----------------------------------------------------------------

def test_fp8_is_effectively_lossless_for_llama_3_1_8b() -> None:
    retention = retention_for("llama-3.1-8b", "fp8")
    assert retention.exact_model and retention.percent is not None
    assert retention.percent >= 99.0


def test_every_published_fp8_figure_keeps_at_least_99_percent() -> None:
    fp8 = [float(r["retention_percent"]) for r in _csv_rows() if r["weight_dtype"] == "fp8"]
    assert len(fp8) >= 3 and min(fp8) >= 99.0


def test_the_harder_benchmark_shows_the_larger_loss() -> None:
    # The same checkpoint loses more on Open LLM v2 than on the v1 average the first row uses.
    rows = [r for r in _csv_rows()
            if r["model"] == "llama-3.1-8b" and r["weight_dtype"] == "gptq-int4"]
    v1 = next(float(r["retention_percent"]) for r in rows if "v1" in r["basis"])
    v2 = next(float(r["retention_percent"]) for r in rows if "v2" in r["basis"])
    assert v2 < v1


# ---- lookups --------------------------------------------------------------------------------

@pytest.mark.parametrize("weight_dtype", ["bf16", "fp16", "fp32"])
def test_reference_formats_are_100(weight_dtype: str) -> None:
    assert retention_for("mixtral-8x7b", weight_dtype) == Retention(
        weight_dtype, 100.0, "reference format (unquantized)", "", True)


def test_the_first_row_for_a_pair_is_used() -> None:
    first = next(r for r in _csv_rows()
                 if r["model"] == "llama-3.1-8b" and r["weight_dtype"] == "gptq-int4")
    retention = retention_for("llama-3.1-8b", "gptq-int4")
    assert retention.percent == float(first["retention_percent"])
    assert (retention.basis, retention.source) == (first["basis"], first["source"])
    assert retention.exact_model


def test_a_user_figure_wins_over_the_catalog() -> None:
    retention = retention_for("llama-3.1-8b", "awq-int4", {"awq-int4": 97.5, "fp8": 99})
    assert retention == Retention(
        "awq-int4", 97.5, "your own evaluation (quality_retention in the scenario)", "user", True)
    assert retention_for("llama-3.1-8b", "int8", {"awq-int4": 97.5}).source != "user"


@pytest.mark.parametrize("weight_dtype", QUANTIZED)
def test_a_model_without_rows_borrows_the_median_of_the_others(weight_dtype: str) -> None:
    assert not any(r["model"] == "mixtral-8x7b" for r in _csv_rows())
    figures = _first_percent_per_model(weight_dtype)
    retention = retention_for("mixtral-8x7b", weight_dtype)
    assert retention.exact_model is False
    assert retention.percent == pytest.approx(statistics.median(figures.values()))
    assert f"median of {len(figures)} published figure" in retention.basis
    assert "other models" in retention.basis


def test_a_model_with_other_rows_borrows_only_from_other_models() -> None:
    # qwen2.5-7b has int8 and gptq-int4 rows but no fp8 row.
    figures = _first_percent_per_model("fp8")
    assert "qwen2.5-7b" not in figures
    retention = retention_for("qwen2.5-7b", "fp8")
    assert not retention.exact_model
    assert retention.percent == pytest.approx(statistics.median(figures.values()))
    assert retention_for("qwen2.5-7b", "int8").exact_model


def test_a_format_without_any_row_has_no_figure(monkeypatch: pytest.MonkeyPatch) -> None:
    only_fp8 = tuple(r for r in quality._table() if r.weight_dtype == "fp8")
    monkeypatch.setattr(quality, "_table", lambda: only_fp8)
    assert retention_for("llama-3.1-8b", "awq-int4") == Retention(
        "awq-int4", None, "no published figure", "", False)


# ---- mistakes are named ---------------------------------------------------------------------

def test_unknown_weight_dtype_lists_the_formats() -> None:
    with pytest.raises(ScenarioError, match=r"'int3'.*" + ".*".join(map(re.escape,
                                                                         WEIGHT_DTYPES))):
        retention_for("llama-3.1-8b", "int3")


@pytest.mark.parametrize("value", [0, -5, 200.5, float("nan"), "97", True])
def test_bad_user_values_are_named(value: object) -> None:
    with pytest.raises(ScenarioError, match=r"quality_retention\.awq-int4=.*\(0, 200\].*e\.g\."):
        retention_for("llama-3.1-8b", "fp8", {"awq-int4": value})  # type: ignore[dict-item]


def test_200_percent_is_accepted() -> None:
    assert retention_for("llama-3.1-8b", "fp8", {"fp8": 200}).percent == 200.0


def test_unknown_user_format_is_named() -> None:
    with pytest.raises(ScenarioError, match=r"quality_retention\.awq4: .*use one of .*awq-int4"):
        retention_for("llama-3.1-8b", "fp8", {"awq4": 97.0})


HEADER = "model,weight_dtype,baseline_score,quantized_score,retention_percent,basis,source,as_of\n"
GOOD = "llama-3.1-8b,fp8,80.0,79.0,98.75,test,https://example.org/card,2026-11\n"


@pytest.fixture
def catalog_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Point the module at a scratch CSV; the cache is cleared before and after."""
    path = tmp_path / "quality.csv"
    monkeypatch.setattr(quality, "QUALITY_FILE", path)
    quality._table.cache_clear()
    yield path
    quality._table.cache_clear()


def test_a_good_scratch_file_loads(catalog_file: Path) -> None:
    catalog_file.write_text(HEADER + GOOD, encoding="utf-8")
    assert retention_for("llama-3.1-8b", "fp8").percent == 98.75


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("llama-3.1-8b,fp4,80,79,98.75,test,https://example.org,2026-11",
         r"line 3, weight_dtype='fp4': unknown weight_dtype"),
        ("llama-3.1-8b,bf16,80,79,98.75,test,https://example.org,2026-11",
         r"line 3, weight_dtype='bf16': is a reference format"),
        ("llama-3.1-8b,fp8,80,79,99.50,test,https://example.org,2026-11",
         r"line 3, retention_percent='99.50': does not match the scores.*= 98\.75"),
        ("llama-3.1-8b,fp8,80,79,98.75,test,,2026-11",
         r"line 3, source='': give the http\(s\) URL"),
        ("llama-3.1-8b,fp8,80,79,98.75,test,https://example.org,Nov 2026",
         r"line 3, as_of='Nov 2026': .*YYYY-MM"),
        ("llama-3.1-8b,fp8,eighty,79,98.75,test,https://example.org,2026-11",
         r"line 3, baseline_score='eighty': must be a number"),
        ("llama-3.1-8b,fp8,80,79,98.75,,https://example.org,2026-11",
         r"line 3, basis='': "),
    ],
)
def test_catalog_mistakes_name_row_and_field(catalog_file: Path, line: str, message: str
                                             ) -> None:
    catalog_file.write_text(HEADER + GOOD + line + "\n", encoding="utf-8")
    with pytest.raises(ScenarioError, match=r"quality\.csv " + message):
        list_retention()


def test_a_missing_column_is_named(catalog_file: Path) -> None:
    catalog_file.write_text(HEADER.replace(",as_of", "") + GOOD.rsplit(",", 1)[0] + "\n",
                            encoding="utf-8")
    with pytest.raises(ScenarioError, match=r"missing column\(s\) as_of"):
        list_retention()
