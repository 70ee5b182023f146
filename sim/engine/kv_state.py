"""What a replica's KV memory holds at one moment, in token slots (the vLLM paper's Fig. 2 terms).

* ``token_states``: slots holding the KV of tokens computed so far;
* ``reservation``: slots set aside for tokens a request will still generate;
* ``internal``: slots set aside that will never hold a token (the unused tail of a paged
  request's last block, or of a contiguous slot sized for the longest possible reply, or a
  finished row's slot in a static batch that has not ended);
* ``external``: free slots no waiting request can use because they lie in holes between
  contiguous slots that are each too small for it (paged memory has none).

Free memory that nobody is waiting for is not waste and is in none of the four. Each scheduler's
``memory()`` reports, after every step, the blocks in use followed by these four, in this order;
the step log keeps them as the ``WASTE_COLUMNS``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

WASTE_COLUMNS = ("kv_token_states", "kv_reservation", "kv_internal", "kv_external")
WASTE_NAMES = ("token_states", "reservation", "internal_fragmentation", "external_fragmentation")


def waste_slot_seconds(steps: pd.DataFrame) -> np.ndarray:
    """Time integral (slot-seconds) of each of the four parts over a run's step log.

    The log holds each part at the end of every step, after the requests that finished in it
    gave their memory back; during a step the state moves from the previous step's end (zero
    before a replica's first step) to its own end, which the trapezoid rule follows. A
    request's last step is so counted at half weight: a small undercount for requests that
    run many steps, and a run of single-step requests shows no memory at all.
    """
    if steps.empty:
        return np.zeros(len(WASTE_COLUMNS))
    end = steps[list(WASTE_COLUMNS)].to_numpy(dtype=np.float64)
    start = np.vstack([np.zeros((1, end.shape[1])), end[:-1]])
    first_of_replica = steps["replica"].to_numpy() != np.roll(steps["replica"].to_numpy(), 1)
    first_of_replica[0] = True
    start[first_of_replica] = 0.0
    duration = steps["duration_s"].to_numpy(dtype=np.float64)
    return ((start + end) / 2 * duration[:, None]).sum(axis=0)


def waste_shares(steps: pd.DataFrame) -> dict[str, float | None]:
    """The four parts as shares of the KV memory taken, averaged over time; they sum to 1
    (all None when no step ended with memory held)."""
    return shares_of(waste_slot_seconds(steps))


def shares_of(totals: np.ndarray) -> dict[str, float | None]:
    """``waste_shares`` of the four parts' slot-seconds."""
    taken = totals.sum()
    if taken <= 0:
        return {name: None for name in WASTE_NAMES}
    return {name: float(value / taken) for name, value in zip(WASTE_NAMES, totals)}
