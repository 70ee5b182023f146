"""Quality retention: the share of the unquantized model's benchmark score a weight format keeps.

A quantized format is cheaper to serve; it is only a fair trade if it is not quietly worse, so a
cost figure for fp8 or int4 weights should always travel with this number. The figures are
published evaluations kept as data in ``sim/catalog/quality.csv``, one row per (model, format,
benchmark), each with its source and date (``sim/catalog/QUALITY_PROVENANCE.md``):

    retention_percent = quantized_score / baseline_score x 100

``retention_for`` answers in this order, first match wins:

1. the scenario's own figure (``quality_retention: {awq-int4: 97.5}``);
2. bf16, fp16 and fp32 are the reference: 100 %;
3. the first catalog row for this model and format (rows are ordered so the broadest
   benchmark of the most deployed variant comes first);
4. the median of the format's figures for the other models (each model's first row), marked
   as borrowed, so a cost table always shows a number and says how sure it is;
5. no figure at all for the format: percent is None.
"""

from __future__ import annotations

import csv
import math
import re
import statistics
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from functools import lru_cache
from numbers import Real
from pathlib import Path

from sim.engine.dtypes import WEIGHT_DTYPES
from sim.engine.errors import ScenarioError

QUALITY_FILE = Path(__file__).parents[1] / "catalog" / "quality.csv"
REFERENCE_DTYPES: tuple[str, ...] = ("bf16", "fp16", "fp32")
COLUMNS: tuple[str, ...] = ("model", "weight_dtype", "baseline_score", "quantized_score",
                            "retention_percent", "basis", "source", "as_of")
USER_MAX_PERCENT = 200.0
# retention_percent is stored rounded to 2 decimals; anything further off was mistyped
_TOLERANCE = 0.01 + 1e-9
_MONTH = re.compile(r"\d{4}-(0[1-9]|1[0-2])")


@dataclass(frozen=True, slots=True)
class Retention:
    """How much of the unquantized model's score ``weight_dtype`` keeps, and how we know."""

    weight_dtype: str
    percent: float | None      # None: no published figure for this model and format
    basis: str                 # what it was measured on, or why unknown / where it came from
    source: str                # URL; "user" for a scenario figure; "" for reference formats
    exact_model: bool          # True: measured on this very model; False: borrowed


@dataclass(frozen=True, slots=True)
class _Row:
    model: str
    weight_dtype: str
    baseline_score: float
    quantized_score: float
    retention_percent: float
    basis: str
    source: str
    as_of: str


def retention_for(model_id: str, weight_dtype: str,
                  user: Mapping[str, float] | None = None) -> Retention:
    """The retention of ``weight_dtype`` for ``model_id`` (see the module docstring)."""
    if weight_dtype not in WEIGHT_DTYPES:
        raise ScenarioError(
            f"weight_dtype {weight_dtype!r} is not known: use one of {', '.join(WEIGHT_DTYPES)}"
        )
    given = _user_figures(user)
    if weight_dtype in given:
        return Retention(weight_dtype, given[weight_dtype],
                         "your own evaluation (quality_retention in the scenario)", "user", True)
    if weight_dtype in REFERENCE_DTYPES:
        return Retention(weight_dtype, 100.0, "reference format (unquantized)", "", True)
    first = _first_rows(weight_dtype)
    if model_id in first:
        row = first[model_id]
        return Retention(weight_dtype, row.retention_percent, row.basis, row.source, True)
    others = list(first.values())
    if not others:
        return Retention(weight_dtype, None, "no published figure", "", False)
    return Retention(
        weight_dtype,
        statistics.median(r.retention_percent for r in others),
        f"median of {len(others)} published figure{'s' if len(others) > 1 else ''} for other "
        f"models ({', '.join(r.model for r in others)}); none published for {model_id}",
        "; ".join(dict.fromkeys(r.source for r in others)),
        False,
    )


def list_retention() -> list[dict]:
    """Every catalog row, in file order, as plain dicts (columns as in the CSV)."""
    return [asdict(row) for row in _table()]


def _first_rows(weight_dtype: str) -> dict[str, _Row]:
    """Each model's first row for ``weight_dtype``, in file order."""
    first: dict[str, _Row] = {}
    for row in _table():
        if row.weight_dtype == weight_dtype:
            first.setdefault(row.model, row)
    return first


def _user_figures(user: Mapping[str, float] | None) -> dict[str, float]:
    """The scenario's figures, all checked (a typo in any key is reported, not ignored)."""
    figures: dict[str, float] = {}
    for key, value in (user or {}).items():
        if key not in WEIGHT_DTYPES:
            raise ScenarioError(
                f"quality_retention.{key}: {key!r} is not a weight format: use one of "
                f"{', '.join(WEIGHT_DTYPES)}"
            )
        if (isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value)
                or not 0 < value <= USER_MAX_PERCENT):
            raise ScenarioError(
                f"quality_retention.{key}={value!r} must be a percent in (0, "
                f"{USER_MAX_PERCENT:g}]: the {key} model's score as a percent of the unquantized "
                "model's score on your own evaluation, e.g. 97.5"
            )
        figures[key] = float(value)
    return figures


@lru_cache(maxsize=1)
def _table() -> tuple[_Row, ...]:
    return _load(QUALITY_FILE)


def _load(path: Path) -> tuple[_Row, ...]:
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ScenarioError(f"{path.name}: missing column(s) {', '.join(missing)}; "
                                f"the header must be {','.join(COLUMNS)}")
        # data rows start on line 2, after the header
        return tuple(_parse_row(row, f"{path.name} line {line}")
                     for line, row in enumerate(reader, start=2))


def _parse_row(raw: dict[str, str | None], where: str) -> _Row:
    text = {c: (raw.get(c) or "").strip() for c in COLUMNS}

    def fail(field: str, problem: str) -> ScenarioError:
        return ScenarioError(f"{where}, {field}={text[field]!r}: {problem}")

    if not text["model"]:
        raise fail("model", "name the catalog model id the figure applies to")
    dtype = text["weight_dtype"]
    if dtype not in WEIGHT_DTYPES:
        raise fail("weight_dtype", f"unknown weight_dtype; use one of {', '.join(WEIGHT_DTYPES)}")
    if dtype in REFERENCE_DTYPES:
        raise fail("weight_dtype", "is a reference format (always 100 %); list quantized "
                                   "formats only")
    numbers = {}
    for field in ("baseline_score", "quantized_score", "retention_percent"):
        try:
            numbers[field] = float(text[field])
        except ValueError:
            raise fail(field, "must be a number") from None
        if not math.isfinite(numbers[field]) or numbers[field] <= 0:
            raise fail(field, "must be a positive number")
    recomputed = numbers["quantized_score"] / numbers["baseline_score"] * 100
    if abs(numbers["retention_percent"] - recomputed) > _TOLERANCE:
        raise fail("retention_percent", f"does not match the scores: quantized_score / "
                                        f"baseline_score x 100 = {recomputed:.2f}")
    if not text["basis"]:
        raise fail("basis", "say which benchmark and model variant the scores are for")
    if not text["source"].startswith(("https://", "http://")):
        raise fail("source", "give the http(s) URL the scores were taken from")
    if not _MONTH.fullmatch(text["as_of"]):
        raise fail("as_of", "give the month the source was published or read, as YYYY-MM")
    return _Row(model=text["model"], weight_dtype=dtype, basis=text["basis"],
                source=text["source"], as_of=text["as_of"], **numbers)
