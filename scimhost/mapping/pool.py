"""The pool of worker processes that evaluates mappings, off the event loop and outside the
server's process.

Workers are started with `spawn` (a fresh interpreter: no copy of the server's tokens,
connections or memory), limited with RLIMIT_AS, killed and replaced when an evaluation passes
the wall-clock timeout, and recycled after a number of evaluations. All mappings of one
resource go to one worker in one round trip. Callers wait in a bounded queue; when it is full
the pool refuses at once (the server answers 503).
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import multiprocessing
import resource
from multiprocessing.connection import Connection
from typing import Any

from scimhost.config import MappingPoolSettings
from scimhost.mapping.runtime import EvaluationLimits, MappingError, MappingRuntime

log = logging.getLogger("scimhost.mapping")


class PoolSaturated(Exception):
    """Every worker is busy and the queue is full."""


class EvaluationTimeout(MappingError):
    """An evaluation ran past the wall-clock timeout; its worker was killed."""


Batch = list[tuple[str, str]]  # (label, expression)
READY = "ready"


def limits_of(settings: MappingPoolSettings) -> EvaluationLimits:
    """The per-evaluation limits of the `[mappings]` settings."""
    return EvaluationLimits(settings.max_iterations, settings.max_result_bytes)


def evaluate_batch(runtime: MappingRuntime, batch: Batch, variables: dict[str, Any], limits: EvaluationLimits) -> list:
    """[("ok", value) | ("error", label, message)] for each expression, in order."""
    results: list = []
    for label, expression in batch:
        try:
            results.append(("ok", runtime.evaluate(expression, variables, limits)))
        except MappingError as exc:
            results.append(("error", label, str(exc)))
        except MemoryError:
            results.append(("error", label, "the expression used more memory than allowed"))
        except RecursionError:
            results.append(("error", label, "the expression recursed too deeply"))
    return results


def _worker(connection: Connection, runtime_path: str, memory_mb: int, limits: EvaluationLimits) -> None:
    """A worker's main loop: receive (batch, variables), send results, until told to stop."""
    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    module, _, name = runtime_path.rpartition(".")
    runtime = getattr(importlib.import_module(module), name)()
    connection.send(READY)  # the pool hands out no work before this
    while True:
        try:
            message = connection.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        batch, variables = message
        try:
            connection.send(evaluate_batch(runtime, batch, variables, limits))
        except MemoryError:
            connection.send([("error", label, "the expression used more memory than allowed") for label, _ in batch])


class _Worker:
    def __init__(self, ctx, runtime_path: str, settings: MappingPoolSettings) -> None:
        parent, child = ctx.Pipe()
        self.connection = parent
        self.process = ctx.Process(
            target=_worker,
            args=(child, runtime_path, settings.memory_mb, limits_of(settings)),
            daemon=True,
            name="scimhost-mapping-worker",
        )
        self.process.start()
        child.close()
        self._wait_until_ready(settings.startup_timeout_seconds)
        self.evaluations = 0
        # Replaced by a fresh worker (recycling): stopped instead of going back to the queue.
        self.retired = False

    def _wait_until_ready(self, timeout: float) -> None:
        """Block (in a thread) until the worker has its runtime; so an evaluation's timeout
        never includes a start-up, which takes seconds on a busy machine."""
        try:
            ready = self.connection.poll(timeout) and self.connection.recv() == READY
        except (EOFError, OSError):
            ready = False
        if not ready:
            self.stop(kill=True)
            raise MappingError(f"a mapping worker did not start within {timeout:g}s")

    def stop(self, kill: bool = False) -> None:
        if kill:
            self.process.kill()
        else:
            try:
                self.connection.send(None)
            except (OSError, ValueError):
                pass
        self.process.join(timeout=2)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=2)
        self.connection.close()


class WorkerPool:
    """Evaluates batches of expressions of one runtime in worker processes."""

    def __init__(self, runtime_cls: type[MappingRuntime], settings: MappingPoolSettings) -> None:
        self.runtime_path = f"{runtime_cls.__module__}.{runtime_cls.__qualname__}"
        self.settings = settings
        self._ctx = multiprocessing.get_context("spawn")
        self._idle: asyncio.Queue[_Worker] | None = None
        self._waiting = 0
        self._workers: list[_Worker] = []
        self._background: set[asyncio.Task] = set()

    async def start(self) -> None:
        self._idle = asyncio.Queue()
        for _ in range(self.settings.workers):
            worker = await asyncio.to_thread(_Worker, self._ctx, self.runtime_path, self.settings)
            self._workers.append(worker)
            self._idle.put_nowait(worker)

    def stats(self) -> tuple[int, int, int]:
        """Workers, how many are busy, and how many evaluations wait for one."""
        idle = self._idle.qsize() if self._idle is not None else 0
        size = self.settings.workers
        return size, max(size - idle, 0), self._waiting

    async def close(self) -> None:
        await asyncio.gather(*self._background, return_exceptions=True)
        workers, self._workers = self._workers, []
        await asyncio.gather(*(asyncio.to_thread(w.stop) for w in workers))

    async def evaluate(self, batch: Batch, variables: dict[str, Any]) -> list:
        assert self._idle is not None, "the pool is not started"
        if self._idle.empty() and self._waiting >= self.settings.max_queue:
            raise PoolSaturated()
        self._waiting += 1
        try:
            worker = await self._idle.get()
            while worker.retired:  # replaced while it waited in the queue
                self._in_background(asyncio.to_thread(worker.stop))
                worker = await self._idle.get()
        finally:
            self._waiting -= 1
        try:
            results = await self._round_trip(worker, batch, variables)
            worker.evaluations += 1
            if worker.evaluations == self.settings.max_evaluations:
                self._in_background(self._recycle(worker))
            return results
        except EvaluationTimeout:
            worker = await self._replace(worker, kill=True)
            raise
        except (EOFError, OSError):
            # The worker died (a limit hit outside Python's reach, or killed): replace it.
            worker = await self._replace(worker, kill=True)
            raise MappingError("the mapping worker stopped during the evaluation") from None
        finally:
            if worker.retired:
                self._in_background(asyncio.to_thread(worker.stop))
            else:
                self._idle.put_nowait(worker)

    def _in_background(self, work) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _recycle(self, worker: _Worker) -> None:
        """Replace a worker that served its evaluations; it keeps serving until the fresh one
        has started, so recycling never leaves the pool a worker short (a spawn takes about
        0.2 s)."""
        fresh = await asyncio.to_thread(_Worker, self._ctx, self.runtime_path, self.settings)
        if worker not in self._workers:  # killed and replaced meanwhile
            await asyncio.to_thread(fresh.stop)
            return
        worker.retired = True
        self._workers = [fresh if w is worker else w for w in self._workers]
        assert self._idle is not None, "the pool is started"
        self._idle.put_nowait(fresh)

    async def _round_trip(self, worker: _Worker, batch: Batch, variables: dict[str, Any]) -> list:
        """Send a batch and wait, on the event loop, until the worker's answer can be read.

        A thread per round trip was measured to cost more than the evaluation: the hand-off,
        and the thread fighting the loop for the GIL. The request is a few kilobytes that the
        idle worker reads at once; the answer is read only once the pipe is readable."""
        loop = asyncio.get_running_loop()
        answered = loop.create_future()
        fd = worker.connection.fileno()

        def readable() -> None:
            if not answered.done():
                answered.set_result(None)

        loop.add_reader(fd, readable)
        try:
            worker.connection.send((batch, variables))
            await asyncio.wait_for(answered, self.settings.timeout_seconds)
        except TimeoutError:
            raise EvaluationTimeout(f"the evaluation took longer than {self.settings.timeout_seconds}s") from None
        finally:
            loop.remove_reader(fd)
        return worker.connection.recv()

    async def _replace(self, worker: _Worker, kill: bool) -> _Worker:
        await asyncio.to_thread(worker.stop, kill)
        fresh = await asyncio.to_thread(_Worker, self._ctx, self.runtime_path, self.settings)
        self._workers = [fresh if w is worker else w for w in self._workers]
        return fresh
