"""The app's simulations run in worker processes that a stopped page kills, and its memo of
runs stays bounded."""

from __future__ import annotations

import os
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from app import worker
from app.run_memo import RunMemo
from sim.engine.errors import ScenarioError


class Stopped(Exception):
    """Stands for Streamlit's stop of a script (raised where the page touches its state)."""


def sleep_and_tell(path: str) -> None:
    Path(path).write_text(str(os.getpid()))
    time.sleep(120)


def refuse(_: object) -> None:
    raise ScenarioError("workload: no requests")


def crash(_: object) -> None:
    raise ZeroDivisionError("1/0")


def double(x: int) -> int:
    return 2 * x


def _alive(pid: int) -> bool:
    """Running (a zombie, ended but not yet reaped, counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_stopped_page_kills_its_worker(tmp_path) -> None:
    pid_file = tmp_path / "pid"

    def heartbeat(state: str) -> None:
        if pid_file.exists() and pid_file.read_text():
            raise Stopped

    with pytest.raises(Stopped):
        worker.run_in_worker(sleep_and_tell, str(pid_file), heartbeat)
    assert not _alive(int(pid_file.read_text()))  # killed before the stop went on
    assert worker.running() == 0


def test_results_and_errors_come_back_in_words() -> None:
    beats: list[str] = []
    assert worker.run_in_worker(double, 21, beats.append) == 42
    with pytest.raises(ScenarioError, match="no requests"):
        worker.run_in_worker(refuse, None, beats.append)
    with pytest.raises(ScenarioError, match=r"failed on this scenario \(ZeroDivisionError"):
        worker.run_in_worker(crash, None, beats.append)
    assert set(beats) <= {"running", "waiting"}


def test_the_memo_is_bounded_by_rows_and_answers_copies() -> None:
    def run(rows: int) -> SimpleNamespace:
        return SimpleNamespace(records=[0] * rows, summary={"x": 1})

    memo = RunMemo(max_runs=3, max_rows=100)
    memo.put("a", run(60))
    memo.put("b", run(30))
    copy = memo.get("a")
    copy.summary["x"] = 2  # a page changing what it got changes nothing in the memo
    assert memo.get("a").summary["x"] == 1
    memo.put("c", run(30))  # 120 rows: the least recently used ("b") goes
    assert memo.get("b") is None and memo.get("a") is not None and len(memo) == 2
    memo.put("huge", run(101))
    assert memo.get("huge") is None
