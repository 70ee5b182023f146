"""Writing a fitted latency profile in the format ``sim.engine.latency_profile`` reads.

A profile has base coefficients (used for any configuration) and overrides matched on
(gpu, model, tensor_parallel, weight_dtype) for the configurations that had data of their own;
an override lists only the coefficients that differ from the base.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml

from sim.engine.latency_profile import Coefficients, OperatorCoefficients


def _number(value: float) -> float:
    """Four significant digits; values at a zero bound (1e-7 and the like, where a bound was hit) become 0."""
    return 0.0 if abs(value) < 1e-6 else float(f"{value:.4g}")


def _values(c: Coefficients | OperatorCoefficients) -> dict[str, float]:
    return {f.name: _number(getattr(c, f.name)) for f in dataclasses.fields(c)}


def profile_document(name: str, source: str, base: Coefficients,
                     overrides: list[tuple[dict, Coefficients]]) -> dict:
    base_values = _values(base)
    items = []
    for match, coefficients in overrides:
        changed = {k: v for k, v in _values(coefficients).items() if v != base_values[k]}
        if changed:
            items.append({"match": dict(match), "coefficients": changed})
    return {"name": name, "source": source, "coefficients": base_values, "overrides": items}


def trained_document(name: str, source: str, coefficients: OperatorCoefficients,
                     training_data: dict, error_band: dict | None = None) -> dict:
    """A per-operator profile: one set of coefficients for every model and GPU, what it was
    trained on, and (once measured) its error band."""
    document = {"name": name, "form": "operators", "source": source,
                "coefficients": _values(coefficients), "training_data": training_data}
    if error_band:
        document["error_band"] = error_band
    return document


def write_profile(path: Path, document: dict,
                  written_by: str = "`servesim calibrate fit`") -> None:
    header = (f"# A fitted latency profile (written by {written_by}); the format of\n"
              "# sim/catalog/profiles/roofline.yaml. Use it with engine.latency_profile: <path>.\n")
    path.write_text(header + yaml.dump(document, Dumper=_PlainDumper, sort_keys=False,
                                       width=100))


class _PlainDumper(yaml.SafeDumper):
    """Writes a value repeated in the document (the same band for two figures) out in full
    each time, not as a YAML anchor and alias a reader has to chase."""

    def ignore_aliases(self, data: object) -> bool:
        return True
