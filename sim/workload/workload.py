"""The requests of one run, as columns, and how a `WorkloadSpec` becomes them.

Row i is request i, in arrival order. Prefix columns describe prompt content shared between
requests, which is what a prefix cache can reuse:

    prefix_key     0 for a request that shares nothing; otherwise requests with the same key
    prefix_tokens  start with the same `prefix_tokens` tokens (0 when prefix_key is 0)

    input_tokens:  [ prefix_tokens (shared) ][ own content ]

`output_tokens` is how long the reply would be; `max_tokens` is the request's cap on it
(0 = none), so the engine can count replies cut short and the tokens that saved.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from sim.engine.errors import ScenarioError
from sim.workload.arrival_process import arrival_times, staged_arrival_times
from sim.workload.length_dist import sample_input_output, sample_lengths
from sim.workload.workload_spec import (
    LengthsSpec, RequestClassSpec, SharedPrefixSpec, WorkloadSpec,
)

_COLUMNS = (
    "arrival_s", "input_tokens", "output_tokens", "prefix_key", "prefix_tokens", "max_tokens",
)


@dataclass(frozen=True, eq=False)
class Workload:
    """Columnar requests: one numpy array per field, all of the same length."""

    arrival_s: np.ndarray
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    prefix_key: np.ndarray
    prefix_tokens: np.ndarray
    max_tokens: np.ndarray
    # From traces: the trace's own request ids, and per request the content ids of the prompt's
    # leading blocks of `prefix_id_tokens` tokens each (equal ids = identical prefix content).
    trace_ids: np.ndarray | None = None
    prefix_ids: np.ndarray | None = None
    prefix_id_tokens: int = 0
    endpoints: np.ndarray | None = None  # the API endpoint or request class, from traces
    # From traces with session and turn columns: per request its conversation's number in the
    # run (-1: none) and its turn (from 1); a turn's prompt re-sends the conversation so far
    sessions: np.ndarray | None = None
    turns: np.ndarray | None = None
    # > 0: a closed loop of this many clients, each sending its next request (in row order)
    # when its previous reply ends; arrival_s is then ignored
    concurrency: int = 0

    def __post_init__(self) -> None:
        lengths = {name: len(getattr(self, name)) for name in _COLUMNS}
        for name in ("trace_ids", "prefix_ids", "endpoints", "sessions", "turns"):
            if getattr(self, name) is not None:
                lengths[name] = len(getattr(self, name))
        if len(set(lengths.values())) > 1:
            raise ScenarioError(f"workload columns differ in length: {lengths}")
        self._check_values()

    @classmethod
    def from_arrays(
        cls,
        arrival_s: npt.ArrayLike,
        input_tokens: npt.ArrayLike,
        output_tokens: npt.ArrayLike,
        prefix_key: npt.ArrayLike | None = None,
        prefix_tokens: npt.ArrayLike | None = None,
        max_tokens: npt.ArrayLike | int | None = None,
    ) -> Workload:
        """A workload from any array-likes; no shared prefixes unless given. Copies, read-only."""
        n = len(np.asarray(arrival_s))
        columns = {
            "arrival_s": _frozen(arrival_s, np.float64),
            "input_tokens": _frozen(input_tokens, np.int64),
            "output_tokens": _frozen(output_tokens, np.int64),
            "prefix_key": _frozen(np.zeros(n) if prefix_key is None else prefix_key, np.int64),
            "prefix_tokens": _frozen(
                np.zeros(n) if prefix_tokens is None else prefix_tokens, np.int64
            ),
            "max_tokens": _frozen(
                np.broadcast_to(0 if max_tokens is None else max_tokens, (n,)), np.int64
            ),
        }
        return cls(**columns)

    @property
    def num_requests(self) -> int:
        return len(self.arrival_s)

    def __len__(self) -> int:
        return self.num_requests

    def take(self, rows: np.ndarray, first_row: int = 0) -> Workload:
        """The requests at positions ``rows`` (ascending), with every column that travels with
        them; requests keep their identity in ``trace_ids`` (when the workload had no ids of its
        own: ``first_row`` + their position here, their number in the whole run)."""
        rows = np.asarray(rows, dtype=np.int64)
        ids = (self.trace_ids if self.trace_ids is not None
               else np.arange(first_row, first_row + len(self)).astype(str))
        picked = {name: _frozen(getattr(self, name)[rows], getattr(self, name).dtype.type)
                  for name in _COLUMNS}
        return Workload(
            **picked,
            trace_ids=ids[rows],
            prefix_ids=self.prefix_ids[rows] if self.prefix_ids is not None else None,
            prefix_id_tokens=self.prefix_id_tokens,
            endpoints=self.endpoints[rows] if self.endpoints is not None else None,
            sessions=self.sessions[rows] if self.sessions is not None else None,
            turns=self.turns[rows] if self.turns is not None else None,
            concurrency=self.concurrency,
        )

    def columns(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in _COLUMNS}

    def to_frame(self) -> pd.DataFrame:
        """One row per request, indexed by `request_id` (its position in arrival order)."""
        frame = pd.DataFrame({name: getattr(self, name) for name in _COLUMNS})
        frame.index.name = "request_id"
        return frame

    def _check_values(self) -> None:
        problems = []
        if not np.all(np.isfinite(self.arrival_s)):
            problems.append("arrival_s must be finite numbers")
        elif np.any(np.diff(self.arrival_s) < 0):
            problems.append("arrival_s must be sorted ascending")
        if np.any(self.arrival_s < 0):
            problems.append("arrival_s must be >= 0")
        if np.any(self.input_tokens < 1) or np.any(self.output_tokens < 1):
            problems.append("input_tokens and output_tokens must be >= 1")
        if np.any(self.prefix_key < 0):
            problems.append("prefix_key must be >= 0")
        if np.any((self.prefix_tokens < 0) | (self.prefix_tokens > self.input_tokens)):
            problems.append("prefix_tokens must be between 0 and input_tokens")
        if np.any(self.max_tokens < 0):
            problems.append("max_tokens must be >= 0 (0 = no cap)")
        if np.any((self.prefix_key == 0) & (self.prefix_tokens != 0)):
            problems.append("prefix_tokens must be 0 where prefix_key is 0 (no shared prefix)")
        if problems:
            raise ScenarioError("invalid workload: " + "; ".join(problems))


def generate_workload(spec: WorkloadSpec, rng: np.random.Generator) -> Workload:
    """Draw the requests `spec` describes; the same spec and seed give the same workload."""
    arrivals = _arrival_times(spec, rng)
    endpoints = None
    if spec.shared_prefix is not None:
        workload = _shared_prefix_workload(spec.shared_prefix, arrivals, rng)
    elif spec.classes is not None:
        workload, endpoints = _class_mix_workload(spec.classes, arrivals, rng, spec.max_tokens)
    else:
        workload = _independent_workload(spec.lengths, arrivals, rng)  # type: ignore[arg-type]
    columns = workload.columns()
    if spec.max_tokens is not None and endpoints is None:  # a class mix applied it per class
        columns["max_tokens"] = _frozen(np.full(len(workload), spec.max_tokens), np.int64)
    concurrency = spec.arrivals.concurrency if spec.arrivals is not None else None
    return Workload(**columns, endpoints=endpoints, concurrency=concurrency or 0,
                    prefix_ids=workload.prefix_ids, prefix_id_tokens=workload.prefix_id_tokens)


def _arrival_times(spec: WorkloadSpec, rng: np.random.Generator) -> np.ndarray:
    """A duration (duration_s or stages) bounds the time; num_requests caps the count.

    With neither, a shared-prefix workload sends each (group, user) pair once.
    """
    num_requests = spec.num_requests
    if num_requests is None and spec.duration_s is None and spec.stages is None:
        num_requests = spec.shared_prefix.num_prompts  # type: ignore[union-attr]
    if spec.stages is not None:
        return staged_arrival_times(
            spec.stages, rng, arrivals=spec.arrivals, num_requests=num_requests
        )
    assert spec.arrivals is not None  # WorkloadSpec guarantees arrivals when there are no stages
    return arrival_times(
        spec.arrivals, rng, num_requests=num_requests, duration_s=spec.duration_s
    )


def _independent_workload(
    lengths: LengthsSpec, arrivals: np.ndarray, rng: np.random.Generator
) -> Workload:
    input_tokens, output_tokens = sample_input_output(lengths, len(arrivals), rng)
    return Workload.from_arrays(arrivals, input_tokens, output_tokens)


def _class_mix_workload(
    classes: tuple[RequestClassSpec, ...], arrivals: np.ndarray, rng: np.random.Generator,
    max_tokens: int | None,
) -> tuple[Workload, np.ndarray]:
    """Each arrival draws its class by share, then lengths from that class; its max_tokens is
    the class's cap, or the workload's when lower (or when the class has none)."""
    n = len(arrivals)
    shares = np.array([c.share for c in classes])
    kind = rng.choice(len(classes), size=n, p=shares / shares.sum())
    inputs = np.empty(n, dtype=np.int64)
    outputs = np.empty(n, dtype=np.int64)
    caps = np.zeros(n, dtype=np.int64)
    for index, request_class in enumerate(classes):
        rows = np.flatnonzero(kind == index)
        inputs[rows], outputs[rows] = sample_input_output(request_class.lengths, len(rows), rng)
        limits = [c for c in (request_class.max_tokens, max_tokens) if c is not None]
        caps[rows] = min(limits) if limits else 0
    names = np.array([c.name for c in classes], dtype=object)[kind]
    return Workload.from_arrays(arrivals, inputs, outputs, max_tokens=caps), names


def _shared_prefix_workload(
    spec: SharedPrefixSpec, arrivals: np.ndarray, rng: np.random.Generator
) -> Workload:
    n = len(arrivals)
    pair = _shuffled_pairs(spec, n, rng)
    group = pair // spec.prompts_per_group
    workload = Workload.from_arrays(
        arrivals,
        input_tokens=np.full(n, spec.system_prompt_tokens + spec.question_tokens),
        output_tokens=sample_lengths(spec.output_tokens, n, rng, role="output"),
        prefix_key=group + 1,
        prefix_tokens=np.full(n, spec.system_prompt_tokens),
    )
    if not spec.repeat_questions:
        return workload
    return Workload(**workload.columns(), prefix_ids=_pair_content_ids(spec, pair),
                    prefix_id_tokens=spec.system_prompt_tokens)


def _pair_content_ids(spec: SharedPrefixSpec, pair: np.ndarray) -> np.ndarray:
    """Per request, content ids of its prompt in pieces of `system_prompt_tokens` tokens.

    A piece's id names the content up to the piece's end, so the first piece (the system
    prompt) is the group's and every later one (it holds question tokens) the pair's:

        pair (g, u):  [ system prompt: g ][ question ... : (g, u), piece 1 ][ ... piece 2 ] ...

    Pieces as long as the system prompt make the boundary exact for any KV block size.
    """
    prompt = spec.system_prompt_tokens + spec.question_tokens
    pieces = -(-prompt // spec.system_prompt_tokens)
    # group ids 1..G, pair ids above them; the piece index in the high bits keeps all distinct
    first = spec.num_groups + 1
    per_pair = [
        [p // spec.prompts_per_group + 1] + [(k << 40) | (first + p) for k in range(1, pieces)]
        for p in range(spec.num_prompts)
    ]
    ids = np.empty(len(pair), dtype=object)
    ids[:] = [per_pair[p] for p in pair.tolist()]  # shared lists: one per pair, not per request
    return ids


def _shuffled_pairs(spec: SharedPrefixSpec, n: int, rng: np.random.Generator) -> np.ndarray:
    """`n` (group, user) pair indices (group * prompts_per_group + user), groups interleaved.

    Every pair appears once per pass, in a fresh random order each pass, so a run longer than
    one pass keeps every group equally busy.
    """
    passes = -(-n // spec.num_prompts)
    pairs = np.tile(np.arange(spec.num_prompts), (passes, 1))
    return rng.permuted(pairs, axis=1).ravel()[:n]


def _frozen(values: npt.ArrayLike, dtype: type) -> np.ndarray:
    """A read-only 1-D copy; token counts such as 12.5 are refused rather than truncated."""
    given = np.asarray(values)
    if given.ndim != 1:
        raise ScenarioError(f"workload columns must be 1-D, got shape {given.shape}")
    whole = np.all(np.isfinite(given) & (given == np.round(given)))
    if np.issubdtype(dtype, np.integer) and not whole:
        raise ScenarioError("token counts and prefix keys must be whole numbers")
    array = given.astype(dtype)
    array.setflags(write=False)
    return array
