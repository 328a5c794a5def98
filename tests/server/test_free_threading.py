"""On a free-threaded build the GIL must stay off after importing everything we use."""

import os
import subprocess
import sys
import sysconfig

from pounce_sync.server.runtime import gil_enabled

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
