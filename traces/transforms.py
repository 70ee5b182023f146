"""Reshaping a trace while it streams: a time window, faster or slower time, more or less load,
a random sample, model and endpoint filters, output caps per endpoint, sessions cut at idle gaps.

Each chunk goes through the same steps, in this order:

    window [start_s, end_s) in trace time -> models / endpoints -> sample -> rate_scale (how
    many copies: 0, 1, 2, ...) -> sessions (idle gaps in trace time) -> re-base to start_s and
    multiply by time_scale -> copies a microsecond apart -> output caps (counted)

Randomness: two generators spawned from ``seed``, one for ``sample`` and one for ``rate_scale``,
each draw one uniform number for every row read (also rows that a window or filter drops). A
row's fate thus depends only on the seed and its position in the file, never on chunk sizes or
the other options: widening the window keeps the same rows in the part already covered.

Rows are assumed in time order (``Trace.chunks()`` guarantees it), so reading stops at the first
chunk that reaches ``end_s``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from traces.errors import TraceError

COPY_SPACING_S = 1e-6  # copies of a request arrive this far apart, after the original
_NO_CAP = np.iinfo(np.int64).max
# Copy k of a request gets prefix ids ``id ^ (k * _COPY_SALT)``: a bijection per copy, so the
# copies share prefixes among themselves as the originals do, but never hit their originals'.
_COPY_SALT = np.uint64(0x5851F42D4C957F2D)
_ID_MASK = np.uint64(0x7FFF_FFFF_FFFF_FFFF)


@dataclass
class TransformStats:
    """What a transform did, readable once its chunks have been consumed."""

    rows_read: int = 0  # rows handed in (reading stops early after end_s)
    rows_in_window: int = 0
    rows_written: int = 0  # copies included
    copies_added: int = 0  # rows that rate_scale > 1 added
    truncated_requests: int = 0  # output_tokens cut by max_tokens_by_endpoint
    output_tokens_saved: int = 0  # tokens those cuts removed
    sessions: int = 0  # sessions started (session_gap_s only)

    def summary(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class _Options:
    start_s: float
    end_s: float | None
    time_scale: float
    rate_scale: float
    sample: float
    models: frozenset[str] | None
    endpoints: frozenset[str] | None
    max_tokens_by_endpoint: dict[str, int] | None
    session_gap_s: float | None
    seed: int


def transform(
    chunks: Iterable[pa.Table],
    *,
    start_s: float | None = None,
    end_s: float | None = None,
    time_scale: float = 1.0,
    rate_scale: float = 1.0,
    sample: float = 1.0,
    models: Sequence[str] | None = None,
    endpoints: Sequence[str] | None = None,
    max_tokens_by_endpoint: Mapping[str, int] | None = None,
    session_gap_s: float | None = None,
    seed: int = 0,
    stats: TransformStats | None = None,
) -> Iterator[pa.Table]:
    """Normalized chunks reshaped as the options say (see the module docstring for the order).

    The options are checked now, before any chunk is read; pass ``stats`` to read the counts
    (rows, copies, truncated requests, output tokens saved, sessions) after iterating.
    """
    options = _Options(
        start_s=_number("start_s", start_s, minimum=0.0, default=0.0,
                        fix="seconds from the trace's first request"),
        end_s=_number("end_s", end_s, minimum=0.0, default=None, exclusive=True,
                      fix="seconds from the trace's first request"),
        time_scale=_number("time_scale", time_scale, minimum=0.0, exclusive=True,
                           fix="0.5 replays the trace twice as fast, 2 half as fast"),
        rate_scale=_number("rate_scale", rate_scale, minimum=0.0, exclusive=True,
                           fix="0.5 keeps about half the requests, 2 sends each twice"),
        sample=_fraction("sample", sample),
        models=_names("models", models),
        endpoints=_names("endpoints", endpoints),
        max_tokens_by_endpoint=_caps(max_tokens_by_endpoint),
        session_gap_s=_number("session_gap_s", session_gap_s, minimum=0.0, default=None,
                              exclusive=True, fix="e.g. 1800 starts a new session after 30 "
                              "idle minutes"),
        seed=_seed(seed),
    )
    if options.end_s is not None and options.end_s <= options.start_s:
        raise TraceError(
            f"end_s ({options.end_s:g}) must be greater than start_s ({options.start_s:g}): "
            "the window is [start_s, end_s) in seconds from the trace's first request"
        )
    return _stream(chunks, options, stats if stats is not None else TransformStats())


def _stream(chunks: Iterable[pa.Table], o: _Options, stats: TransformStats) -> Iterator[pa.Table]:
    sample_rng, rate_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(o.seed).spawn(2)
    )
    sessions = _SessionSplitter(o.session_gap_s) if o.session_gap_s is not None else None
    latest = -math.inf  # latest arrival written: copies must not overtake the next chunk
    whole, fraction = divmod(o.rate_scale, 1.0)
    for table in chunks:
        n = table.num_rows
        stats.rows_read += n
        sample_draw, rate_draw = sample_rng.random(n), rate_rng.random(n)
        arrival = table["arrival_s"].to_numpy(zero_copy_only=False)
        keep = arrival >= o.start_s
        if o.end_s is not None:
            keep &= arrival < o.end_s
        stats.rows_in_window += int(keep.sum())
        keep &= _member(table, "model", "models", o.models)
        keep &= _member(table, "endpoint", "endpoints", o.endpoints)
        keep &= sample_draw < o.sample
        copies = np.where(keep, int(whole) + (rate_draw < fraction), 0)
        table, copies = table.filter(pa.array(copies > 0)), copies[copies > 0]
        if sessions is not None:
            table = sessions.split(table, stats)
        table = _retimed(table, o.start_s, o.time_scale)
        if table.num_rows and copies.max() > 1:
            table = _with_copies(table, copies)
            stats.copies_added += int(copies.sum() - len(copies))
        if table.num_rows and o.rate_scale > 1:
            table, latest = _in_order(table, latest)
        if o.max_tokens_by_endpoint is not None:
            table = _capped(table, o.max_tokens_by_endpoint, stats)
        stats.rows_written += table.num_rows
        if table.num_rows:
            yield table
        if o.end_s is not None and n and arrival[-1] >= o.end_s:
            return


def _member(table: pa.Table, column: str, option: str, wanted: frozenset[str] | None) -> np.ndarray:
    if wanted is None:
        return np.ones(table.num_rows, dtype=bool)
    if column not in table.column_names:
        raise TraceError(
            f"{option}: the trace has no {column!r} column (it has "
            f"{', '.join(table.column_names)}), so it cannot be filtered by {column}; remove "
            f"{option}, or read a format that records the {column} (or map a column to it in "
            "a generic file)"
        )
    return _mask(pc.is_in(table[column], value_set=pa.array(sorted(wanted), pa.string())))


def _mask(condition: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A boolean numpy mask, null counting as false."""
    return pc.fill_null(condition, False).to_numpy(zero_copy_only=False).astype(bool)


def _retimed(table: pa.Table, start_s: float, time_scale: float) -> pa.Table:
    if start_s == 0.0 and time_scale == 1.0:
        return table
    arrival = (table["arrival_s"].to_numpy(zero_copy_only=False) - start_s) * time_scale
    return _set(table, "arrival_s", pa.array(arrival, pa.float64()))


def _with_copies(table: pa.Table, copies: np.ndarray) -> pa.Table:
    """Row i repeated copies[i] times; copy k (k >= 1) arrives k microseconds later, its
    request and session ids get ``#k`` and its prefix ids are its own (see _COPY_SALT)."""
    rows = np.repeat(np.arange(len(copies)), copies)
    k = np.arange(len(rows)) - np.repeat(np.cumsum(copies) - copies, copies)
    table = table.take(pa.array(rows))
    arrival = table["arrival_s"].to_numpy(zero_copy_only=False) + k * COPY_SPACING_S
    table = _set(table, "arrival_s", pa.array(arrival, pa.float64()))
    table = _set(table, "request_id", _suffixed(table["request_id"], k, "#"))
    if "session_id" in table.column_names:
        table = _set(table, "session_id", _suffixed(table["session_id"], k, "#"))
    if "prefix_ids" in table.column_names:
        table = _set(table, "prefix_ids", _salted(table["prefix_ids"].combine_chunks(), k))
    return table


def _in_order(table: pa.Table, latest: float) -> tuple[pa.Table, float]:
    """Arrivals made non-decreasing, also across chunks (a copy may pass the next original).

    Moves a row by at most a few microseconds: the copies' spacing, never more.
    """
    arrival = table["arrival_s"].to_numpy(zero_copy_only=False)
    ordered = np.maximum.accumulate(np.concatenate([[latest], arrival]))[1:]
    return _set(table, "arrival_s", pa.array(ordered, pa.float64())), float(ordered[-1])


def _salted(ids: pa.ListArray, k: np.ndarray) -> pa.ListArray:
    lengths = pc.fill_null(pc.list_value_length(ids), 0).to_numpy(zero_copy_only=False)
    values = pc.list_flatten(ids).to_numpy(zero_copy_only=False).astype(np.int64)
    salt = np.repeat(k.astype(np.uint64), lengths) * _COPY_SALT
    salted = ((values.view(np.uint64) ^ salt) & _ID_MASK).view(np.int64)
    salted = np.where(np.repeat(k, lengths) > 0, salted, values)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(salted, pa.int64()),
                                    mask=ids.is_null())


def _capped(table: pa.Table, caps: dict[str, int], stats: TransformStats) -> pa.Table:
    limit = np.full(table.num_rows, caps.get("*", _NO_CAP), dtype=np.int64)
    named = sorted(set(caps) - {"*"})
    if named and "endpoint" not in table.column_names:
        raise TraceError(
            f"max_tokens_by_endpoint names endpoints ({', '.join(named)}) but the trace has no "
            "'endpoint' column; use '*' to cap every request, e.g. {'*': 1024}"
        )
    for endpoint in named:
        limit[_mask(pc.equal(table["endpoint"], endpoint))] = caps[endpoint]
    output = table["output_tokens"].to_numpy(zero_copy_only=False)
    over = output > limit
    if not over.any():
        return table
    stats.truncated_requests += int(over.sum())
    stats.output_tokens_saved += int((output[over] - limit[over]).sum())
    return _set(table, "output_tokens", pa.array(np.minimum(output, limit), pa.int64()))


class _SessionSplitter:
    """Cuts sessions where a user was idle longer than ``gap_s`` (in trace time).

    Rows with a session_id are grouped by it; rows without one (no column, or null) form one
    anonymous stream. The first part of a session keeps its id, later parts become ``id/1``,
    ``id/2``...; the anonymous stream's parts are ``session-0``, ``session-1``... Each session
    remembers its last arrival and part number across chunks.
    """

    def __init__(self, gap_s: float) -> None:
        self.gap_s = gap_s
        self.last: dict[str | None, tuple[float, int]] = {}  # session -> (arrival, part)

    def split(self, table: pa.Table, stats: TransformStats) -> pa.Table:
        n = table.num_rows
        if "session_id" in table.column_names:
            keys = pa.array(table["session_id"].combine_chunks(), pa.string())
        else:
            keys = pa.nulls(n, pa.string())
        if n == 0:
            return _set(table, "session_id", keys)
        encoded = pc.dictionary_encode(keys, null_encoding="encode")
        names = encoded.dictionary.to_pylist()  # session code -> its id (None: anonymous)
        codes = encoded.indices.to_numpy(zero_copy_only=False)
        order = np.argsort(codes, kind="stable")  # grouped by session, in time within each
        t = table["arrival_s"].to_numpy(zero_copy_only=False)[order]
        starts = np.flatnonzero(np.r_[True, np.diff(codes[order]) != 0])  # code i starts at i
        ends = np.r_[starts[1:], n] - 1
        get, fresh = self.last.get, (math.nan, -1)
        last_s, last_part = np.array([get(name, fresh) for name in names]).T
        previous = np.r_[math.nan, t[:-1]]  # each row's previous arrival in its session
        previous[starts] = last_s
        new = ~(t - previous <= self.gap_s)  # a session's first row ever (NaN) counts as new
        # part = the session's part so far + the new parts begun since, within the group
        counted = np.cumsum(new)
        part = np.repeat(last_part.astype(np.int64) - (counted[starts] - new[starts]),
                         ends - starts + 1) + counted
        self.last.update(zip(names, zip(t[ends].tolist(), part[ends].tolist())))
        parts = np.empty(n, dtype=np.int64)
        parts[order] = part
        stats.sessions += int(new.sum())
        return _set(table, "session_id", _session_names(keys, parts))


def _session_names(keys: pa.Array, parts: np.ndarray) -> pa.Array:
    part = pa.array(parts)
    anonymous = pc.binary_join_element_wise("session-", pc.cast(part, pa.string()), "")
    return pc.if_else(pc.is_null(keys), anonymous, _suffixed(keys, parts, "/"))


def _suffixed(strings: pa.ChunkedArray | pa.Array, numbers: np.ndarray, sep: str) -> pa.Array:
    """``string + sep + number`` where number > 0; the string unchanged where it is 0."""
    strings = strings.combine_chunks() if isinstance(strings, pa.ChunkedArray) else strings
    number = pa.array(numbers)
    joined = pc.binary_join_element_wise(strings, sep, pc.cast(number, pa.string()), "")
    return pc.if_else(pc.greater(number, 0), joined, strings)


def _set(table: pa.Table, name: str, values: pa.Array) -> pa.Table:
    if name in table.column_names:
        return table.set_column(table.schema.get_field_index(name), name, values)
    return table.append_column(name, values)


def _number(name: str, value: object, *, minimum: float, fix: str, default: float | None = 1.0,
            exclusive: bool = False) -> float | None:
    if value is None:
        return default
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < minimum or (exclusive and value == minimum):
        bound = f"> {minimum:g}" if exclusive else f">= {minimum:g}"
        raise TraceError(f"{name} must be a number {bound} ({fix}), got {value!r}")
    return float(value)


def _fraction(name: str, value: object) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not 0.0 < value <= 1.0:
        raise TraceError(
            f"{name} must be a fraction in (0, 1] (0.1 keeps about one request in ten), "
            f"got {value!r}"
        )
    return float(value)


def _names(name: str, value: object) -> frozenset[str] | None:
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise TraceError(f"{name} must be a list of names, e.g. [{value!r}], got {value!r}")
    names = list(value)
    if not names or not all(isinstance(v, str) and v for v in names):
        raise TraceError(
            f"{name} must be a non-empty list of non-empty names, got {names!r}; "
            f"leave {name} out to keep every request"
        )
    return frozenset(names)


def _caps(value: object) -> dict[str, int] | None:
    if value is None:
        return None
    example = "e.g. {'chat': 1024, '*': 4096} ('*' caps every other endpoint)"
    if not isinstance(value, Mapping) or not value:
        raise TraceError(f"max_tokens_by_endpoint must map endpoints to caps, {example}; "
                         f"got {value!r}")
    for endpoint, cap in value.items():
        if not isinstance(endpoint, str) or not endpoint:
            raise TraceError(f"max_tokens_by_endpoint: endpoint names must be non-empty text, "
                             f"got {endpoint!r}; {example}")
        if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
            raise TraceError(f"max_tokens_by_endpoint[{endpoint!r}] must be a whole number of "
                             f"tokens >= 1, got {cap!r}; {example}")
    return dict(value)


def _seed(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise TraceError(f"seed must be a whole number >= 0, got {value!r}")
    return int(value)
