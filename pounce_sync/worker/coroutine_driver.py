"""Run an ASGI coroutine to completion from a blocking worker thread, cheaply.

Most request handlers never really suspend: `receive()` and `send()` on the sync
path complete without waiting. Two drivers, chosen by `--coroutine-driver`:

* `LoopDriver`: `loop.run_until_complete()` on a loop reused by the thread.
  Always correct; pays for a full loop iteration or two per request.
* `EagerDriver`: starts the coroutine as an *eager* asyncio Task
  (`eager_start=True`), which runs it synchronously, as a real Task with a
  current task and its own context, until it first awaits something that is not
  ready. If it finishes there, the loop never turns. If it suspends, the same
  Task is finished on the thread's loop — the coroutine is never restarted.
  Python 3.11 has no eager tasks; there the driver captures the Task's first
  step as it is scheduled and runs it itself, which is what eager_start does.

Both run the loop under a long-lived **root task**, one per thread (`_RootedLoop`),
as `asyncio.run(main())` would: libraries that tie resources to "the task the loop was
started for" find it, not the request's Task. anyio does so for its worker threads
(`to_thread.run_sync`, behind every sync FastAPI/Starlette route): rooted on each
request's Task, they were stopped when it ended, and each sync route paid for a new
thread, at half uvicorn's rate.

The measured difference is in docs/benchmarks.md.
"""

import asyncio
import sys
import threading
from collections.abc import Coroutine
from typing import Any, Protocol

# One name for every request's Task: the default ("Task-<n>") formats a string and bumps
# a process-wide counter on each request, which on 3.13t every worker thread contends for.
TASK_NAME = "pounce-sync request"
ROOT_TASK_NAME = "pounce-sync worker thread"


class CoroutineDriver(Protocol):
    def run(self, coro: Coroutine[Any, Any, None]) -> None: ...

    def close(self) -> None: ...


class _RootedLoop:
    """A thread's loop, run until a request's Task is done, under one root task.

    The root is started with `run_until_complete`, exactly as `asyncio.run` starts a
    program's main task, and never finishes before `close()`; each time the loop runs,
    it stops as soon as the request's Task is done.
    """

    loop: asyncio.AbstractEventLoop

    def _init_root(self) -> None:
        self._root_done: asyncio.Future[None] = self.loop.create_future()
        self._root = self.loop.create_task(self._root_main(), name=ROOT_TASK_NAME)

    async def _root_main(self) -> None:
        await self._root_done

    def _run_until_done(self, task: "asyncio.Future[None]") -> None:
        task.add_done_callback(self._stop_loop)
        try:
            self.loop.run_until_complete(self._root)
        except RuntimeError:
            if not task.done():
                raise  # not the stop below: a real error
        # The loop stopped because `task` is done ("stopped before Future completed").
        task.result()

    def _stop_loop(self, task: "asyncio.Future[None]") -> None:
        self.loop.stop()

    def close(self) -> None:
        if not self._root_done.done():
            self._root_done.set_result(None)
        _close_loop(self.loop)


class LoopDriver(_RootedLoop):
    """One event loop per worker thread, run for each request."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._init_root()

    def run(self, coro: Coroutine[Any, Any, None]) -> None:
        self._run_until_done(self.loop.create_task(coro, name=TASK_NAME))


class _StepCapturingLoop(asyncio.SelectorEventLoop):
    """Python 3.11: a loop that hands a new Task's first step back instead of queueing it.

    3.11 has no eager tasks. A Task schedules its first step with `call_soon`; while
    `capture` is set, this loop returns that step to the driver, which runs it at once
    (what `eager_start=True` does on 3.12+), skipping a Handle and a queue round trip.
    """

    capture: list[tuple[Any, tuple[Any, ...], Any]] | None = None

    def call_soon(self, callback: Any, *args: Any, context: Any = None) -> Any:
        capture = self.capture
        if capture is None:
            return super().call_soon(callback, *args, context=context)
        self.capture = None
        capture.append((callback, args, context))
        return None  # Task.__init__ discards the handle


class EagerDriver(_RootedLoop):
    """Step the coroutine as an eager Task; turn the loop only if it really suspends."""

    def __init__(self) -> None:
        self.loop = (
            asyncio.new_event_loop() if sys.version_info >= (3, 12) else _StepCapturingLoop()
        )
        self._thread_id = threading.get_ident()
        self._init_root()

    def run(self, coro: Coroutine[Any, Any, None]) -> None:
        task = self._start(coro)
        if task.done():
            task.result()  # re-raise the app's exception, if any
        else:
            self._run_until_done(task)

    if sys.version_info >= (3, 12):

        def _start(self, coro: Coroutine[Any, Any, None]) -> "asyncio.Task[None]":
            loop = self.loop
            # An eager Task starts at once only on a running loop; mark this thread's loop as
            # running for the synchronous first step, exactly as run_forever() would.
            loop._thread_id = self._thread_id  # type: ignore[attr-defined]
            asyncio._set_running_loop(loop)
            try:
                return asyncio.Task(coro, loop=loop, name=TASK_NAME, eager_start=True)  # type: ignore[call-arg]
            finally:
                asyncio._set_running_loop(None)
                loop._thread_id = None  # type: ignore[attr-defined]

    else:

        def _start(self, coro: Coroutine[Any, Any, None]) -> "asyncio.Task[None]":
            loop = self.loop
            first_step: list[tuple[Any, tuple[Any, ...], Any]] = []
            loop.capture = first_step  # type: ignore[attr-defined]
            asyncio._set_running_loop(loop)
            try:
                task = asyncio.Task(coro, loop=loop, name=TASK_NAME)
                step, args, context = first_step[0]
                context.run(step, *args)
            finally:
                asyncio._set_running_loop(None)
                loop.capture = None  # type: ignore[attr-defined]
            return task


def _close_loop(loop: asyncio.AbstractEventLoop) -> None:
    try:
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()


def make_driver(kind: str) -> CoroutineDriver:
    return LoopDriver() if kind == "loop" else EagerDriver()
