"""The servers under test, one row each: adding a peer is adding a row to `SERVERS`.

A row says which interpreter runs the server ("pounce": the one pounce-sync is installed in;
"ft": a free-threaded one; "peers" and "pounce314": the venvs made by `bench.py --setup`),
its command line as a function of (python, app import string, port, workers), a probe
command whose exit status 0 (and, if `probe_needs` is set, whose output containing that text)
means "installed", whether it serves the ASGI app or its WSGI twin, and which loads it can
take (h2load needs HTTP/2 cleartext with prior knowledge). Every server is started with
loadtests/ as its working directory, so `apps:hello` imports the same way in all of them.
Every server binds 127.0.0.1 only.
"""

import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from scenarios import LoadKind

HERE = Path(__file__).resolve().parent
HOST = "127.0.0.1"
PEERS_VENV = HERE / ".venv-peers"
PEERS_REQUIREMENTS = HERE / "peers-requirements.txt"
POUNCE314_VENV = HERE / ".venv-pounce314"
POUNCE314_REQUIREMENTS = HERE / "pounce314-requirements.txt"
CEILING = HERE / "ceiling.py"
FREE_THREADED_PYTHON = HERE.parent / ".venv-ft" / "bin" / "python"
# hypercorn ends an HTTP/2 connection after 1000 requests by default and h2load does not
# reconnect, so h2load runs would stall: this file lifts the cap, for h2load runs only.
HYPERCORN_H2_CONFIG = HERE / "hypercorn-h2.toml"
GTHREAD_THREADS = 4  # threads per gunicorn gthread worker (gunicorn's default is 1)

Interpreter = Literal["pounce", "ft", "peers", "pounce314"]
Interface = Literal["asgi", "wsgi"]
Command = Callable[[str, str, int, int], list[str]]
Probe = Callable[[str], list[str]]
ExtraArgs = Callable[[int], list[str]]  # workers -> flags appended for one kind of load


def no_args(workers: int) -> list[str]:
    return []


@dataclass(frozen=True, slots=True)
class Server:
    name: str
    interpreter: Interpreter
    command: Command
    probe: Probe
    dist: str | None  # distribution whose version goes into the results
    scenarios: frozenset[str] | None = None  # None: it can serve every scenario
    summary: str = ""
    interface: Interface = "asgi"  # which app of a scenario it serves: ASGI or the WSGI twin
    loads: frozenset[LoadKind] = frozenset({"wrk"})
    h2_args: ExtraArgs = no_args  # extra flags for h2load runs
    probe_needs: str | None = None  # text the probe's stdout must contain
    stop_s: int = 0  # how long it takes to stop beyond the usual, for the time estimate


def imports(*modules: str) -> Probe:
    """A probe that passes when all `modules` import."""
    return lambda python: [python, "-c", "import " + ", ".join(modules)]


def module_help(module: str) -> Probe:
    """A probe that passes when `python -m module --help` does (it must import its CLI)."""
    return lambda python: [python, "-m", module, "--help"]


def _pounce_sync(python: str, app: str, port: int, workers: int) -> list[str]:
    return [
        *[python, "-m", "pounce_sync", "--host", HOST, "--port", str(port)],
        *["--workers", str(workers), "--no-access-log", app],
    ]


def _pounce_sync_threads(python: str, app: str, port: int, workers: int) -> list[str]:
    # Thread mode named, not left to `auto`: an import that re-enabled the GIL would
    # otherwise turn this row into process mode without a word.
    argv = _pounce_sync(python, app, port, workers)
    return [*argv[:-1], "--worker-mode", "thread", app]


def _pounce_sync_wsgi(python: str, app: str, port: int, workers: int) -> list[str]:
    argv = _pounce_sync(python, app, port, workers)
    return [*argv[:-1], "--interface", "wsgi", app]


def _pounce_sync_ft_h2(workers: int) -> list[str]:
    # Worker threads share one process and so one AsyncPool: as many event loops as the
    # other servers have worker processes (process mode has a pool per worker already).
    return ["--async-threads", str(workers)]


def _bengal_pounce(python: str, app: str, port: int, workers: int) -> list[str]:
    # --no-compression: it compresses by default when the client asks; no load here asks,
    # and no other server compresses, so this only rules the difference out.
    return [
        *[python, "-m", "pounce", "serve", "--app", app, "--host", HOST, "--port", str(port)],
        *["--workers", str(workers), "--no-access-log", "--no-compression"],
        *["--log-level", "warning"],
    ]


def _uvicorn(python: str, app: str, port: int, workers: int) -> list[str]:
    return [
        *[python, "-m", "uvicorn", "--host", HOST, "--port", str(port)],
        *["--workers", str(workers), "--no-access-log", "--log-level", "warning", app],
    ]


def _uvicorn_h11(python: str, app: str, port: int, workers: int) -> list[str]:
    return [*_uvicorn(python, app, port, workers), "--http", "h11", "--loop", "asyncio"]


def _hypercorn(python: str, app: str, port: int, workers: int) -> list[str]:
    return [
        *[python, "-m", "hypercorn", "--bind", f"{HOST}:{port}", "--workers", str(workers)],
        *["--worker-class", "uvloop", "--log-level", "warning", app],
    ]


def _hypercorn_h2(workers: int) -> list[str]:
    return ["--config", str(HYPERCORN_H2_CONFIG)]


def _granian(python: str, app: str, port: int, workers: int) -> list[str]:
    return [
        *[python, "-m", "granian", "--interface", "asgi", "--host", HOST, "--port", str(port)],
        *["--workers", str(workers), "--no-access-log", "--log-level", "warning", app],
    ]


def _gunicorn(python: str, app: str, port: int, workers: int) -> list[str]:
    return [
        *[python, "-m", "gunicorn", "--bind", f"{HOST}:{port}", "--workers", str(workers)],
        *["--worker-class", "uvicorn_worker.UvicornWorker", "--log-level", "warning", app],
    ]


def _gunicorn_gthread(python: str, app: str, port: int, workers: int) -> list[str]:
    return [
        *[python, "-m", "gunicorn", "--bind", f"{HOST}:{port}", "--workers", str(workers)],
        *["--worker-class", "gthread", "--threads", str(GTHREAD_THREADS)],
        *["--log-level", "warning", app],
    ]


def _ceiling(python: str, app: str, port: int, workers: int) -> list[str]:
    return [python, str(CEILING), "--host", HOST, "--port", str(port), "--workers", str(workers)]


H2_AND_SSE: frozenset[LoadKind] = frozenset({"wrk", "h2load", "sse"})
WITH_SSE: frozenset[LoadKind] = frozenset({"wrk", "sse"})

SERVERS: tuple[Server, ...] = (
    Server(
        "pounce-sync",
        "pounce",
        _pounce_sync,
        module_help("pounce_sync"),
        "pounce-sync",
        summary="this project",
        loads=H2_AND_SSE,
    ),
    Server(
        "pounce-sync-ft",
        "ft",
        _pounce_sync_threads,
        module_help("pounce_sync"),
        "pounce-sync",
        summary="this project on free-threaded CPython (worker threads, GIL off)",
        loads=H2_AND_SSE,
        h2_args=_pounce_sync_ft_h2,
    ),
    Server(
        "pounce-sync-wsgi",
        "pounce",
        _pounce_sync_wsgi,
        module_help("pounce_sync"),
        "pounce-sync",
        summary="this project serving the WSGI twin of each app (--interface wsgi)",
        interface="wsgi",
        probe_needs="--interface",
    ),
    Server(
        "bengal-pounce",
        "pounce314",
        _bengal_pounce,
        imports("pounce._cli", "pounce.server"),
        "bengal-pounce",
        summary="bengal-pounce on CPython 3.14: the server this project improves on",
        stop_s=5,  # on SIGTERM it waits 10 s for workers that do not exit: killed at 5 s
    ),
    Server(
        "uvicorn",
        "peers",
        _uvicorn,
        imports("uvicorn", "httptools", "uvloop"),
        "uvicorn",
        summary="uvicorn[standard]: httptools parser, uvloop",
        loads=WITH_SSE,
    ),
    Server(
        "uvicorn-h11",
        "peers",
        _uvicorn_h11,
        imports("uvicorn", "h11"),
        "uvicorn",
        summary="uvicorn with the pure-Python h11 parser and the asyncio loop",
    ),
    Server(
        "hypercorn",
        "peers",
        _hypercorn,
        imports("hypercorn", "uvloop", "h2"),
        "hypercorn",
        summary="hypercorn (h11, h2) on uvloop",
        loads=H2_AND_SSE,
        h2_args=_hypercorn_h2,
    ),
    Server(
        "granian",
        "peers",
        _granian,
        imports("granian"),
        "granian",
        summary="granian: Rust HTTP stack, ASGI interface",
        loads=H2_AND_SSE,
    ),
    Server(
        "gunicorn-uvicorn",
        "peers",
        _gunicorn,
        imports("gunicorn", "uvicorn_worker"),
        "gunicorn",
        summary="gunicorn arbiter with uvicorn workers (ASGI)",
    ),
    Server(
        "gunicorn-gthread",
        "peers",
        _gunicorn_gthread,
        imports("gunicorn.workers.gthread"),
        "gunicorn",
        summary=f"gunicorn gthread workers, {GTHREAD_THREADS} threads each, WSGI twin of each app",
        interface="wsgi",
    ),
    Server(
        "ceiling",
        "pounce",
        _ceiling,
        lambda python: [python, str(CEILING), "--help"],
        None,
        scenarios=frozenset({"hello", "browser", "idle-keepalive"}),
        summary="canned-response epoll loop: what this Python can do at all",
    ),
)

DEFAULT_SERVERS = (
    "pounce-sync",
    "pounce-sync-ft",
    "bengal-pounce",
    "uvicorn",
    "uvicorn-h11",
    "ceiling",
)
# --per-core: the servers of the figures of record (docs/benchmarks.md).
PER_CORE_SERVERS = ("pounce-sync", "pounce-sync-ft", "uvicorn", "granian", "ceiling")
BY_NAME = {server.name: server for server in SERVERS}


def peers_python() -> Path:
    return PEERS_VENV / "bin" / "python"


def pounce314_python() -> Path:
    return POUNCE314_VENV / "bin" / "python"


SETUP_HINTS: dict[Interpreter, str] = {
    "peers": "; run: python loadtests/bench.py --setup",
    "pounce314": "; needs Python 3.14, run: python loadtests/bench.py --setup",
}


def probe(server: Server, python: str) -> str | None:
    """None when the server can run under `python`, else why it cannot, in a few words."""
    if not Path(python).exists():
        return f"not installed (no {python}{SETUP_HINTS.get(server.interpreter, '')})"
    try:
        done = subprocess.run(
            server.probe(python), cwd=HERE, capture_output=True, timeout=60, check=False
        )
    except subprocess.TimeoutExpired:
        return "not installed (probe timed out)"
    if done.returncode != 0:
        last = done.stderr.decode(errors="replace").strip().splitlines()[-1:]
        return "not installed" + (f" ({last[0][:120]})" if last else "")
    if server.probe_needs and server.probe_needs not in done.stdout.decode(errors="replace"):
        return f"not installed (no {server.probe_needs})"
    return None


def dist_version(python: str, dist: str | None) -> str | None:
    """The installed version of `dist` under `python`, for the record."""
    if dist is None:
        return None
    code = f"import importlib.metadata as m; print(m.version({dist!r}))"
    done = subprocess.run(
        [python, "-c", code], cwd=HERE, capture_output=True, text=True, timeout=60, check=False
    )
    if done.returncode != 0:
        return None
    return done.stdout.strip() or None


def interpreter_info(python: str) -> dict[str, object]:
    """Version and GIL state of an interpreter: results are only comparable with these."""
    code = (
        "import json, sys; print(json.dumps({'version': sys.version, "
        "'gil_enabled': getattr(sys, '_is_gil_enabled', lambda: True)()}))"
    )
    done = subprocess.run(
        [python, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    if done.returncode != 0:
        return {"python": python, "error": done.stderr.strip()[-200:]}
    return {"python": python, **json.loads(done.stdout)}
