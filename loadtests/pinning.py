"""Per-core runs: the server on some CPUs, the load generator on others, through taskset.

`taskset -c LIST command` sets the CPU affinity and then execs the command, so the pid the
harness gets is the server's own, and every thread and child process it starts inherits the
affinity: the whole process tree stays on LIST.
"""

import os
import shutil

TASKSET = "/usr/bin/taskset"


def pinned(argv: list[str], cpus: str | None) -> list[str]:
    """`argv` run on the CPUs in `cpus` (a taskset list such as "1" or "2-3"); None: as is."""
    return argv if cpus is None else [TASKSET, "-c", cpus, *argv]


def cpu_set(cpus: str) -> set[int]:
    """The CPUs of a taskset list: "0", "1,3", "2-3"; ValueError if it is not one."""
    found: set[int] = set()
    for part in cpus.split(","):
        low, dash, high = part.strip().partition("-")
        first = int(low)
        last = int(high) if dash else first
        if first > last:
            raise ValueError(f"bad CPU range {part!r}")
        found.update(range(first, last + 1))
    return found


def check(server_cpus: str, load_cpus: str) -> str | None:
    """Why these CPU lists cannot be used here, or None if they can."""
    if shutil.which(TASKSET) is None:
        return f"{TASKSET} not found: install util-linux"
    try:
        server, load = cpu_set(server_cpus), cpu_set(load_cpus)
    except ValueError as exc:
        return f"not a CPU list: {exc}"
    if server & load:
        return f"the server and the load share CPUs {sorted(server & load)}"
    missing = (server | load) - os.sched_getaffinity(0)
    if missing:
        return f"CPUs {sorted(missing)} are not available to this process"
    return None
