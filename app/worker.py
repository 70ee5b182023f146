"""Simulations in worker processes: Stop, a closed tab or a newer run really ends the work, and
one server runs a bounded number of simulations at once.

A page's script waits for its worker in short polls. Between polls it touches the session's
state, which is where Streamlit stops a script whose user pressed Stop, closed the tab or
started a newer run: the wait then raises, and the worker is killed on the way out, so no
abandoned run keeps a core and its memory. Workers are forked from a server process that has
the simulator imported already (``forkserver``), so a run starts in milliseconds, not the
second an import takes.

At most ``SLOTS`` simulations run at once on a server (one per core, or SERVESIM_APP_WORKERS);
a run beyond that waits for a free slot, and the page says so while it waits.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
import types
from collections.abc import Callable
from typing import Any

from sim.engine.errors import ScenarioError
from traces.errors import TraceError

POLL_S = 0.1  # how often a waiting script checks its worker (and whether it was stopped)
_USER_ERRORS = (ScenarioError, TraceError)


def _slots() -> int:
    text = os.environ.get("SERVESIM_APP_WORKERS", "")
    return int(text) if text.isdigit() and int(text) > 0 else max(1, os.cpu_count() or 1)


SLOTS = _slots()
_free = threading.BoundedSemaphore(SLOTS)
_running = [0]  # simulations running now on this server (read for the waiting note)
if "forkserver" in multiprocessing.get_all_start_methods():
    _context = multiprocessing.get_context("forkserver")
    _context.set_forkserver_preload(["app.simulation", "sim.runner.run"])
else:  # (Windows: each worker imports the simulator itself, a second or so)
    _context = multiprocessing.get_context("spawn")
_starting = threading.Lock()  # one worker start at a time: it swaps sys.modules["__main__"]


def running() -> int:
    return _running[0]


def run_in_worker(task: Callable[[Any], Any], argument: Any,
                  heartbeat: Callable[[str], None]) -> Any:
    """``task(argument)`` in a worker process, its result returned (a user error it raises is
    raised here as a ScenarioError). ``heartbeat`` is called every poll with "waiting" (for a
    free slot) or "running": the page's chance to be stopped, and to say which."""
    while not _free.acquire(timeout=POLL_S):
        heartbeat("waiting")
    _running[0] += 1
    process = None
    try:
        receiver, sender = _context.Pipe(duplex=False)
        process = _context.Process(target=_work, args=(sender, task, argument), daemon=True)
        _start(process)
        sender.close()  # the worker holds the only sending end: a dead worker ends the pipe
        while not receiver.poll(POLL_S):
            if not process.is_alive():
                break
            heartbeat("running")
        try:
            kind, payload = receiver.recv()
        except EOFError:
            raise ScenarioError(
                f"the simulation stopped without a result (worker exit code "
                f"{process.exitcode}: out of memory?); make the run smaller") from None
        if kind == "error":
            raise ScenarioError(payload)
        return payload
    finally:
        if process is not None and process.pid is not None:
            if process.is_alive():
                process.kill()
            process.join()
        _running[0] -= 1
        _free.release()


def _start(process) -> None:
    """Start a worker without it re-running the page: multiprocessing re-imports the parent's
    ``__main__`` in a new process by its file, and Streamlit runs each page as ``__main__``.
    A bare module stands in while the worker starts (the page's own globals are its module's
    dict, which this does not touch)."""
    with _starting:
        page = sys.modules.get("__main__")
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            process.start()
        finally:
            if page is not None:
                sys.modules["__main__"] = page


def _work(sender, task: Callable[[Any], Any], argument: Any) -> None:
    try:
        result = ("result", task(argument))
    except _USER_ERRORS as exc:
        result = ("error", str(exc))
    except Exception as exc:  # a bug: said in words on the page, never a traceback
        result = ("error", f"the simulator failed on this scenario ({type(exc).__name__}: "
                           f"{exc}); please report it with the scenario file")
    sender.send(result)
    sender.close()
