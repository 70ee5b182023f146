"""Compare's settings in the page's address: the bundled baseline, the load, the traffic per
run, the SLO, the seeds and each change, so a comparison can be shared and reloaded.

Only a bundled example can be a linked baseline (an uploaded file is not the link's to carry).
A link is read once, when a session opens it; a value that does not fit is left out and named
("seeds: outside 1 to 10 (got '40')"), never a traceback.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from sim.config.scenario import parse_scenario

from app import compare_inputs as inputs
from app.examples import example_names, example_text
from app.link_state import parse_number, quoted
from app.simulation import checked_document

MAX_CHANGES = 3
NUMBERS = {  # link name -> (session key, low, high, whole number)
    "duration_s": ("compare_duration", 5.0, 900.0, False),
    "ttft_p95_ms": ("compare_slo_ttft", 0.0, float("inf"), False),
    "tpot_p95_ms": ("compare_slo_tpot", 0.0, float("inf"), False),
    "seeds": ("compare_seeds", 1, 10, True),
}


def read_link(query: Mapping[str, str]) -> tuple[dict[str, Any], list[str]]:
    """(session key -> value) for what a link carries, and one problem per value left out."""
    values: dict[str, Any] = {}
    problems: list[str] = []
    if "example" not in query:
        return values, problems
    name = str(query["example"])
    if name not in example_names():
        return values, [quoted("example", "not a bundled example", name)]
    text = example_text(name)
    values |= {"compare_baseline_source": "Bundled example", "compare_example": name,
               # the baseline counts as chosen already: its own load and SLO do not replace
               # the link's
               "compare_baseline_id": hashlib.sha256(text.encode()).hexdigest()}
    scenario = parse_scenario(checked_document(text, where=name))
    knob, own_slo = inputs.load_knob(scenario), inputs.slo_of(scenario)
    values["compare_slo_ttft"] = float(own_slo.ttft_p95_ms or 0.0)
    values["compare_slo_tpot"] = float(own_slo.tpot_p95_ms or 0.0)
    if knob is not None:
        key = "compare_users" if knob.integer else "compare_load"
        values[key] = int(knob.value) if knob.integer else float(knob.value)
        if "load" in query:
            number, problem = _number(str(query["load"]), 1 if knob.integer else 0.01,
                                      float("inf"), knob.integer)
            if problem:
                problems.append(quoted("load", problem, query["load"]))
            else:
                values[key] = number
    for name_, (key, low, high, whole) in NUMBERS.items():
        if name_ in query:
            number, problem = _number(str(query[name_]), low, high, whole)
            if problem:
                problems.append(quoted(name_, problem, query[name_]))
            else:
                values[key] = number
    changes = [i for i in range(1, MAX_CHANGES + 1) if f"change{i}" in query]
    if changes:
        values["compare_n_changes"] = len(changes)
        for slot, i in enumerate(changes):
            values[f"compare_change{slot}_name"] = str(query.get(f"change{i}_name",
                                                                 f"change {slot + 1}"))[:100]
            values[f"compare_change{slot}_overrides"] = str(query[f"change{i}"])[:2000]
    return values, problems


def link_of(example: str, load: float | None, duration_s: float, ttft: float, tpot: float,
            seeds: int, changes: list[tuple[str, str]]) -> dict[str, str]:
    """The address's query for a comparison on a bundled baseline."""
    out = {"example": example, "duration_s": f"{duration_s:g}", "ttft_p95_ms": f"{ttft:g}",
           "tpot_p95_ms": f"{tpot:g}", "seeds": str(seeds)}
    if load is not None:
        out["load"] = f"{load:g}"
    for i, (name, overrides) in enumerate(changes, start=1):
        out[f"change{i}_name"] = name
        out[f"change{i}"] = overrides
    return out


def _number(text: str, low: float, high: float, whole: bool) -> tuple[Any, str | None]:
    number, problem = parse_number(text, whole)
    if problem is None and not low <= number <= high:
        problem = f"below {low:g}" if high == float("inf") else f"outside {low:g} to {high:g}"
    return (None, problem) if problem else (number, None)
