"""How a workload's rows become requests on replicas: the front door of a simulated fleet.

Every row is numbered, checked (a prompt that reaches max_model_len is rejected and recorded),
has its reply cut to its max_tokens and to the context limit (counted), and is routed. Rows
reach the door in one of two ways:

* **open loop**: at their arrival times, one at a time or, behind a gateway, in the groups it
  releases (a group goes to one replica);
* **closed loop**: ``concurrency`` clients each send the next row when their previous reply
  ends, so the load follows the fleet's speed;
* **conversations**: each turn of a session workload is sent a think time after the previous
  turn's reply ends, re-sending the conversation so far.

A conversation's next turn re-sends its previous turn's prompt and reply, so its segments chain
to that turn's own content (``sim.engine.prefix_hash.next_turn_segments``) and the prefix cache can
hit it. That holds for generated sessions and for trace rows with session and turn columns.
"""

from __future__ import annotations

import heapq

from collections.abc import Callable, Iterable, Iterator
from typing import NamedTuple

import simpy

from sim.engine.prefix_hash import (
    Segments, next_turn_segments, shared_prefix_segments, trace_segments,
)
from sim.engine.replica import ArrivalClock, Replica
from sim.engine.request import Request
from sim.fleet.gateway import GatewayPolicy, release_groups
from sim.fleet.record import RecordLog, RequestRecord
from sim.fleet.router import make_router
from sim.workload.session_workload import SessionWorkload
from sim.workload.workload import Workload

_NAN = float("nan")
_PROGRESS_EVERY = 2048  # rows between progress callbacks


class Row(NamedTuple):
    arrival_s: float
    rid: int
    prompt: int
    output: int
    max_tokens: int
    trace_id: str
    segments: tuple[tuple[int, int], ...]  # its shared content (sim.engine.prefix_hash)
    endpoint: str | None
    session: int = -1  # its conversation's number (-1: none)
    turn: int = -1  # its turn in the conversation, from 1


class _Turn(NamedTuple):
    """What a conversation's next turn chains to: its latest turn that was served."""

    rid: int
    tokens: int  # that turn's prompt plus its reply as generated (after the caps)
    segments: Segments


class Intake:
    """Rejects, caps and routes rows; keeps the counts a summary reports."""

    def __init__(self, replicas: list[Replica], router: str, max_model_len: int,
                 block_size: int, prefix_caching: bool, records: RecordLog,
                 progress: Callable[[int, int], None] | None) -> None:
        self.replicas = replicas
        self.router = make_router(router)
        self.max_model_len = max_model_len
        self.block_size = block_size
        self.prefix_caching = prefix_caching
        self.records = records
        self.progress = progress
        self.rows_seen = 0
        self.total = 0  # rows in the workload, 0 while unknown (a streamed trace)
        self.truncated = self.capped = self.saved = 0
        self.rejected: dict[str, int] = {}
        self.hold_s: list[float] = []  # per request held at a gateway
        self.groups = 0
        # trace conversations: each one's latest served turn (kept while the trace streams:
        # a trace does not say which turn is a conversation's last)
        self._latest_turn: dict[int, _Turn] = {}

    # ---- rows -----------------------------------------------------------------------------

    def rows(self, workload: Workload | Iterable[Workload]) -> Iterator[Row]:
        chunks = [workload] if isinstance(workload, Workload) else workload
        self.total = len(workload) if isinstance(workload, Workload) else 0
        rid = 0
        for chunk in chunks:
            rows = self._chunk_rows(chunk, rid)
            if chunk.sessions is not None and self.prefix_caching:
                rows = map(self._chain_to_previous_turn, rows)
            yield from rows
            rid += len(chunk)

    def _chunk_rows(self, chunk: Workload, first_rid: int) -> Iterator[Row]:
        n = len(chunk)
        bs = self.block_size
        prompts = chunk.input_tokens.tolist()
        trace_ids = (chunk.trace_ids.tolist() if chunk.trace_ids is not None
                     else [str(first_rid + i) for i in range(n)])
        if not self.prefix_caching:
            hashes = [()] * n
        elif chunk.prefix_ids is not None:
            hashes = [trace_segments(list(ids), chunk.prefix_id_tokens, p, bs)
                      for ids, p in zip(chunk.prefix_ids, prompts)]
        else:
            hashes = [shared_prefix_segments(k, t, bs)
                      for k, t in zip(chunk.prefix_key.tolist(), chunk.prefix_tokens.tolist())]
        endpoints = chunk.endpoints.tolist() if chunk.endpoints is not None else [None] * n
        sessions = chunk.sessions.tolist() if chunk.sessions is not None else [-1] * n
        turns = chunk.turns.tolist() if chunk.turns is not None else [-1] * n
        return map(Row._make, zip(
            chunk.arrival_s.tolist(), range(first_rid, first_rid + n), prompts,
            chunk.output_tokens.tolist(), chunk.max_tokens.tolist(), trace_ids, hashes, endpoints,
            sessions, turns,
        ))

    def _chain_to_previous_turn(self, row: Row) -> Row:
        """A trace turn whose prompt re-sends its conversation's latest served turn (prompt
        and reply) chains to it; the turn then becomes the one the next chains to.

        Done as rows are read, in trace order, so a gateway reading ahead changes nothing; the
        reply "as generated" is the row's reply after the caps the intake will apply.
        """
        if row.session < 0:
            return row
        latest = self._latest_turn.get(row.session)
        segments = row.segments
        if latest is not None and not segments and row.prompt >= latest.tokens:
            segments = next_turn_segments(latest.segments, latest.rid, latest.tokens,
                                          self.block_size)
            row = row._replace(segments=segments)
        if row.prompt < self.max_model_len:  # a rejected turn is never cached
            output = min(row.output, row.max_tokens or row.output, self.max_model_len - row.prompt)
            self._latest_turn[row.session] = _Turn(row.rid, row.prompt + output, segments)
        return row

    # ---- requests -------------------------------------------------------------------------

    def request(self, row: Row, arrival_s: float) -> Request | None:
        """The row as a request arriving at ``arrival_s``, or None if it is rejected."""
        self._tick(row.rid)
        if row.prompt >= self.max_model_len:
            reason = "prompt_exceeds_max_model_len"
            self.rejected[reason] = self.rejected.get(reason, 0) + 1
            self.records.append(RequestRecord(
                row.rid, -1, "rejected", arrival_s, _NAN, _NAN, _NAN, row.prompt, 0, 0, 0,
                row.trace_id, row.endpoint, row.session, row.turn,
            ))
            return None
        cap, max_len = row.max_tokens, self.max_model_len
        output = self._capped_output(row.prompt, row.output, cap)
        return Request(
            rid=row.rid,
            arrival_s=arrival_s,
            prompt_tokens=row.prompt,
            output_tokens=output,
            segments=row.segments,
            trace_id=row.trace_id,
            endpoint=row.endpoint,
            reserve_tokens=min(row.prompt + cap, max_len) if cap else max_len,
            length_stop=bool(cap) and output >= cap or row.prompt + output >= max_len,
            session=row.session,
            turn=row.turn,
        )

    def _capped_output(self, prompt: int, output: int, max_tokens: int) -> int:
        """The reply length after the request's max_tokens and the context limit, counted."""
        wanted = output
        if max_tokens and output > max_tokens:
            output = max_tokens
            self.capped += 1
        if prompt + output > self.max_model_len:  # generation stops at the context limit
            output = self.max_model_len - prompt
            self.truncated += 1
        self.saved += wanted - output
        return output

    def _tick(self, rid: int) -> None:
        self.rows_seen += 1
        if self.progress is not None and rid % _PROGRESS_EVERY == 0:
            self.progress(rid, self.total)


def open_loop(env, intake: Intake, rows: Iterator[Row], clock: ArrivalClock,
              gateway: GatewayPolicy | None):
    """SimPy process: pass rows on at their arrival times, or as a gateway releases them."""
    if gateway is None:
        groups: Iterator[tuple[float, list[Row]]] = ((row.arrival_s, [row]) for row in rows)
    else:
        groups = release_groups(rows, gateway, _group_key(gateway))
    router, replicas = intake.router, intake.replicas
    driven = replicas[0].driven
    due: list[tuple[float, int]] = []  # driven: (when a replica has work to do, its index)
    for release_s, members in groups:
        if release_s > env.now:
            if not driven:  # replica processes run ahead up to the next arrival
                clock.next_s = release_s
                target = router.peek(replicas)
                clock.next_replica = target.index if target is not None else None
            yield env.timeout(release_s - env.now)
        if driven:  # bring the replicas with work before now up to now, for the router
            _advance_due(replicas, due, release_s)
        replica = None
        for row in members:
            request = intake.request(row, row.arrival_s)
            if request is None:
                continue
            if replica is None:
                replica = router.pick(replicas, request)  # a group goes to one replica
            if gateway is not None:
                intake.hold_s.append(release_s - row.arrival_s)
            replica.submit(request)
        intake.groups += replica is not None
        if driven and replica is not None:
            heapq.heappush(due, (replica.due_s, replica.index))
    clock.next_s = float("inf")
    if driven:  # no more arrivals: every replica runs its work to the end
        for replica in replicas:
            replica.advance(float("inf"))


def _advance_due(replicas: list[Replica], due: list[tuple[float, int]], now: float) -> None:
    """Advance to ``now`` every replica with work due before it. ``due`` is a heap of
    (time, replica); an entry whose time is no longer the replica's is stale and skipped."""
    while due and due[0][0] < now:
        when, index = heapq.heappop(due)
        replica = replicas[index]
        if replica.due_s != when:
            continue
        replica.advance(now)
        if replica.due_s != float("inf"):
            heapq.heappush(due, (replica.due_s, index))


def _group_key(gateway: GatewayPolicy) -> Callable[[Row], tuple]:
    getters = {"model": lambda row: None, "endpoint": lambda row: row.endpoint,
               "max_tokens": lambda row: row.max_tokens}
    chosen = [getters[name] for name in gateway.group_by]
    return lambda row: tuple(get(row) for get in chosen)


class ClosedLoop:
    """``concurrency`` clients, each sending its next row when its previous reply ends.

    Replicas then cannot run ahead of the clock (a reply ending anywhere sends a request at
    once), so the arrival clock is set to "any moment" and every step waits in SimPy time.
    """

    def __init__(self, env, intake: Intake, rows: Iterator[Row], concurrency: int,
                 clock: ArrivalClock) -> None:
        self.env = env
        self.intake = intake
        self.rows = rows
        self.concurrency = concurrency
        clock.next_s = float("-inf")
        clock.next_replica = None

    def start(self) -> None:
        for _ in range(self.concurrency):
            self.send_next()

    def send_next(self) -> None:
        """Send the next row now; a rejected one is answered at once, so send another."""
        for row in self.rows:
            request = self.intake.request(row, self.env.now)
            if request is not None:
                self.intake.router.pick(self.intake.replicas, request).submit(request)
                return


class Conversations:
    """The turns of a session workload, each sent a think time after the previous reply ends.

    One SimPy process starts conversations at their start times; each conversation is then a
    process of its own that sends a turn, waits for its reply and the think time, and sends the
    next, so only conversations with turns left hold state. As with closed-loop clients, a
    reply ending anywhere may send a request soon after, so replicas cannot run ahead of the
    clock: every step waits in SimPy time (slower than open-loop runs, but exact).

    A turn refused at the door (its prompt reaches max_model_len) ends its conversation: the
    user got an error, not a reply to answer.
    """

    def __init__(self, env: simpy.Environment, intake: Intake, workload: SessionWorkload,
                 clock: ArrivalClock) -> None:
        self.env = env
        self.intake = intake
        self.workload = workload
        self._next_rid = 0  # requests are numbered in the order they are sent
        self._replies: dict[int, simpy.Event] = {}  # rid -> fired when its reply ends
        intake.total = len(workload)
        clock.next_s = float("-inf")
        clock.next_replica = None

    def start(self) -> None:
        self.env.process(self._start_conversations())

    def reply_ended(self, request: Request) -> None:
        """Called as a request finishes: its conversation may go on."""
        reply = self._replies.pop(request.rid, None)
        if reply is not None:
            reply.succeed()

    def _start_conversations(self):
        env = self.env
        for session, start_s in enumerate(self.workload.start_s.tolist()):
            if start_s > env.now:
                yield env.timeout(start_s - env.now)
            env.process(self._conversation(session))

    def _conversation(self, session: int):
        env, intake, workload = self.env, self.intake, self.workload
        first = int(workload.first_turn[session])
        turns = int(workload.turns[session])
        segments: Segments = ()
        tokens = 0  # the conversation so far: every earlier prompt's new part and reply
        for turn in range(1, turns + 1):
            t = first + turn - 1
            rid = self._next_rid
            self._next_rid += 1
            prompt = tokens + int(workload.added[t])
            row = Row(env.now, rid, prompt, int(workload.reply[t]), workload.max_tokens,
                      str(rid), segments, None, session, turn)
            request = intake.request(row, env.now)
            if request is None:
                return
            reply = self._replies[rid] = env.event()
            intake.router.pick(intake.replicas, request).submit(request)
            yield reply
            tokens = prompt + request.output_tokens  # the reply as generated, after the caps
            if intake.prefix_caching:
                segments = next_turn_segments(segments, rid, tokens, intake.block_size)
            if turn < turns:
                yield env.timeout(float(workload.think_s[t]))
