"""How a list of independent tasks runs: inline, on this machine's cores, or on a Ray cluster.

    executor = make_executor("local", workers=8)      # or make_executor("ray", address=...)
    results = executor.map(fn, items, progress)        # in the order of items

``fn`` must be a module-level function and the items picklable (pydantic models, dicts): both
travel to other processes. An exception raised by a task reaches the caller as itself, so a
``UserError`` from a task is printed by the CLI like any other, without a traceback.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import socket
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from typing import Any, Protocol, TypeVar

from sim.engine.errors import UserError

T = TypeVar("T")
R = TypeVar("R")

Progress = Callable[[int, int], None]

EXECUTORS = ("local", "ray")
_RAY_INSTALL = "pip install 'servesim[ray]'"
_RAY_POLL_S = 0.2  # how often a Ray map collects finished tasks, so progress keeps moving
_RAY_PROBE_S = 5.0  # Ray itself retries an address that does not answer for many minutes


class Executor(Protocol):
    name: str

    def map(self, fn: Callable[[T], R], items: Sequence[T],
            progress: Progress | None = None) -> list[R]:
        """``[fn(item) for item in items]``, run however this executor runs tasks;
        ``progress(done, total)`` is called as tasks finish."""
        ...


def make_executor(name: str = "local", *, workers: int | None = None,
                  address: str | None = None) -> Executor:
    """The executor called ``name``: ``local`` processes or a ``ray`` cluster.

    workers: local: processes (default: every core; 1 runs inline); ray: the CPUs of the local
    instance it starts. address: ray only: the cluster to join (``HOST:6379`` or ``auto``).
    """
    if workers is not None and workers < 1:
        raise UserError(f"workers must be at least 1, got {workers}")
    if name == "local":
        if address is not None:
            raise UserError(f"address {address!r} is for the ray executor; "
                            "drop it or use the ray executor")
        return LocalExecutor(workers or os.cpu_count() or 1)
    if name == "ray":
        if address is not None and workers is not None:
            raise UserError("workers sets the size of a local Ray instance; a cluster at "
                            f"{address} has the CPUs of its nodes: drop workers or the address")
        return RayExecutor(_import_ray(), workers, address)
    raise UserError(f"unknown executor {name!r}: choose one of {', '.join(EXECUTORS)}")


class LocalExecutor:
    """Tasks on this machine's cores, one process each; one worker runs them inline."""

    name = "local"

    def __init__(self, workers: int) -> None:
        self.workers = workers

    def map(self, fn: Callable[[T], R], items: Sequence[T],
            progress: Progress | None = None) -> list[R]:
        if self.workers == 1 or len(items) <= 1:
            return _inline(fn, items, progress)
        pool = ProcessPoolExecutor(max_workers=min(self.workers, len(items)),
                                   mp_context=_start_context())
        try:
            futures: dict[Future[R], int] = {pool.submit(fn, item): i
                                             for i, item in enumerate(items)}
            results: list[Any] = [None] * len(items)
            for done, future in enumerate(as_completed(futures), start=1):
                results[futures[future]] = future.result()  # a task's exception raises here
                if progress is not None:
                    progress(done, len(items))
            return results
        finally:
            # After an error (or Ctrl-C) the queued tasks are dropped, not run to no purpose.
            pool.shutdown(wait=True, cancel_futures=True)


def _inline(fn: Callable[[T], R], items: Sequence[T], progress: Progress | None) -> list[R]:
    results = []
    for item in items:
        results.append(fn(item))
        if progress is not None:
            progress(len(results), len(items))
    return results


def _start_context() -> multiprocessing.context.BaseContext:
    """Fork on Linux: workers start at once with the catalogs already imported. Elsewhere the
    platform's default (spawn on macOS, where fork is unsafe), which re-imports ``fn``'s module."""
    if sys.platform == "linux":
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context()


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UserError(f"the ray executor needs Ray, which is not installed: {_RAY_INSTALL}") \
            from None
    return ray


class RayExecutor:
    """Tasks as Ray remote tasks, on a local instance or a cluster joined by address.

    Ray starts (or connects) on the first map, so a sweep's grid is checked before it waits
    for a cluster. Every node needs servesim installed, at the same version as here.
    """

    name = "ray"

    def __init__(self, ray: Any, workers: int | None, address: str | None) -> None:
        self.ray, self.workers, self.address = ray, workers, address

    def map(self, fn: Callable[[T], R], items: Sequence[T],
            progress: Progress | None = None) -> list[R]:
        self._connect()
        ray = self.ray
        task = ray.remote(fn)
        index = {task.remote(item): i for i, item in enumerate(items)}
        results: list[Any] = [None] * len(items)
        pending = list(index)
        try:
            while pending:
                # Collect everything finished so far rather than one at a time: each wait
                # scans the pending list, and a sweep may hold many thousands of tasks.
                ready, pending = ray.wait(pending, num_returns=len(pending), timeout=_RAY_POLL_S)
                for ref, value in zip(ready, self._get(ready)):
                    results[index[ref]] = value
                if ready and progress is not None:
                    progress(len(items) - len(pending), len(items))
        except BaseException:
            for ref in pending:
                ray.cancel(ref)
            raise
        return results

    def _connect(self) -> None:
        ray = self.ray
        if self.address is not None:
            _check_reachable(self.address)
        if ray.is_initialized():
            return
        options: dict[str, Any] = dict(address=self.address, ignore_reinit_error=True,
                                       include_dashboard=False, log_to_driver=False,
                                       logging_level=logging.ERROR)
        if self.address is None and self.workers is not None:
            options["num_cpus"] = self.workers
        try:
            ray.init(**options)
        except (ConnectionError, TimeoutError, ValueError, RuntimeError) as exc:
            if self.address is None:
                raise UserError(f"could not start a local Ray instance: {exc}") from None
            raise UserError(
                f"could not join the Ray cluster at {self.address} ({exc}): check that "
                "`ray start --head` runs there and that this is its address (port 6379 unless "
                "it was started with --port). A cluster with token authentication, the default "
                "of `ray start --head`, also needs RAY_AUTH_MODE=token here and its token in "
                "~/.ray/auth_token or RAY_AUTH_TOKEN"
            ) from None

    def _get(self, refs: list[Any]) -> list[Any]:
        """The refs' values; a task's exception is raised as itself, not wrapped by Ray."""
        try:
            return self.ray.get(refs)
        except self.ray.exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, BaseException):
                raise cause from None
            raise


def _check_reachable(address: str) -> None:
    """Fail at once when nothing listens at a ``HOST:PORT`` address.

    Left to itself, ``ray.init`` retries such an address for many minutes before giving up.
    Other forms (``auto``, ``local``) are Ray's to resolve, and it answers those quickly.
    """
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=_RAY_PROBE_S).close()
    except OSError as exc:
        raise UserError(
            f"no Ray cluster answers at {address} ({exc.strerror or exc}): start one with "
            "`ray start --head` on that machine, or check the host and port "
            "(the head's port is 6379 unless it was started with --port)"
        ) from None
