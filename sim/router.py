"""Routing across a pool's replicas: each policy picks one replica for an arriving request."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from sim.replica import Replica


class Router(Protocol):
    def pick(self, replicas: Sequence[Replica]) -> Replica: ...


class RoundRobin:
    """Replicas in turn, regardless of load."""

    def __init__(self) -> None:
        self._next = 0

    def pick(self, replicas: Sequence[Replica]) -> Replica:
        replica = replicas[self._next % len(replicas)]
        self._next += 1
        return replica


class LeastOutstanding:
    """The replica with the fewest requests waiting or running (lowest index on ties)."""

    def pick(self, replicas: Sequence[Replica]) -> Replica:
        if len(replicas) == 1:
            return replicas[0]
        return min(replicas, key=lambda r: r.num_outstanding)


ROUTERS = {"round_robin": RoundRobin, "least_outstanding": LeastOutstanding}


def make_router(name: str) -> Router:
    return ROUTERS[name]()
