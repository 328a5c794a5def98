"""Both coroutine drivers run each coroutine exactly once, as a real asyncio Task."""

import asyncio
import contextvars

import pytest

from pounce_sync.worker.coroutine_driver import EagerDriver, LoopDriver, make_driver

DRIVERS = [EagerDriver, LoopDriver]
request_id: contextvars.ContextVar[int] = contextvars.ContextVar("request_id")


@pytest.fixture(params=DRIVERS, ids=lambda cls: cls.__name__)
def driver(request):
    d = request.param()
    yield d
    d.close()


def test_synchronous_coroutine_runs_once(driver) -> None:
    calls = []

    async def app() -> None:
        calls.append(asyncio.current_task())

    driver.run(app())
    assert len(calls) == 1
    assert calls[0] is not None  # a real Task: anyio/sniffio can detect asyncio


def test_coroutine_that_suspends_is_finished_not_restarted(driver) -> None:
    steps = []

    async def app() -> None:
        steps.append("start")
        await asyncio.sleep(0.01)
        steps.append("after sleep")
        await asyncio.gather(asyncio.sleep(0), asyncio.sleep(0.001))
        steps.append("end")

    driver.run(app())
    assert steps == ["start", "after sleep", "end"]


def test_exceptions_propagate(driver) -> None:
    async def sync_fail() -> None:
        raise ValueError("sync")

    async def async_fail() -> None:
        await asyncio.sleep(0)
        await asyncio.sleep(0.001)
        raise KeyError("async")

    with pytest.raises(ValueError, match="sync"):
        driver.run(sync_fail())
    with pytest.raises(KeyError):
        driver.run(async_fail())


def test_context_does_not_leak_between_runs(driver) -> None:
    seen = []

    async def app(n: int) -> None:
        seen.append(request_id.get(None))
        request_id.set(n)

    for n in range(3):
        driver.run(app(n))
    assert seen == [None, None, None]


def test_no_running_loop_is_left_behind(driver) -> None:
    async def app() -> None:
        await asyncio.sleep(0)

    driver.run(app())
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()


def test_background_task_created_by_an_app_runs_when_the_loop_turns(driver) -> None:
    done = []

    async def background() -> None:
        done.append(True)

    async def app() -> None:
        task = asyncio.ensure_future(background())
        await task

    driver.run(app())
    assert done == [True]


def test_make_driver() -> None:
    for kind, cls in (("auto", EagerDriver), ("eager", EagerDriver), ("loop", LoopDriver)):
        d = make_driver(kind)
        assert isinstance(d, cls)
        d.close()
