"""Plan's settings in the page's address: the bundled scenario, the targets, the load and
window, the candidates and the seeds, so a planning question can be shared and asked again.

Only a bundled example can be linked (an uploaded file is not the link's to carry). A link is
read once, when a session opens it; a value that does not fit is left out and named.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from app.examples import example_names, example_text
from app.link_state import parse_number, quoted
from app.plan_view import DEFAULT_GPUS, FORMAT_CHOICES, TP_CHOICES, prefill, priced_gpus
from app.simulation import scenario_from_yaml

NUMBERS = {  # link name -> (session key, low, high, whole number)
    "ttft_p95_ms": ("plan_ttft", 1.0, float("inf"), False),
    "tpot_p95_ms": ("plan_tpot", 0.1, float("inf"), False),
    "e2e_p99_ms": ("plan_e2e", 1.0, float("inf"), False),
    "rate_per_s": ("plan_rate", 0.01, float("inf"), False),
    "window_s": ("plan_window", 5.0, 3600.0, False),
    "seeds": ("plan_seeds", 1, 10, True),
}
LISTS = {"gpus": "plan_gpus", "formats": "plan_formats", "tp": "plan_tp"}  # comma-separated


def read_link(query: Mapping[str, str]) -> tuple[dict[str, Any], list[str]]:
    """(session key -> value) for what a link carries, and one problem per value left out."""
    if "example" not in query:
        return {}, []
    name = str(query["example"])
    if name not in example_names():
        return {}, [quoted("example", "not a bundled example", name)]
    text = example_text(name)
    # the scenario counts as loaded already: its own targets do not replace the link's
    values: dict[str, Any] = {"plan_source": "example", "plan_example": name,
                              "plan_loaded": hashlib.sha256(text.encode()).hexdigest()}
    problems: list[str] = []
    for link_name, (key, low, high, whole) in NUMBERS.items():
        if link_name not in query:
            continue
        number, problem = parse_number(str(query[link_name]), whole)
        if problem is None and not low <= number <= high:
            problem = f"below {low:g}" if high == float("inf") else f"outside {low:g} to {high:g}"
        if problem:
            problems.append(quoted(link_name, problem, query[link_name]))
        else:
            values[key] = number
    scenario = scenario_from_yaml(text)
    allowed = {"gpus": priced_gpus(scenario), "formats": list(FORMAT_CHOICES),
               "tp": list(TP_CHOICES)}
    for link_name, key in LISTS.items():
        if link_name not in query:
            continue
        chosen = [item for item in str(query[link_name]).split(",") if item]
        wrong = [item for item in chosen if item not in allowed[link_name]]
        if wrong or not chosen:
            problems.append(quoted(link_name, "not among the choices", ",".join(wrong)))
        else:
            values[key] = chosen
    # what the link leaves out comes from the scenario, as when the page loads it
    fill = prefill(scenario)
    own = {"plan_ttft": fill.ttft_p95_ms, "plan_tpot": fill.tpot_p95_ms,
           "plan_e2e": fill.e2e_p99_ms, "plan_rate": fill.rate_per_s,
           "plan_window": fill.window_s,
           "plan_gpus": [g for g in DEFAULT_GPUS if g in allowed["gpus"]] or allowed["gpus"][:3]}
    return own | values, problems


def link_of(example: str, numbers: dict[str, float | None],
            lists: dict[str, list[str]]) -> dict[str, str]:
    """The address's query for a plan of a bundled scenario (``numbers`` and ``lists`` by the
    link's names; a number left empty is left out)."""
    out = {"example": example}
    out |= {name: f"{value:g}" for name, value in numbers.items() if value is not None}
    out |= {name: ",".join(map(str, items)) for name, items in lists.items()}
    return out
