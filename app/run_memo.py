"""The memo of the app's runs: the same scenario text always gives the same result, so a run
once made is answered again from here, for any session (it holds nothing one user could learn
from another's that they did not type in themselves).

It is bounded by the requests its runs hold (each keeps a row per request for the charts), not
only by their number, so a few large runs cannot fill the server's memory; the least recently
used go first. Every answer is a copy: a page may change what it gets without changing the memo.
"""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from typing import Any

MAX_RUNS = 64
MAX_ROWS = 3_000_000  # requests' rows held in all (about 100 bytes each for the charts)


class RunMemo:
    def __init__(self, max_runs: int = MAX_RUNS, max_rows: int = MAX_ROWS) -> None:
        self.max_runs, self.max_rows = max_runs, max_rows
        self._runs: OrderedDict[str, Any] = OrderedDict()
        self._rows = 0
        self._lock = threading.Lock()

    def get(self, text: str) -> Any | None:
        with self._lock:
            run = self._runs.get(text)
            if run is None:
                return None
            self._runs.move_to_end(text)
        return copy.deepcopy(run)

    def put(self, text: str, run: Any) -> None:
        rows = len(run.records)
        if rows > self.max_rows:
            return  # larger than the whole memo: not kept
        with self._lock:
            if text in self._runs:
                return
            self._runs[text] = copy.deepcopy(run)
            self._rows += rows
            while len(self._runs) > self.max_runs or self._rows > self.max_rows:
                _, oldest = self._runs.popitem(last=False)
                self._rows -= len(oldest.records)

    def __len__(self) -> int:
        return len(self._runs)
