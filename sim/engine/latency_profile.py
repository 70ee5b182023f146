"""Latency profiles: the fitted coefficients of the step-time model, as plain YAML files.

A profile names its ``form``: ``roofline`` (one ``max(compute, memory)`` over the whole step,
``sim.engine.latency_model``) or ``operators`` (each operator bounded by its own compute or memory
time, ``sim.engine.operator_latency_model``). It has default ``coefficients`` and ``overrides``
that apply when their ``match`` keys (``gpu``, ``model``, ``tensor_parallel``, ``weight_dtype``,
``interconnect``) all equal the scenario's; the override matching the most keys wins (ties:
the later one). A trained profile also says what it was trained on (``training_data``) and how
far off it was on what it was not trained on (``error_band``). Calibration writes the same
format, so a fitted profile replaces the defaults without code changes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import yaml

from sim.engine.errors import ScenarioError

MATCH_KEYS = ("gpu", "model", "tensor_parallel", "weight_dtype", "interconnect")
FORMS = ("roofline", "operators")
# shipped names kept for scenarios written before the roofline had a name of its own
ALIASES = {"default": "roofline"}


@dataclass(frozen=True, slots=True)
class Coefficients:
    step_overhead_ms: float
    per_seq_overhead_ms: float
    per_prefill_seq_overhead_ms: float
    compute_efficiency: float
    memory_efficiency: float
    allreduce_latency_us: float
    allreduce_efficiency: float
    # fixed GPU time of a step replayed as one captured CUDA graph (pure decode that fits the
    # largest capture size) and of any other step (eager or piecewise: kernel launches);
    # both default to 0 so profiles written before they existed keep their meaning
    graph_step_overhead_ms: float = 0.0
    eager_step_overhead_ms: float = 0.0

    def __post_init__(self) -> None:
        for name in ("compute_efficiency", "memory_efficiency", "allreduce_efficiency"):
            value = getattr(self, name)
            if not 0 < value <= 1:
                raise ScenarioError(f"latency profile: {name} must be in (0, 1], got {value}")
        for f in dataclasses.fields(self):
            if getattr(self, f.name) < 0:
                raise ScenarioError(f"latency profile: {f.name} must be >= 0")


@dataclass(frozen=True, slots=True)
class OperatorCoefficients:
    """The few global coefficients of the per-operator step-time model (docs/latency-model.md).

    Efficiencies are shares of a GPU's datasheet peak; overheads are fixed costs. The last two
    are outside the engine: what a streaming client waits for besides the engine's steps.
    """

    gemm_compute_efficiency: float  # share of dense peak FLOP/s the weight GEMMs reach
    weight_memory_efficiency: float  # share of HBM bandwidth streaming weights
    kv_memory_efficiency: float  # share of HBM bandwidth reading KV in attention
    attention_compute_efficiency: float  # share of dense peak the attention kernels reach
    allreduce_latency_us: float  # fixed cost of one all-reduce (two per layer, TP > 1)
    allreduce_efficiency: float  # share of the link bandwidth an all-reduce reaches
    step_overhead_ms: float  # host: scheduling, input preparation, sampling, per step
    per_seq_overhead_us: float  # host: per scheduled sequence per step
    per_prefill_seq_overhead_ms: float  # host: per sequence with prompt tokens in the step
    graph_layer_overhead_us: float  # GPU, per layer, in a step replayed as one CUDA graph
    eager_layer_overhead_us: float  # GPU, per layer, in an eager or piecewise step
    moe_layer_overhead_us: float  # GPU, per MoE layer (routing, token permutation)
    request_overhead_ms: float  # client: HTTP, tokenization before the first token
    output_token_overhead_ms: float  # client: detokenization and streaming, per output token

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name.endswith("efficiency"):
                if not 0 < value <= 1:
                    raise ScenarioError(f"latency profile: {f.name} must be in (0, 1], got {value}")
            elif value < 0:
                raise ScenarioError(f"latency profile: {f.name} must be >= 0, got {value}")


@dataclass(frozen=True, slots=True)
class LatencyProfile:
    name: str
    source: str
    coefficients: dict
    overrides: tuple[tuple[dict, dict], ...]
    # True when the host terms (step_overhead_ms, per_seq_overhead_ms,
    # per_prefill_seq_overhead_ms) were set apart from the GPU's, so an asynchronous engine may
    # hide them behind GPU time; False (profiles fitted or set as one sum of both, as every
    # profile before the async engine was) keeps the sum under async scheduling too
    host_overlap: bool = False
    form: str = "roofline"
    # what a trained profile was fitted on: {"models": [...], "gpus": [...],
    # "tensor_parallel": [...]}; empty for a hand-set profile
    training_data: dict = dataclasses.field(default_factory=dict)
    # the raw ``error_band`` section (read by ``sim.results.error_band``); empty when there is none
    error_band: dict = dataclasses.field(default_factory=dict)

    @property
    def coefficient_type(self) -> type:
        return OperatorCoefficients if self.form == "operators" else Coefficients

    def in_training_data(self, *, model: str, gpu: str, tensor_parallel: int) -> dict | None:
        """For each of model, GPU and TP degree: was it in the data this profile was trained
        on? None for a profile that was not trained on runs (hand-set or per-configuration)."""
        data = self.training_data
        if not data:
            return None
        return {"model": model in data.get("models", ()),
                "gpu": gpu in data.get("gpus", ()),
                "tensor_parallel": tensor_parallel in data.get("tensor_parallel", ())}

    def _matching(self, context: dict) -> list[tuple[dict, dict]]:
        """The overrides that apply, least specific first (later ones win)."""
        matching = [
            (len(match), i, match, coeffs)
            for i, (match, coeffs) in enumerate(self.overrides)
            if all(context.get(k) == v for k, v in match.items())
        ]
        return [(m, c) for _, _, m, c in sorted(matching, key=lambda m: (m[0], m[1]))]

    def most_specific_match(self, **context: object) -> dict | None:
        """The ``match`` of the most specific override used for ``context`` (None: the base
        coefficients alone), so a report can say what the numbers were calibrated for."""
        matching = self._matching(context)
        return dict(matching[-1][0]) if matching else None

    def resolve(self, **context: object) -> Coefficients | OperatorCoefficients:
        """Coefficients for one (gpu, model, tensor_parallel, weight_dtype, interconnect)."""
        merged = dict(self.coefficients)
        for _, coeffs in self._matching(context):
            merged.update(coeffs)
        try:
            return self.coefficient_type(**merged)
        except TypeError as exc:
            raise ScenarioError(f"latency profile {self.name!r}: {exc}") from None


def _parse(data: object, where: str) -> LatencyProfile:
    if not isinstance(data, dict) or "coefficients" not in data:
        raise ScenarioError(f"{where}: a latency profile needs a `coefficients` mapping")
    form = data.get("form", "roofline")
    if form not in FORMS:
        raise ScenarioError(f"{where}: form must be one of {list(FORMS)}, got {form!r}")
    known = {f.name for f in dataclasses.fields(
        OperatorCoefficients if form == "operators" else Coefficients)}
    overrides = []
    for i, item in enumerate(data.get("overrides") or []):
        match, coeffs = item.get("match", {}), item.get("coefficients", {})
        bad = set(match) - set(MATCH_KEYS)
        if bad:
            raise ScenarioError(
                f"{where}: overrides[{i}].match has unknown keys {sorted(bad)}; "
                f"use {list(MATCH_KEYS)}"
            )
        unknown = set(coeffs) - known
        if unknown:
            raise ScenarioError(f"{where}: overrides[{i}] has unknown coefficients {sorted(unknown)}")
        overrides.append((dict(match), dict(coeffs)))
    unknown = set(data["coefficients"]) - known
    if unknown:
        raise ScenarioError(f"{where}: unknown coefficients {sorted(unknown)}; known: {sorted(known)}")
    overlap = data.get("host_overlap", False)
    if not isinstance(overlap, bool):
        raise ScenarioError(f"{where}: host_overlap must be true or false, got {overlap!r}")
    return LatencyProfile(
        name=str(data.get("name", where)),
        source=str(data.get("source", "")),
        coefficients=dict(data["coefficients"]),
        overrides=tuple(overrides),
        host_overlap=overlap,
        form=form,
        training_data=_mapping(data, "training_data", where),
        error_band=_mapping(data, "error_band", where),
    )


def _mapping(data: dict, key: str, where: str) -> dict:
    value = data.get(key) or {}
    if not isinstance(value, dict):
        raise ScenarioError(f"{where}: {key} must be a mapping, got {type(value).__name__}")
    return value


@lru_cache(maxsize=32)
def load_profile(name_or_path: str = "roofline") -> LatencyProfile:
    """A shipped profile by name (``sim/catalog/profiles/<name>.yaml``) or a YAML file path."""
    name_or_path = ALIASES.get(name_or_path, name_or_path)
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.exists():
        text, where = path.read_text(), str(path)
    else:
        shipped = resources.files("sim") / "catalog" / "profiles" / f"{name_or_path}.yaml"
        if not shipped.is_file():
            raise ScenarioError(
                f"engine.latency_profile: no profile {name_or_path!r}; give a shipped name "
                f"({', '.join(list_profiles())}) or the path of a profile YAML file"
            )
        text, where = shipped.read_text(), f"profile {name_or_path}"
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{where}: not valid YAML ({exc})") from None
    return _parse(data, where)


def list_profiles() -> list[str]:
    folder = resources.files("sim") / "catalog" / "profiles"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))
