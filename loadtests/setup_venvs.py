"""`bench.py --setup`: the venvs the other servers run in, each from a pinned requirements file.

loadtests/.venv-peers (uvicorn, hypercorn, granian, gunicorn) with any Python the peers
support; loadtests/.venv-pounce314 (bengal-pounce) with CPython 3.14, which bengal-pounce
requires. Every step has a time limit; a venv that cannot be made is reported, and the
harness then lists its servers as "not installed".
"""

import shutil
import subprocess
import sys
from pathlib import Path

import servers as server_table
from servers import HERE

PYTHON314_SCRIPT = HERE.parent.parent / "shared" / "tools" / "python-314.sh"
PIP_TIMEOUT_S = 1200


def make_venv(base_python: str, venv: Path, requirements: Path) -> int:
    """Create `venv` with `base_python` and install `requirements` into it; 0 if it worked."""
    print(f"creating {venv} with {base_python}", flush=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check"]
    try:
        subprocess.run([base_python, "-m", "venv", str(venv)], check=True, timeout=300)
        subprocess.run([*pip, "-r", str(requirements)], check=True, timeout=PIP_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError) as exc:
        print(f"setup of {venv.name} failed: {exc}", file=sys.stderr)
        return 1
    return 0


def _is_314(python: str) -> bool:
    code = "import sys; sys.exit(sys.version_info[:2] < (3, 14))"
    try:
        return subprocess.run([python, "-c", code], timeout=60, check=False).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def find_python314(explicit: str | None) -> str | None:
    """A CPython 3.14: `explicit`, else ../shared/tools/python-314.sh's, else python3.14 on
    PATH. None (after saying why) when there is none."""
    candidate = explicit
    if candidate is None and PYTHON314_SCRIPT.exists():
        print(f"asking {PYTHON314_SCRIPT} for Python 3.14 (slow the first time)", flush=True)
        try:
            done = subprocess.run(
                [str(PYTHON314_SCRIPT)], capture_output=True, text=True, timeout=1800, check=True
            )
            candidate = (done.stdout.strip().splitlines() or [""])[-1] or None
        except (OSError, subprocess.SubprocessError) as exc:
            print(f"{PYTHON314_SCRIPT.name} failed: {exc}", file=sys.stderr)
    candidate = candidate or shutil.which("python3.14")
    if candidate is None or not _is_314(candidate):
        print(
            f"no CPython 3.14 ({candidate or 'none found'}): bengal-pounce will be listed as "
            "not installed; give one with --setup-python314 PATH",
            file=sys.stderr,
        )
        return None
    return candidate


def setup(peers_python: str, python314: str | None) -> int:
    """Both venvs; 0 only if both were made."""
    status = make_venv(peers_python, server_table.PEERS_VENV, server_table.PEERS_REQUIREMENTS)
    found = find_python314(python314)
    if found is None:
        return 1
    return status | make_venv(
        found, server_table.POUNCE314_VENV, server_table.POUNCE314_REQUIREMENTS
    )
