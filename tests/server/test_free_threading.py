"""On a free-threaded build the GIL must stay off after importing everything we use."""

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from pounce_sync.server.runtime import gil_enabled

from ..server_process import exchange, running_server

FREE_THREADED_BUILD = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


def test_ci_free_threaded_run_is_really_free_threaded() -> None:
    if os.environ.get("POUNCE_EXPECT_FREE_THREADING"):
        assert FREE_THREADED_BUILD, f"{sys.executable} is not a free-threaded build"


def test_gil_state_after_importing_the_server_and_its_dependencies() -> None:
    code = (
        "import sys, warnings; warnings.simplefilter('error', RuntimeWarning);"
        "import pounce_sync.server.lifecycle, pounce_sync.cli, pounce_sync.http1, async_pool;"
        "print(sys._is_gil_enabled() if hasattr(sys, '_is_gil_enabled') else True)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout.strip()
    assert out == ("False" if FREE_THREADED_BUILD else "True")
    assert gil_enabled() is (not FREE_THREADED_BUILD)


# A single-phase extension module that declares nothing about the GIL: a free-threaded
# CPython turns the GIL back on when it is imported, as it does for old wheels.
GIL_NEEDING_MODULE = r"""
#include <Python.h>
static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "gil_needing", NULL, -1, NULL};
PyMODINIT_FUNC PyInit_gil_needing(void) { return PyModule_Create(&def); }
"""

GIL_APP = """
import gil_needing  # noqa: F401


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})
"""


def _build_gil_needing_app(directory: Path) -> None:
    """The extension, compiled with the C compiler CPython was built with, and an app."""
    source = directory / "gil_needing.c"
    source.write_text(GIL_NEEDING_MODULE)
    target = directory / ("gil_needing" + sysconfig.get_config_var("EXT_SUFFIX"))
    compiler = (sysconfig.get_config_var("CC") or "cc").split()
    include = sysconfig.get_paths()["include"]
    subprocess.run(
        [*compiler, "-shared", "-fPIC", f"-I{include}", str(source), "-o", str(target)],
        check=True,
        timeout=120,
    )
    (directory / "gil_app.py").write_text(GIL_APP)


@pytest.mark.skipif(not FREE_THREADED_BUILD, reason="the GIL is always on in this build")
def test_an_import_that_re_enables_the_gil_makes_auto_choose_processes(tmp_path: Path) -> None:
    _build_gil_needing_app(tmp_path)
    args = ("--workers", "2", "--worker-mode", "auto", "--app-dir", str(tmp_path))
    with running_server(*args, app="gil_app:app") as server:
        assert (
            exchange(server, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")[:12]
            == b"HTTP/1.1 200"
        )
        log = server.stderr
    assert "Importing gil_needing re-enabled the GIL" in log
    assert "worker mode auto chose processes" in log
    assert "Worker mode: process (auto: the GIL is enabled" in log
    assert "Worker mode: thread" not in log
    assert "RuntimeWarning" not in log  # the interpreter's own warning is replaced by ours
