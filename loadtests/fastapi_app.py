"""FastAPI apps for the `fastapi-sync` and `fastapi-async` scenarios (issue 15 item 7).

A `def` route is what most FastAPI services have: FastAPI runs it through
anyio.to_thread, a hop to a worker thread and back for every request. The `async def`
twin shows the framework's own cost without the hop. Install FastAPI into every
interpreter that serves it (`pip install fastapi`; loadtests/.venv-peers gets it from
peers-requirements.txt).
"""

from fastapi import FastAPI

sync_app = FastAPI()
async_app = FastAPI()


@sync_app.get("/")
def sync_route() -> dict[str, bool]:
    return {"ok": True}


@async_app.get("/")
async def async_route() -> dict[str, bool]:
    return {"ok": True}
