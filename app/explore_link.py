"""Explore's settings in the page's address, so a setup can be shared and reloaded.

The address carries the settings that differ from the defaults, by their ``ExploreInputs``
name (``?gpu=a100-80gb&rate_per_s=12``). A link is read once, when a session opens it: each
value is checked against what its widget accepts, and one that does not fit is left out and
named on the page ("rate_per_s: not a number (got 'abc')"), never a traceback.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sim.config.model_catalog import list_models
from sim.engine.gpu import list_gpus

from app.link_state import parse_number, quoted
from app.explore_form import (PRICE_TIERS, SCHEDULERS, WEIGHT_FORMATS, WORKLOADS,
                              ExploreInputs)

DEFAULTS = ExploreInputs()


def _choices(options: Callable[[], list] | tuple) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        allowed = list(options() if callable(options) else options)
        return None if value in allowed else f"not one of {', '.join(map(str, allowed[:8]))}" \
            + (", ..." if len(allowed) > 8 else "")
    return check


def _between(low: float, high: float) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if low <= value <= high:
            return None
        return f"below {low:g}" if high == float("inf") else f"outside {low:g} to {high:g}"
    return check


# widget key -> (ExploreInputs field, check of a value); the widgets' own choices and bounds
LINKED: dict[str, tuple[str, Callable[[Any], str | None]]] = {
    "explore_model": ("model", _choices(list_models)),
    "explore_gpu": ("gpu", _choices(lambda: [g for g in list_gpus() if not g.startswith("x86")])),
    "explore_tp": ("tensor_parallel", _choices((1, 2, 4, 8))),
    "explore_replicas": ("replicas", _between(1, 512)),
    "explore_price_tier": ("price_tier", _choices(PRICE_TIERS)),
    "explore_own_price": ("own_price_per_gpu_hour", _between(0.0, 1_000.0)),
    "explore_weight_dtype": ("weight_dtype", _choices(WEIGHT_FORMATS)),
    "explore_scheduler": ("scheduler", _choices(SCHEDULERS)),
    "explore_max_num_seqs": ("max_num_seqs", _between(1, 4096)),
    "explore_prefix_caching": ("prefix_caching", _choices((True, False))),
    "explore_workload": ("workload", _choices([w for w in WORKLOADS if w != "uploaded trace"])),
    "explore_rate": ("rate_per_s", _between(0.01, float("inf"))),
    "explore_duration": ("duration_s", _between(1.0, float("inf"))),
    "explore_slo_ttft": ("ttft_p95_ms", _between(1.0, 600_000.0)),
    "explore_slo_tpot": ("tpot_p95_ms", _between(1.0, 10_000.0)),
    "explore_seed": ("seed", _between(0, 2**31 - 1)),
}


def read_link(query: Mapping[str, str]) -> tuple[dict[str, Any], list[str]]:
    """(widget key -> value) for the settings a link carries, and one problem per value left
    out. Names the link carries that are no setting are ignored."""
    values, problems = {}, []
    for key, (name, check) in LINKED.items():
        if name not in query:
            continue
        text = str(query[name])
        value, problem = _parse(text, type(getattr(DEFAULTS, name)))
        problem = problem or check(value)
        if problem:
            problems.append(quoted(name, problem, text))
        else:
            values[key] = value
    return values, problems


def link_of(inputs: ExploreInputs) -> dict[str, str]:
    """The address's query for these settings: those that differ from the defaults."""
    out = {}
    for name, _ in LINKED.values():
        value = getattr(inputs, name)
        if value != getattr(DEFAULTS, name):
            out[name] = str(value).lower() if isinstance(value, bool) else str(value)
    return out


def _parse(text: str, kind: type) -> tuple[Any, str | None]:
    if kind is bool:
        if text.lower() in ("true", "false"):
            return text.lower() == "true", None
        return None, "not true or false"
    if kind in (int, float):
        return parse_number(text, whole=kind is int)
    return text, None
