"""The scenario file: one typed, validated description of a what-if.

    name, seed, model, hardware {...}, engine {...}, workload {...}, slo {...}

Every section forbids unknown keys. A bad file raises ``ScenarioError`` whose message names the
field (``engine.block_size``), the value and the fix; the CLI prints it without a traceback.
Checks that need the catalogs (does the model fit in the GPU?) happen when the scenario is
resolved into an engine setup (``sim.runner.run``).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sim.config.vllm_release import DEFAULT_VERSION, release_for
from sim.engine.errors import ScenarioError
from sim.workload.workload_spec import WorkloadSpec

_STRICT = ConfigDict(extra="forbid", frozen=True)

WeightDtype = Literal["fp32", "bf16", "fp16", "fp8", "int8", "awq-int4", "gptq-int4"]
KvDtype = Literal["auto", "fp32", "bf16", "fp16", "fp8"]


class HardwareSpec(BaseModel):
    model_config = _STRICT

    gpu: str
    tensor_parallel: Annotated[int, Field(ge=1, le=64)] = 1
    replicas: Annotated[int, Field(ge=1, le=100_000)] = 1
    gpu_memory_utilization: Annotated[float, Field(gt=0, le=1)] = 0.9
    price_usd_per_hour: Annotated[float, Field(ge=0)] | None = None  # per GPU; overrides the table
    price_tier: Literal["on_demand", "spot", "reserved"] = "on_demand"
    # reserved: the on-demand catalog price less this share (the discount of your own 1- or
    # 3-year commitment; public price guides quote 30-60 %); required for that tier
    reserved_discount: Annotated[float, Field(ge=0, lt=1)] | None = None
    # within the pool: replicas in turn, the least busy one, or (prefix_affinity) the replica
    # that already holds the request's shared prefix unless it is much busier than the others
    router: Literal["round_robin", "least_outstanding", "prefix_affinity"] = "least_outstanding"


    # host RAM of one replica's server share, for the CPU KV offload tier; None: the GPU
    # catalog's typical figure per GPU times tensor_parallel
    host_memory_gib: Annotated[float, Field(gt=0)] | None = None

    @model_validator(mode="after")
    def _check_reserved(self) -> HardwareSpec:
        if self.price_tier == "reserved" and self.reserved_discount is None:
            raise ScenarioError(
                "price_tier reserved needs reserved_discount, your commitment's discount on the "
                "on-demand price (e.g. reserved_discount: 0.4 for 40 % off); reserved prices "
                "are negotiated, so the catalog has none"
            )
        if self.reserved_discount is not None and self.price_tier != "reserved":
            raise ScenarioError(
                f"reserved_discount applies only to price_tier reserved, not {self.price_tier}: "
                "set price_tier: reserved or remove reserved_discount"
            )
        return self


SchedulerName = Literal["continuous", "naive", "static", "dynamic"]
# Batch timeouts when the file gives none: TorchServe's default max batch delay for static
# batches, Triton's default max queue delay (none) for its dynamic batcher.
_DEFAULT_TIMEOUT_MS = {"static": 100.0, "dynamic": 0.0}
_DEFAULT_BATCH_SIZE = 8


class EngineSpec(BaseModel):
    model_config = _STRICT

    # continuous: vLLM-style iteration-level batching; naive: one request at a time per
    # replica, whole prompt in one step (a plain generate() server), no prefix cache;
    # static / dynamic: request-level batches that run until their longest request ends
    scheduler: SchedulerName = "continuous"
    # paged: blocks taken as tokens arrive; contiguous: each request's maximum length
    # reserved up front. Default: contiguous for static/dynamic batches, paged otherwise.
    kv_allocation: Literal["paged", "contiguous"] | None = None
    static_batch_size: Annotated[int, Field(ge=1, le=4096)] | None = None  # dynamic: maximum
    batch_timeout_ms: Annotated[float, Field(ge=0)] | None = None  # dynamic: max queue delay
    preferred_batch_sizes: tuple[Annotated[int, Field(ge=1)], ...] | None = None  # dynamic
    # left out: the default of `vllm serve` in vllm_version for the scenario's GPU (1,024
    # sequences and 8,192 tokens on GPUs of 70 GiB or more other than the A100, else 256/2,048)
    max_num_seqs: Annotated[int, Field(ge=1)] | None = None
    max_num_batched_tokens: Annotated[int, Field(ge=1)] | None = None
    max_model_len: Annotated[int, Field(ge=2)] | None = None
    block_size: Literal[1, 8, 16, 32, 64, 128] = 16
    chunked_prefill: bool = True
    prefix_caching: bool = True
    weight_dtype: WeightDtype = "bf16"
    kv_cache_dtype: KvDtype = "auto"
    num_gpu_blocks: Annotated[int, Field(ge=1)] | None = None
    latency_profile: str = "auto"  # auto: calibrated for this configuration, else default
    # the vLLM release whose defaults apply to every setting below left out
    # (sim/catalog/vllm_releases.yaml, docs/engine.md)
    vllm_version: str = DEFAULT_VERSION
    # plan step n+1 while step n runs (vLLM >= 0.14 on GPUs); None: the release's default
    async_scheduling: bool | None = None
    # no CUDA graphs: every step runs eagerly, no padding to captured sizes
    enforce_eager: bool = False
    # batch sizes (tokens) captured as CUDA graphs; None: the release's list
    cuda_graph_sizes: tuple[Annotated[int, Field(ge=1, le=65_536)], ...] | None = None
    # what must fit to admit a waiting request: the chunk scheduled now (first_chunk), or
    # the whole prompt's blocks (whole_prompt, vLLM >= 0.21); None: the release's rule
    admission: Literal["first_chunk", "whole_prompt"] | None = None
    # host memory (GiB per replica, all its GPUs together, as vLLM's --kv-offloading-size)
    # that KV blocks evicted from the GPU move to and are loaded back from; 0 = none
    cpu_offload_gib: Annotated[float, Field(ge=0, le=1_000_000)] = 0.0

    @field_validator("cuda_graph_sizes")
    @classmethod
    def _check_graph_sizes(cls, value: tuple[int, ...] | None) -> tuple[int, ...] | None:
        if value is not None and not value:
            raise ScenarioError("cuda_graph_sizes is empty: for no CUDA graphs set "
                                "enforce_eager: true, or leave it out for the release's list")
        return None if value is None else tuple(sorted(set(value)))

    @field_validator("vllm_version")
    @classmethod
    def _check_version(cls, value: str) -> str:
        release_for(value)  # a malformed or too old version fails here, with the fix
        return value

    @property
    def batches_requests(self) -> bool:
        """Request-level (static or dynamic) batching rather than iteration-level."""
        return self.scheduler in ("static", "dynamic")

    @property
    def kv_allocation_used(self) -> str:
        if self.kv_allocation is not None:
            return self.kv_allocation
        return "contiguous" if self.batches_requests else "paged"

    @property
    def batch_size_used(self) -> int:
        return self.static_batch_size or _DEFAULT_BATCH_SIZE

    @property
    def batch_timeout_ms_used(self) -> float:
        if self.batch_timeout_ms is not None:
            return self.batch_timeout_ms
        return _DEFAULT_TIMEOUT_MS.get(self.scheduler, 0.0)

    @property
    def prefix_caching_used(self) -> bool:
        """Prefix caching needs iteration-level scheduling over paged blocks."""
        return (self.prefix_caching and self.scheduler == "continuous"
                and self.kv_allocation_used == "paged")

    @model_validator(mode="after")
    def _check_batcher(self) -> EngineSpec:
        # The batcher's keys are accepted (and ignored) under the other schedulers, as the
        # token budget is under static batching, so one file can be swept across policies.
        if self.preferred_batch_sizes is not None:
            too_big = [n for n in self.preferred_batch_sizes if n > self.batch_size_used]
            if too_big:
                raise ScenarioError(
                    f"preferred_batch_sizes {too_big} exceed static_batch_size "
                    f"{self.batch_size_used}, the largest batch: lower them or raise it"
                )
        return self

    @model_validator(mode="after")
    def _check_limits(self) -> EngineSpec:
        if self.max_num_batched_tokens is None:
            return self  # checked again once the release's defaults are filled in
        if self.max_num_seqs is not None and self.max_num_batched_tokens < self.max_num_seqs:
            raise ScenarioError(
                f"max_num_batched_tokens ({self.max_num_batched_tokens}) must be at least "
                f"max_num_seqs ({self.max_num_seqs}), as in vLLM: every running sequence needs "
                "a token of budget each step; raise max_num_batched_tokens or lower max_num_seqs"
            )
        if (
            not self.chunked_prefill
            and self.max_model_len is not None
            and self.max_num_batched_tokens < self.max_model_len
        ):
            raise ScenarioError(
                f"without chunked prefill a prompt must fit in one step: max_num_batched_tokens "
                f"({self.max_num_batched_tokens}) < max_model_len ({self.max_model_len}); raise "
                "max_num_batched_tokens, lower max_model_len or set chunked_prefill: true"
            )
        return self


class GatewaySpec(BaseModel):
    """Micro-batching in front of the engines (sim.fleet.gateway): hold requests up to window_ms
    and release them in groups of up to max_batch with equal group_by keys."""

    model_config = _STRICT

    window_ms: Annotated[float, Field(ge=0, le=60_000)]
    max_batch: Annotated[int, Field(ge=1, le=100_000)] = 32
    group_by: tuple[Literal["model", "endpoint", "max_tokens"], ...] = ()


class SloSpec(BaseModel):
    model_config = _STRICT

    ttft_p95_ms: Annotated[float, Field(gt=0)] | None = None
    tpot_p95_ms: Annotated[float, Field(gt=0)] | None = None
    e2e_p99_ms: Annotated[float, Field(gt=0)] | None = None  # whole reply, for the planner
    # the share of the arrived requests that may be rejected (or left unfinished) within the
    # SLO: latency percentiles count only completed requests, so a fleet that turns requests
    # away must fail on this instead (sim.results.slo_verdict)
    max_rejected_share: Annotated[float, Field(ge=0, le=1)] = 0.01


PoolName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]


class PoolSpec(BaseModel):
    """One model pool of a fleet: identical replicas of one model on one GPU tier.

    ``engine`` gives only what differs from the scenario's top-level ``engine`` section, so a
    sweep's ``engine.max_num_seqs=64`` reaches every pool.
    """

    model_config = _STRICT

    name: PoolName
    model: str
    hardware: HardwareSpec
    engine: dict[str, Any] = Field(default_factory=dict)


class RouteSpec(BaseModel):
    """One routing rule: the requests it matches go to pool ``to``; the first matching rule
    wins. Conditions left out match everything; ``fraction`` takes that share of the requests
    that reach this rule and meet its conditions (drawn per request from the scenario's seed),
    and lets the rest fall through to the next rules."""

    model_config = _STRICT

    to: PoolName
    endpoints: tuple[str, ...] | None = None  # request class or API endpoint (traces, classes)
    min_prompt_tokens: Annotated[int, Field(ge=0)] | None = None
    max_prompt_tokens: Annotated[int, Field(ge=1)] | None = None
    fraction: Annotated[float, Field(gt=0, le=1)] = 1.0

    @model_validator(mode="after")
    def _check_bounds(self) -> RouteSpec:
        low, high = self.min_prompt_tokens, self.max_prompt_tokens
        if low is not None and high is not None and low > high:
            raise ScenarioError(
                f"min_prompt_tokens {low} > max_prompt_tokens {high}: no prompt can match; "
                "swap them"
            )
        return self

    @property
    def is_catch_all(self) -> bool:
        return (self.endpoints is None and self.min_prompt_tokens is None
                and self.max_prompt_tokens is None and self.fraction == 1.0)


class FleetSpec(BaseModel):
    """Several model pools behind a router that sends each request to one pool by rules."""

    model_config = _STRICT

    pools: Annotated[tuple[PoolSpec, ...], Field(min_length=1, max_length=64)]
    routes: tuple[RouteSpec, ...] = ()

    @model_validator(mode="after")
    def _check_names(self) -> FleetSpec:
        names = [pool.name for pool in self.pools]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ScenarioError(f"pool names must be unique; repeated: {', '.join(repeated)}")
        unknown = sorted({r.to for r in self.routes} - set(names))
        if unknown:
            raise ScenarioError(
                f"routes send requests to unknown pool(s) {', '.join(unknown)}; pools are "
                f"{', '.join(names)}"
            )
        if len(self.pools) > 1 and not self.routes:
            raise ScenarioError(
                "a fleet with several pools needs routes saying which requests go where, e.g. "
                f"routes: [{{to: {names[0]}, endpoints: [classify]}}, {{to: {names[-1]}}}]"
            )
        unused = [n for n in names if self.routes and n not in {r.to for r in self.routes}]
        if unused:
            raise ScenarioError(
                f"pool(s) {', '.join(unused)} receive no requests (no route sends any there): "
                "add a route or remove the pool"
            )
        return self


class Scenario(BaseModel):
    """A what-if: one pool (``model`` + ``hardware``) or a ``fleet`` of pools, under a load."""

    model_config = _STRICT

    name: str = "scenario"
    seed: Annotated[int, Field(ge=0)] = 0
    model: str | None = None
    hardware: HardwareSpec | None = None
    engine: EngineSpec = EngineSpec()
    fleet: FleetSpec | None = None
    gateway: GatewaySpec | None = None
    workload: WorkloadSpec
    slo: SloSpec = SloSpec()
    # percent of the unquantized model's score a format keeps, from the user's own evaluation;
    # replaces the published figure of sim/catalog/quality.csv for that format
    quality_retention: dict[WeightDtype, Annotated[float, Field(gt=0, le=200)]] = Field(
        default_factory=dict)

    @model_validator(mode="after")
    def _check_pools(self) -> Scenario:
        single = self.model is not None or self.hardware is not None
        if self.fleet is not None and single:
            raise ScenarioError(
                "give either model + hardware (one pool) or fleet (several pools), not both; "
                "move model and hardware into a fleet pool"
            )
        if self.fleet is None and (self.model is None or self.hardware is None):
            missing = [k for k in ("model", "hardware") if getattr(self, k) is None]
            raise ScenarioError(
                f"missing {' and '.join(missing)}: a scenario needs model and hardware, or a "
                "fleet of pools"
            )
        if self.fleet is not None:
            for pool in self.fleet.pools:
                _pool_engine(self.engine, pool)  # a bad engine key fails here, pool named
        return self

    @property
    def is_fleet(self) -> bool:
        return self.fleet is not None

    def pool_scenarios(self) -> list[tuple[str, Scenario]]:
        """Each pool as a one-pool scenario (its name, the scenario), in the fleet's order.

        A one-pool scenario is its own single pool, named after its model."""
        if self.fleet is None:
            return [(str(self.model), self)]
        return [
            (pool.name, self.model_copy(update={
                "name": f"{self.name}/{pool.name}", "model": pool.model,
                "hardware": pool.hardware, "engine": _pool_engine(self.engine, pool),
                "fleet": None,
            }))
            for pool in self.fleet.pools
        ]

    @model_validator(mode="after")
    def _check_gateway(self) -> Scenario:
        arrivals = self.workload.arrivals
        if self.gateway is not None and arrivals is not None and arrivals.concurrency:
            raise ScenarioError(
                "gateway: a closed-loop workload sends each request when a reply ends, so a "
                "gateway window would only delay it; remove gateway or use an open-loop process"
            )
        if self.gateway is not None and self.workload.sessions is not None:
            raise ScenarioError(
                "gateway: a conversation sends each turn when the user has read the reply, so "
                "a gateway window would only delay it; remove gateway or workload.sessions"
            )
        return self

    def with_seed(self, seed: int) -> Scenario:
        return self.model_copy(update={"seed": seed})


def _pool_engine(base: EngineSpec, pool: PoolSpec) -> EngineSpec:
    """The scenario's engine settings with the pool's own on top, validated together."""
    merged = {**base.model_dump(exclude_unset=True), **pool.engine}
    try:
        return EngineSpec.model_validate(merged)
    except ValidationError as exc:
        where = f"fleet.pools[{pool.name}].engine."
        problems = describe_validation_error(exc).replace("  - ", "").splitlines()
        raise ScenarioError("; ".join(where + problem for problem in problems)) from None


def parse_scenario(data: Any, where: str = "scenario") -> Scenario:
    """Validate a parsed YAML/JSON document; errors become one readable ScenarioError."""
    if not isinstance(data, dict):
        raise ScenarioError(f"{where}: expected a mapping of sections (model, hardware, ...)")
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(f"{where} is not valid:\n{describe_validation_error(exc)}") from None


def load_scenario(path: str | Path, overrides: list[str] | None = None) -> Scenario:
    """Load a scenario file, with ``section.key=value`` overrides applied before validation."""
    path = Path(path)
    if not path.is_file():
        raise ScenarioError(f"no scenario file at {path}; give the path of a YAML scenario")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{path} is not valid YAML: {exc}") from None
    if overrides and isinstance(data, dict):
        data = apply_overrides(data, overrides)
    return _relative_to(parse_scenario(data, where=str(path)), path.parent)


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """A copy of a scenario document with each ``dotted.key=value`` set (value read as YAML).

    ``engine.max_num_seqs=64`` or ``workload.arrivals.rate_per_s=8`` change one value, so a sweep
    needs no file editing; missing sections are created, and validation then checks the result.
    """
    data = copy.deepcopy(data)
    for override in overrides:
        key, sep, text = override.partition("=")
        parts = key.strip().split(".")
        if not sep or not all(parts):
            raise ScenarioError(
                f"--set {override!r}: write it as section.key=value, e.g. engine.max_num_seqs=64"
            )
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ScenarioError(f"--set {override!r}: the value is not valid YAML ({exc})") from None
        node = data
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ScenarioError(
                    f"--set {override!r}: {part} is a value, not a section with keys"
                )
            node = child
        node[parts[-1]] = value
    return data


def _relative_to(scenario: Scenario, folder: Path) -> Scenario:
    """Read relative file paths in a scenario (model config, device file, latency profile,
    trace) from its folder."""
    update: dict[str, Any] = {"engine": _engine_files(scenario.engine, folder)}
    if scenario.fleet is None:
        update["model"] = _local_file(str(scenario.model), folder)
        update["hardware"] = _hardware_files(scenario.hardware, folder)
    else:
        pools = tuple(
            pool.model_copy(update={
                "model": _local_file(pool.model, folder),
                "hardware": _hardware_files(pool.hardware, folder),
                "engine": {**pool.engine, **({"latency_profile": _local_file(
                    str(pool.engine["latency_profile"]), folder)}
                    if "latency_profile" in pool.engine else {})},
            })
            for pool in scenario.fleet.pools
        )
        update["fleet"] = scenario.fleet.model_copy(update={"pools": pools})
    workload = scenario.workload
    if workload.trace is not None:
        trace = workload.trace.model_copy(update={"path": _local_file(workload.trace.path, folder)})
        workload = workload.model_copy(update={"trace": trace})
    update["workload"] = workload
    return scenario.model_copy(update=update)


def _hardware_files(hardware: HardwareSpec | None, folder: Path) -> HardwareSpec | None:
    if hardware is None:
        return None
    return hardware.model_copy(update={"gpu": _local_file(hardware.gpu, folder)})


def _engine_files(engine: EngineSpec, folder: Path) -> EngineSpec:
    return engine.model_copy(
        update={"latency_profile": _local_file(engine.latency_profile, folder)}
    )


def _local_file(value: str, folder: Path) -> str:
    candidate = folder / value
    if Path(value).is_absolute() or not candidate.exists() or not Path(value).suffix:
        return value
    return str(candidate)


def scenario_yaml(scenario: Scenario) -> str:
    """The scenario as YAML that loads back to an equal scenario."""
    data = scenario.model_dump(mode="json", exclude_none=True)
    return yaml.safe_dump(data, sort_keys=False)


def describe_validation_error(exc: ValidationError) -> str:
    """One line per problem: the field's dotted path and what is wrong with it."""
    lines = []
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"]) or "(top level)"
        cause = error.get("ctx", {}).get("error")
        message = str(cause) if isinstance(cause, ScenarioError) else error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown key; check its spelling against docs/scenario.md"
        elif "input" in error and error["type"] != "missing" and not isinstance(cause, ScenarioError):
            message += f" (got {error['input']!r})"
        lines.append(f"  - {field}: {message}")
    return "\n".join(lines)
