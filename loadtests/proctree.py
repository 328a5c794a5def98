"""A server under test as a process tree: start it, wait for it, measure it, stop it.

Each server runs in a session of its own, so that at the end the harness can kill exactly the
processes it started (its process group) and nothing else. Memory is read from /proc: the
server may be one process with threads or a supervisor with forked workers, so figures are
summed over the whole tree of descendants.
"""

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

from servers import HERE, HOST

# The /proc readings `pounce-sync bench` ships with; the harness uses the same ones.
sys.path.insert(0, str(HERE.parent))
from pounce_sync.bench.runner import PeakMemory, pss_kib, rss_kib
from pounce_sync.bench.runner import process_tree as tree

__all__ = ["PeakMemory", "pss_kib", "rss_kib", "tree"]


class ServerFailed(RuntimeError):
    """The server did not come up, or died under load."""


def free_port() -> int:
    """A port the kernel just handed out on loopback; free again by the time we use it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def start(argv: list[str], cwd: Path, log: IO[bytes]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        argv,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _answers(port: int, path: str) -> bool:
    conn = http.client.HTTPConnection(HOST, port, timeout=1.0)
    try:
        conn.request("GET", path)
        conn.getresponse().read()
        return True
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def wait_until_answers(proc: subprocess.Popen[bytes], port: int, path: str, timeout: float) -> None:
    """Return once the server answers an HTTP request (any status) on `port`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerFailed(f"exited with code {proc.returncode} before answering")
        if _answers(port, path):
            return
        time.sleep(0.1)
    raise ServerFailed(f"did not answer on port {port} within {timeout:.0f} s")


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, process group) of `pid`, None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rpartition(")")[2].split()  # the command name may hold spaces
    return int(fields[1]), int(fields[2])


def _all_stats() -> dict[int, tuple[int, int]]:
    stats = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _stat(int(entry))) is not None:
            stats[int(entry)] = stat
    return stats


def peak_rss(root: int) -> PeakMemory:
    """The tree's peak summed VmRSS, sampled every 0.1 s while the `with` block runs.

    `pounce-sync bench`'s sampler without PSS; it re-lists the tree only every 10th sample,
    since scanning all of /proc costs CPU that the server under test would otherwise have.
    """
    return PeakMemory(root, pss_every=0)


def _group_alive(pgid: int) -> bool:
    return any(group == pgid for _, group in _all_stats().values())


def stop(proc: subprocess.Popen[bytes], grace: float = 5.0) -> str:
    """SIGTERM; SIGKILL to its process group if any of it lives after `grace` s. Says which.

    The whole group must be gone, not just the parent: workers that outlive it would skew
    the next server's figures.
    """
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    while proc.poll() is None or _group_alive(proc.pid):
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(grace)
            return f"killed after {grace:.0f} s"
        time.sleep(0.05)
    return "terminated"
