"""Which pool of a fleet each request goes to: an ordered list of rules on request attributes.

Rules look only at the request (its class or endpoint, its prompt length, a seeded draw), never
at the pools' load, so a workload can be split among pools before any pool runs: each pool then
simulates its share on its own, which is exactly what a stateless router in front of
independent pools does.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sim.config.scenario import RouteSpec
from sim.workload.workload import Workload

UNROUTED = -1  # a request no rule matched: rejected and counted, never silently dropped

_MIX = np.uint64(0x9E3779B97F4A7C15)


class RouteTable:
    """The rules of ``fleet.routes`` with the pools' order; the first matching rule wins."""

    def __init__(self, routes: Sequence[RouteSpec], pool_names: Sequence[str], seed: int) -> None:
        self.pool_names = list(pool_names)
        self.routes = list(routes) or [RouteSpec(to=self.pool_names[0])]
        self.seed = seed

    def assign(self, workload: Workload, first_row: int = 0) -> np.ndarray:
        """The pool index of each request (``UNROUTED`` where no rule matches).

        ``first_row`` is the position of the workload's first request in the whole run, so a
        trace streamed in chunks draws the same fractions as one read whole.
        """
        n = len(workload)
        pools = np.full(n, UNROUTED, dtype=np.int64)
        open_rows = np.ones(n, dtype=bool)
        row_ids = np.arange(first_row, first_row + n, dtype=np.uint64)
        for index, rule in enumerate(self.routes):
            match = open_rows & self._conditions(rule, workload)
            if rule.fraction < 1.0:
                match &= uniform(self.seed, index, row_ids) < rule.fraction
            pools[match] = self.pool_names.index(rule.to)
            open_rows &= ~match
        return pools

    @staticmethod
    def _conditions(rule: RouteSpec, workload: Workload) -> np.ndarray:
        match = np.ones(len(workload), dtype=bool)
        if rule.endpoints is not None:
            if workload.endpoints is None:
                match[:] = False  # requests without a class match no class rule
            else:
                match &= np.isin(workload.endpoints.astype(str), list(rule.endpoints))
        if rule.min_prompt_tokens is not None:
            match &= workload.input_tokens >= rule.min_prompt_tokens
        if rule.max_prompt_tokens is not None:
            match &= workload.input_tokens <= rule.max_prompt_tokens
        return match


def uniform(seed: int, stream: int, row_ids: np.ndarray) -> np.ndarray:
    """A uniform draw in [0, 1) per request, a pure function of (seed, stream, row id).

    A splitmix64-style mix of the three numbers: independent between rules (streams) and the
    same however the workload is chunked, which a sequential generator could not promise.
    """
    with np.errstate(over="ignore"):
        x = row_ids.astype(np.uint64) * _MIX
        x ^= np.uint64((seed * 0x632BE59BD9B4E019 + stream * 0x8CB92BA72F3D8DD7)
                       & 0xFFFFFFFFFFFFFFFF)
        x ^= x >> np.uint64(30)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(27)
        x *= np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
    return (x >> np.uint64(11)).astype(np.float64) / float(1 << 53)
