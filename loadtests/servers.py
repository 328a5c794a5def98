"""The servers under test, one row each: adding a peer is adding a row to `SERVERS`.

A row says which interpreter runs the server ("pounce": the one pounce-sync is installed in;
"peers": the venv made by `bench.py --setup`), its command line as a function of
(python, app import string, port, workers), and a probe command whose exit status 0 means
"installed". Every server is started with loadtests/ as its working directory, so `apps:hello`
imports the same way in all of them. Every server binds 127.0.0.1 only.
"""

import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

HERE = Path(__file__).resolve().parent
HOST = "127.0.0.1"
PEERS_VENV = HERE / ".venv-peers"
PEERS_REQUIREMENTS = HERE / "peers-requirements.txt"
CEILING = HERE / "ceiling.py"
FREE_THREADED_PYTHON = HERE.parent / ".venv-ft" / "bin" / "python"

Interpreter = Literal["pounce", "ft", "peers"]
Command = Callable[[str, str, int, int], list[str]]
Probe = Callable[[str], list[str]]


@dataclass(frozen=True, slots=True)
class Server:
    name: str
    interpreter: Interpreter
    command: Command
    probe: Probe
    dist: str | None  # distribution whose version goes into the results
    scenarios: frozenset[str] | None = None  # None: it can serve every scenario
    summary: str = ""


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


def _ceiling(python: str, app: str, port: int, workers: int) -> list[str]:
    return [python, str(CEILING), "--host", HOST, "--port", str(port), "--workers", str(workers)]


SERVERS: tuple[Server, ...] = (
    Server(
        "pounce-sync",
        "pounce",
        _pounce_sync,
        module_help("pounce_sync"),
        "pounce-sync",
        summary="this project",
    ),
    Server(
        "pounce-sync-ft",
        "ft",
        _pounce_sync,
        module_help("pounce_sync"),
        "pounce-sync",
        summary="this project on free-threaded CPython (worker threads, GIL off)",
    ),
    Server(
        "uvicorn",
        "peers",
        _uvicorn,
        imports("uvicorn", "httptools", "uvloop"),
        "uvicorn",
        summary="uvicorn[standard]: httptools parser, uvloop",
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
        imports("hypercorn", "uvloop"),
        "hypercorn",
        summary="hypercorn (h11) on uvloop",
    ),
    Server(
        "granian",
        "peers",
        _granian,
        imports("granian"),
        "granian",
        summary="granian: Rust HTTP stack, ASGI interface",
    ),
    Server(
        "gunicorn",
        "peers",
        _gunicorn,
        imports("gunicorn", "uvicorn_worker"),
        "gunicorn",
        summary="gunicorn arbiter with uvicorn workers",
    ),
    Server(
        "ceiling",
        "pounce",
        _ceiling,
        lambda python: [python, str(CEILING), "--help"],
        None,
        scenarios=frozenset({"hello"}),
        summary="canned-response epoll loop: what this Python can do at all",
    ),
)

DEFAULT_SERVERS = ("pounce-sync", "pounce-sync-ft", "uvicorn", "uvicorn-h11", "ceiling")
BY_NAME = {server.name: server for server in SERVERS}


def peers_python() -> Path:
    return PEERS_VENV / "bin" / "python"


def probe(server: Server, python: str) -> str | None:
    """None when the server can run under `python`, else why it cannot, in a few words."""
    if not Path(python).exists():
        hint = "; run: python loadtests/bench.py --setup" if server.interpreter == "peers" else ""
        return f"not installed (no {python}{hint})"
    try:
        done = subprocess.run(
            server.probe(python), cwd=HERE, capture_output=True, timeout=60, check=False
        )
    except subprocess.TimeoutExpired:
        return "not installed (probe timed out)"
    if done.returncode != 0:
        last = done.stderr.decode(errors="replace").strip().splitlines()[-1:]
        return "not installed" + (f" ({last[0][:120]})" if last else "")
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
