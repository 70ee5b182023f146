"""The `workload` section of a scenario: when requests arrive and how long they are.

Only the shape is checked here; `sim.workload.workload.generate_workload` turns a spec into
requests. Validators raise `ScenarioError` (a `ValueError`), which pydantic reports together with
the location of the offending section, e.g. `workload.arrivals`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from sim.engine.errors import ScenarioError

Tokens = Annotated[int, Field(ge=1)]
ArrivalProcess = Literal["poisson", "constant", "gamma", "all_at_once", "closed_loop"]
LengthDist = Literal["fixed", "uniform", "exponential", "lognormal", "empirical"]
Dataset = Literal["sharegpt", "arxiv"]

_SPEC_CONFIG = ConfigDict(extra="forbid", frozen=True)


class ArrivalsSpec(BaseModel):
    """How requests arrive: a process and, unless everything arrives at once, a rate.

    ``closed_loop`` is a benchmark client with ``concurrency`` users: each sends a request,
    waits for the whole reply, and sends the next at once (as ``vllm bench serve
    --max-concurrency`` or Triton's perf_analyzer do), so the load follows the server's speed.
    """

    model_config = _SPEC_CONFIG

    process: ArrivalProcess = "poisson"
    rate_per_s: Annotated[float, Field(gt=0)] | None = None
    cv: Annotated[float, Field(gt=0)] | None = None
    concurrency: Annotated[int, Field(ge=1, le=1_000_000)] | None = None

    @model_validator(mode="after")
    def _check_process_fields(self) -> ArrivalsSpec:
        if self.process == "gamma" and self.cv is None:
            raise ScenarioError(
                "process 'gamma' needs cv, the coefficient of variation of the gaps between "
                "arrivals: add e.g. cv: 2.0 (cv 1 is Poisson, larger is burstier)"
            )
        if self.process != "gamma" and self.cv is not None:
            raise ScenarioError(
                f"cv={self.cv} is only used by process 'gamma', not '{self.process}': "
                "remove cv or set process: gamma"
            )
        if self.process in ("all_at_once", "closed_loop") and self.rate_per_s is not None:
            raise ScenarioError(
                f"rate_per_s={self.rate_per_s} has no effect with process '{self.process}' "
                "(the arrivals do not follow a rate): remove rate_per_s"
            )
        if (self.process == "closed_loop") != (self.concurrency is not None):
            raise ScenarioError(
                "process 'closed_loop' needs concurrency (how many users wait on replies), "
                "e.g. {process: closed_loop, concurrency: 8}"
                if self.process == "closed_loop" else
                f"concurrency is only used by process 'closed_loop', not '{self.process}'"
            )
        return self


class StageSpec(BaseModel):
    """One stretch of a staged load: a constant rate held for a duration (rate 0 is a pause)."""

    model_config = _SPEC_CONFIG

    rate_per_s: Annotated[float, Field(ge=0)]
    duration_s: Annotated[float, Field(gt=0)]


# Which fields each distribution reads; any other field given is a mistake worth reporting.
_REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    "fixed": ("value",),
    "uniform": ("min", "max"),
    "exponential": ("mean",),
    "lognormal": ("mean", "sigma"),
    "empirical": ("dataset",),
}
_OPTIONAL_FIELDS: dict[str, tuple[str, ...]] = {
    "fixed": (),
    "uniform": (),
    "exponential": ("max",),
    "lognormal": ("max",),
    "empirical": ("max",),
}
_EXAMPLES: dict[str, str] = {
    "fixed": "{dist: fixed, value: 512}",
    "uniform": "{dist: uniform, min: 64, max: 1024}",
    "exponential": "{dist: exponential, mean: 128, max: 1536}",
    "lognormal": "{dist: lognormal, mean: 512, sigma: 0.8, max: 4096}",
    "empirical": "{dist: empirical, dataset: sharegpt, max: 4096}",
}


class LengthSpec(BaseModel):
    """A distribution of token counts; which fields apply depends on `dist`.

    `mean` is the mean length in tokens for both exponential and lognormal (for lognormal it is
    not the mu parameter). `max` caps samples; samples are always at least 1 token.
    """

    model_config = _SPEC_CONFIG

    dist: LengthDist
    value: Tokens | None = None
    min: Tokens | None = None
    max: Tokens | None = None
    mean: Annotated[float, Field(gt=0)] | None = None
    sigma: Annotated[float, Field(gt=0)] | None = None
    dataset: Dataset | None = None

    @model_validator(mode="after")
    def _check_fields_for_dist(self) -> LengthSpec:
        _check_dist_fields(self, self.dist)
        return self


def _check_dist_fields(spec: BaseModel, dist: str, examples: dict[str, str] = _EXAMPLES) -> None:
    """The fields `dist` needs are given, no others are, and a uniform range is not upside down."""
    required = _REQUIRED_FIELDS[dist]
    allowed = set(required) | set(_OPTIONAL_FIELDS[dist]) | {"dist"}
    missing = [name for name in required if getattr(spec, name) is None]
    if missing:
        raise ScenarioError(
            f"dist '{dist}' needs {', '.join(missing)}: write it like {examples[dist]}"
        )
    given = {name for name in spec.model_fields_set if getattr(spec, name) is not None}
    unused = given - allowed
    if unused:
        raise ScenarioError(
            f"{', '.join(sorted(unused))} not used by dist '{dist}': remove "
            f"{'it' if len(unused) == 1 else 'them'} (example: {examples[dist]})"
        )
    low, high = getattr(spec, "min"), getattr(spec, "max")
    if dist == "uniform" and low > high:
        raise ScenarioError(f"min={low} is greater than max={high}: swap them or raise max")


def _tokens_as_fixed(value: Any) -> Any:
    """Let a plain token count stand for a fixed length, e.g. `output_tokens: 256`."""
    if isinstance(value, int) and not isinstance(value, bool):
        return {"dist": "fixed", "value": value}
    return value


LengthOrTokens = Annotated[LengthSpec, BeforeValidator(_tokens_as_fixed)]


class LengthsSpec(BaseModel):
    """Prompt and response lengths of independent requests (no shared content)."""

    model_config = _SPEC_CONFIG

    input: LengthOrTokens
    output: LengthOrTokens


class SharedPrefixSpec(BaseModel):
    """Groups of users that share a system prompt, each asking their own question.

    A request is `system_prompt_tokens` identical within its group (cacheable), followed by
    `question_tokens` of its own content:

        group g: [ system prompt g .......... ][ question ]  -> output_tokens

    Each arrival is one (group, user) pair. With `repeat_questions` a pair asks the same
    question every time it comes round (a benchmark cycling through a fixed prompt set, as
    inference-perf's shared-prefix load does), so a repeat can find its whole prompt cached;
    otherwise every question is new and only the system prompt can be.
    """

    model_config = _SPEC_CONFIG

    num_groups: Tokens
    prompts_per_group: Tokens
    system_prompt_tokens: Tokens
    question_tokens: Tokens
    output_tokens: LengthOrTokens
    repeat_questions: bool = False

    @property
    def num_prompts(self) -> int:
        return self.num_groups * self.prompts_per_group


class RequestClassSpec(BaseModel):
    """One kind of request in a mix (an API endpoint: chat, summarise, classify, ...): its share
    of the arrivals, its lengths and its own output cap."""

    model_config = _SPEC_CONFIG

    name: Annotated[str, Field(min_length=1, max_length=100)]
    share: Annotated[float, Field(gt=0)]
    lengths: LengthsSpec
    max_tokens: Tokens | None = None  # this endpoint's cap on the output (the API's max_tokens)


class SecondsSpec(BaseModel):
    """A distribution of durations in seconds (a user's think time); samples are >= 0.

    Like `LengthSpec` but continuous and starting at 0: `fixed` (`value`), `uniform` (`min`,
    `max`), `exponential` (`mean`, optional `max`), `lognormal` (`mean`, `sigma`, optional
    `max`), where `mean` is the mean in seconds.
    """

    model_config = _SPEC_CONFIG

    dist: Literal["fixed", "uniform", "exponential", "lognormal"]
    value: Annotated[float, Field(ge=0)] | None = None
    min: Annotated[float, Field(ge=0)] | None = None
    max: Annotated[float, Field(ge=0)] | None = None
    mean: Annotated[float, Field(gt=0)] | None = None
    sigma: Annotated[float, Field(gt=0)] | None = None

    @model_validator(mode="after")
    def _check_fields_for_dist(self) -> SecondsSpec:
        _check_dist_fields(self, self.dist, _SECONDS_EXAMPLES)
        return self


_SECONDS_EXAMPLES: dict[str, str] = {
    "fixed": "{dist: fixed, value: 10}",
    "uniform": "{dist: uniform, min: 2, max: 30}",
    "exponential": "{dist: exponential, mean: 10, max: 120}",
    "lognormal": "{dist: lognormal, mean: 10, sigma: 1.0, max: 300}",
}


def _seconds_as_fixed(value: Any) -> Any:
    """Let a plain number of seconds stand for a fixed duration, e.g. `think_time_s: 10`."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value < 0:
            raise ScenarioError(
                f"think_time_s={value} is negative: a user answers after the reply, not before; "
                "give 0 or more seconds (or a distribution such as {dist: exponential, mean: 10})"
            )
        return {"dist": "fixed", "value": value}
    return value


def _turns_as_fixed(value: Any) -> Any:
    """A plain number of turns, checked here so that 0 gets a message with the fix."""
    if isinstance(value, int) and not isinstance(value, bool) and value < 1:
        raise ScenarioError(
            f"turns={value}: a conversation has at least one turn; give turns: 1 or more "
            "(or a distribution such as {dist: uniform, min: 2, max: 10})"
        )
    return _tokens_as_fixed(value)


SecondsOrNumber = Annotated[SecondsSpec, BeforeValidator(_seconds_as_fixed)]
TurnsOrNumber = Annotated[LengthSpec, BeforeValidator(_turns_as_fixed)]


class SessionsSpec(BaseModel):
    """Multi-turn conversations: each turn re-sends the whole conversation so far.

        turn 1:  [ first_turn_tokens ]                                     -> reply 1
        turn 2:  [ turn 1's prompt ][ reply 1 ][ new_tokens ]              -> reply 2
        turn 3:  [ turn 2's prompt           ][ reply 2 ][ new_tokens ]    -> reply 3

    Turn k+1 is sent `think_time_s` after turn k's reply ends, so a prefix cache can still hold
    turn k's prompt and reply. Arrivals (the workload's `arrivals` or `stages`) start new
    conversations. Every length distribution must be bounded (a `max`), so that the longest
    conversation can be checked against the engine's max_model_len before the run.
    """

    model_config = _SPEC_CONFIG

    turns: TurnsOrNumber
    think_time_s: SecondsOrNumber
    first_turn_tokens: LengthOrTokens
    new_tokens: LengthOrTokens
    reply_tokens: LengthOrTokens

    @model_validator(mode="after")
    def _check_bounded(self) -> SessionsSpec:
        if self.turns.dist == "empirical":
            raise ScenarioError(
                "turns: the empirical datasets hold token counts, not turns; give a number or "
                "{dist: uniform, min: 2, max: 10}"
            )
        for name in ("turns", "first_turn_tokens", "new_tokens", "reply_tokens"):
            spec: LengthSpec = getattr(self, name)
            if spec.dist not in ("fixed", "uniform") and spec.max is None:
                raise ScenarioError(
                    f"{name}: dist '{spec.dist}' has no upper bound; add max (e.g. "
                    f"{_EXAMPLES[spec.dist]}) so the longest conversation can be checked "
                    "against engine.max_model_len"
                )
        return self

    def longest_turn(self, max_tokens: int | None = None) -> tuple[int, int]:
        """The longest turn a conversation can send, as (prompt, reply) tokens: its last turn
        with every draw at its maximum (replies within ``max_tokens`` when given). Its prompt
        is first_turn + (turns - 1) x (new + reply)."""
        reply = _largest(self.reply_tokens)
        if max_tokens is not None:
            reply = min(reply, max_tokens)
        turns = _largest(self.turns)
        prompt = _largest(self.first_turn_tokens) + (turns - 1) * (
            _largest(self.new_tokens) + reply)
        return prompt, reply


def _largest(spec: LengthSpec) -> int:
    """The largest value a bounded length distribution can draw."""
    return spec.value if spec.dist == "fixed" else spec.max  # type: ignore[return-value]


class TraceSpec(BaseModel):
    """Replay a trace file (or a bundled trace by name) instead of generating requests.

    Transforms apply in this order while the trace streams: time window, model/endpoint
    filters, sampling, rate scaling, session splitting (gaps in trace time), re-basing and
    time scaling, copies from rate scaling, per-endpoint output caps.
    """

    model_config = _SPEC_CONFIG

    path: Annotated[str, Field(min_length=1)]
    format: str | None = None  # detected from the file when not given
    on_bad_rows: Literal["error", "skip"] = "error"
    columns: dict[str, str] | None = None  # column mapping of a generic CSV/JSONL/Parquet file
    start_s: Annotated[float, Field(ge=0)] | None = None
    end_s: Annotated[float, Field(gt=0)] | None = None
    time_scale: Annotated[float, Field(gt=0)] = 1.0
    rate_scale: Annotated[float, Field(gt=0)] = 1.0
    sample: Annotated[float, Field(gt=0, le=1)] = 1.0
    models: tuple[str, ...] | None = None
    endpoints: tuple[str, ...] | None = None
    max_tokens_by_endpoint: dict[str, Annotated[int, Field(ge=1)]] | None = None
    session_gap_s: Annotated[float, Field(gt=0)] | None = None

    @model_validator(mode="after")
    def _check_window(self) -> TraceSpec:
        if self.start_s is not None and self.end_s is not None and self.end_s <= self.start_s:
            raise ScenarioError(
                f"end_s={self.end_s} must be after start_s={self.start_s}: the window is empty"
            )
        return self

    def transforms(self) -> dict:
        """The transform options that differ from doing nothing (for traces.transforms)."""
        options = {
            "start_s": self.start_s, "end_s": self.end_s, "models": self.models,
            "endpoints": self.endpoints, "max_tokens_by_endpoint": self.max_tokens_by_endpoint,
            "session_gap_s": self.session_gap_s,
        }
        options = {k: v for k, v in options.items() if v is not None}
        for name in ("time_scale", "rate_scale", "sample"):
            if getattr(self, name) != 1.0:
                options[name] = getattr(self, name)
        return options


class WorkloadSpec(BaseModel):
    """Arrivals (a process and rate, or stages), a size, and lengths, a shared prefix or a mix
    of request classes; or a trace to replay."""

    model_config = _SPEC_CONFIG

    arrivals: ArrivalsSpec | None = None
    stages: Annotated[tuple[StageSpec, ...], Field(min_length=1)] | None = None
    num_requests: Tokens | None = None
    duration_s: Annotated[float, Field(gt=0)] | None = None
    lengths: LengthsSpec | None = None
    shared_prefix: SharedPrefixSpec | None = None
    classes: Annotated[tuple[RequestClassSpec, ...], Field(min_length=1)] | None = None
    sessions: SessionsSpec | None = None  # multi-turn conversations; arrivals start them
    trace: TraceSpec | None = None
    max_tokens: Tokens | None = None  # every request's cap on its output (the API's max_tokens)

    @model_validator(mode="after")
    def _check_sections(self) -> WorkloadSpec:
        if self.trace is not None:
            self._check_trace_alone()
            return self
        self._check_lengths_source()
        if self.stages is not None:
            self._check_stages()
        else:
            self._check_arrivals()
        self._check_size()
        return self

    @property
    def process(self) -> ArrivalProcess:
        """The arrival process, also used inside each stage; Poisson unless said otherwise."""
        return self.arrivals.process if self.arrivals is not None else "poisson"

    @property
    def stages_duration_s(self) -> float | None:
        return None if self.stages is None else sum(stage.duration_s for stage in self.stages)

    def expected_requests(self) -> float | None:
        """About how many requests the workload offers, known before it is drawn: its
        ``num_requests``, or its rate times its duration (stage by stage), whichever is fewer;
        a shared prefix's prompts when nothing else sizes it. None for a trace without
        ``num_requests`` (its rows are only counted as it is read) and for conversations
        sized by time (their turns depend on the replies)."""
        count = self.num_requests
        if self.trace is not None or (self.sessions is not None and count is None):
            return count
        timed = None
        if self.stages is not None:
            timed = sum(stage.rate_per_s * stage.duration_s for stage in self.stages)
        elif self.duration_s is not None and self.arrivals and self.arrivals.rate_per_s:
            timed = self.arrivals.rate_per_s * self.duration_s
        if count is None and timed is None and self.shared_prefix is not None:
            return self.shared_prefix.num_prompts
        return min(c for c in (count, timed) if c is not None) if (count, timed) != (None, None) \
            else None

    def _check_trace_alone(self) -> None:
        generators = [name for name in ("arrivals", "stages", "lengths", "shared_prefix",
                                        "classes", "sessions", "duration_s")
                      if getattr(self, name) is not None]
        if generators:
            raise ScenarioError(
                f"trace replays the trace's own arrivals and lengths; remove {', '.join(generators)} "
                "(use trace.end_s for a time window, num_requests to cap the count)"
            )

    def _check_lengths_source(self) -> None:
        given = [name for name in ("lengths", "shared_prefix", "classes", "sessions")
                 if getattr(self, name) is not None]
        if len(given) != 1:
            raise ScenarioError(
                "give exactly one of lengths (independent requests), shared_prefix (groups "
                "sharing a system prompt), classes (a mix of endpoints) or sessions "
                "(multi-turn conversations)"
                + (f": remove {' or '.join(given[1:])}" if given else "")
            )
        if self.sessions is not None and self.process == "closed_loop":
            raise ScenarioError(
                "sessions: each conversation sends its next turn after its own think time, "
                "so arrivals start conversations; use poisson, gamma, constant or all_at_once "
                "instead of closed_loop"
            )
        names = [c.name for c in self.classes or ()]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ScenarioError(f"classes: each name must be unique; {repeated} repeat")

    def _check_stages(self) -> None:
        if self.arrivals is not None and self.arrivals.rate_per_s is not None:
            raise ScenarioError(
                f"arrivals.rate_per_s={self.arrivals.rate_per_s} conflicts with stages, which "
                "set the rate of each stage: remove arrivals.rate_per_s (arrivals.process may stay)"
            )
        if self.process in ("all_at_once", "closed_loop"):
            raise ScenarioError(
                f"arrivals.process '{self.process}' cannot be staged: use poisson, constant or "
                "gamma with stages, or remove stages"
            )
        if self.duration_s is not None:
            raise ScenarioError(
                f"duration_s={self.duration_s} conflicts with stages, whose durations add up to "
                f"{self.stages_duration_s} s: remove duration_s"
            )
        if all(stage.rate_per_s == 0 for stage in self.stages or ()):
            raise ScenarioError("stages: every stage has rate_per_s 0: give one a positive rate")

    def _check_arrivals(self) -> None:
        if self.arrivals is None:
            raise ScenarioError(
                "no arrival rate: add arrivals: {process: poisson, rate_per_s: 5.0}, "
                "or stages, or arrivals: {process: all_at_once}"
            )
        if self.process not in ("all_at_once", "closed_loop") and self.arrivals.rate_per_s is None:
            raise ScenarioError(
                f"arrivals.rate_per_s is required for process '{self.process}': add "
                "rate_per_s (requests per second), or use stages"
            )
        if self.process in ("all_at_once", "closed_loop") and self.duration_s is not None:
            raise ScenarioError(
                f"duration_s={self.duration_s} has no meaning with process '{self.process}' "
                "(arrival times are not drawn): use num_requests instead"
            )

    def _check_size(self) -> None:
        sized = (self.num_requests, self.duration_s, self.stages, self.shared_prefix)
        if all(size is None for size in sized):
            raise ScenarioError(
                "the workload has no size: add num_requests or duration_s (or stages)"
            )
