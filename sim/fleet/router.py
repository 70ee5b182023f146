"""Routing across a pool's replicas: each policy picks one replica for an arriving request."""

from __future__ import annotations

from collections.abc import Sequence
from operator import attrgetter
from typing import Protocol

from sim.engine.prefix_hash import OWN
from sim.engine.replica import Replica
from sim.engine.request import Request

# How many more requests than the least busy replica the replica holding a request's prefix
# may have and still get it. A cache hit saves the prefix's prefill, but a queue of this many
# requests ahead costs more than that, so past it the request goes where it will start sooner.
AFFINITY_SLACK = 8
_OUTSTANDING = attrgetter("num_outstanding")


class Router(Protocol):
    def pick(self, replicas: Sequence[Replica], request: Request) -> Replica: ...

    def peek(self, replicas: Sequence[Replica]) -> Replica | None:
        """The replica the next request will go to, if that is known before it arrives."""


class RoundRobin:
    """Replicas in turn, regardless of load."""

    def __init__(self) -> None:
        self._next = 0

    def pick(self, replicas: Sequence[Replica], request: Request) -> Replica:
        replica = replicas[self._next % len(replicas)]
        self._next += 1
        return replica

    def peek(self, replicas: Sequence[Replica]) -> Replica | None:
        return replicas[self._next % len(replicas)]


class LeastOutstanding:
    """The replica with the fewest requests waiting or running (lowest index on ties)."""

    def pick(self, replicas: Sequence[Replica], request: Request) -> Replica:
        return least_busy(replicas)

    def peek(self, replicas: Sequence[Replica]) -> Replica | None:
        return replicas[0] if len(replicas) == 1 else None  # depends on the load at arrival


class PrefixAffinity:
    """Requests sharing a prefix go to the replica that served that prefix last, so its
    prefix cache is hit instead of every replica caching every prefix; requests without a
    shareable prefix, and requests whose replica is ``AFFINITY_SLACK`` requests busier than the
    least busy one, go to the least busy replica (which then holds their prefix).

    A conversation's turns all share one first owner: its first turn's shared prefix or, when
    it has none, that turn's own content, which every later turn re-sends first. So the key of
    a first turn without shared content is its own owner, and its conversation follows it."""

    def __init__(self, slack: int = AFFINITY_SLACK) -> None:
        self.slack = slack
        self._holder: dict[int, int] = {}  # owner of the first shared content -> replica

    def pick(self, replicas: Sequence[Replica], request: Request) -> Replica:
        least = least_busy(replicas)
        key = _affinity_key(request)
        if key is None:
            return least
        held = self._holder.get(key)
        if held is not None and held < len(replicas):
            holder = replicas[held]
            if holder.num_outstanding <= least.num_outstanding + self.slack:
                return holder
        self._holder[key] = least.index
        return least

    def peek(self, replicas: Sequence[Replica]) -> Replica | None:
        return replicas[0] if len(replicas) == 1 else None


def _affinity_key(request: Request) -> int | None:
    """The owner of a request's first shared content (None: it shares nothing)."""
    if request.segments:
        return request.segments[0][0]
    if request.session >= 0:  # its conversation's later turns start with its own content
        return OWN + request.rid
    return None


def least_busy(replicas: Sequence[Replica]) -> Replica:
    if len(replicas) == 1:
        return replicas[0]
    return min(replicas, key=_OUTSTANDING)  # the first of the least busy: lowest index on ties


ROUTERS = {"round_robin": RoundRobin, "least_outstanding": LeastOutstanding,
           "prefix_affinity": PrefixAffinity}


def make_router(name: str) -> Router:
    return ROUTERS[name]()
