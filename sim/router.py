"""Routing across a pool's replicas: each policy picks one replica for an arriving request."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from sim.replica import Replica


class Router(Protocol):
    def pick(self, replicas: Sequence[Replica]) -> Replica: ...

    def peek(self, replicas: Sequence[Replica]) -> Replica | None:
        """The replica the next request will go to, if that is known before it arrives."""


class RoundRobin:
    """Replicas in turn, regardless of load."""

    def __init__(self) -> None:
        self._next = 0

    def pick(self, replicas: Sequence[Replica]) -> Replica:
        replica = replicas[self._next % len(replicas)]
        self._next += 1
        return replica

    def peek(self, replicas: Sequence[Replica]) -> Replica | None:
        return replicas[self._next % len(replicas)]


class LeastOutstanding:
    """The replica with the fewest requests waiting or running (lowest index on ties)."""

    def pick(self, replicas: Sequence[Replica]) -> Replica:
        if len(replicas) == 1:
            return replicas[0]
        return min(replicas, key=lambda r: r.num_outstanding)

    def peek(self, replicas: Sequence[Replica]) -> Replica | None:
        return replicas[0] if len(replicas) == 1 else None  # depends on the load at arrival


ROUTERS = {"round_robin": RoundRobin, "least_outstanding": LeastOutstanding}


def make_router(name: str) -> Router:
    return ROUTERS[name]()
