"""Micro-batching at the gateway: hold requests a few milliseconds and pass them on in groups.

A group opens with its first request and is released to one replica when it holds
``max_batch`` requests or when its window (``window_s`` after its first request) closes,
whichever comes first. Requests only share a group when their ``group_by`` key is equal (for
example the same max_tokens or endpoint, so a batch runs for a similar time). The hold counts
in each request's latency: its arrival is when the client sent it, not when it was released.

Releases depend only on arrival times, never on the replicas, so the gateway is a streaming
transform of the arrival stream; it never holds a request past its window.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

GROUP_KEYS = ("model", "endpoint", "max_tokens")


@dataclass(frozen=True)
class GatewayPolicy:
    window_s: float
    max_batch: int
    group_by: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.window_s < 0:
            raise ValueError(f"window_s must be >= 0, got {self.window_s}")
        if self.max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {self.max_batch}")
        unknown = set(self.group_by) - set(GROUP_KEYS)
        if unknown:
            raise ValueError(f"cannot group by {sorted(unknown)}; choose from {GROUP_KEYS}")


Row = tuple[Any, ...]  # arrival time first


def release_groups(rows: Iterable[Row], policy: GatewayPolicy,
                   key_of: Callable[[Row], Hashable]) -> Iterator[tuple[float, list[Row]]]:
    """(release time, rows) for ``rows`` given in arrival order; release times never decrease.

    Open groups are kept in the order they opened, which is also the order their windows
    close, so the next group to time out is always the first one.
    """
    window, max_batch = policy.window_s, policy.max_batch
    open_groups: dict[Hashable, tuple[float, list[Row]]] = {}
    for row in rows:
        now = row[0]
        while open_groups:
            key, (closes, members) = next(iter(open_groups.items()))
            if closes >= now:  # a request arriving as the window closes still joins
                break
            del open_groups[key]
            yield closes, members
        key = key_of(row)
        group = open_groups.get(key)
        if group is None:
            group = open_groups[key] = (now + window, [])
        group[1].append(row)
        if len(group[1]) >= max_batch:
            del open_groups[key]
            yield now, group[1]
    for closes, members in open_groups.values():
        yield closes, members
