"""CPU time of a server's process tree, from /proc, and what it comes to per request.

`utime` and `stime` in /proc/<pid>/stat cover every thread of a process, so summing them over
the tree (a supervisor and its workers) gives all the CPU the server used. They tick in
USER_HZ (100 a second on Linux): over a run of a few seconds at thousands of requests a
second that resolution is well below one per cent of the total.
"""

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

TICKS_PER_S = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class CpuTimes:
    user_s: float
    system_s: float

    @property
    def total_s(self) -> float:
        return self.user_s + self.system_s

    def __sub__(self, earlier: "CpuTimes") -> "CpuTimes":
        return CpuTimes(
            round(self.user_s - earlier.user_s, 6), round(self.system_s - earlier.system_s, 6)
        )


def per_request_us(used: CpuTimes, requests: int) -> float | None:
    """Microseconds of CPU per request; None when nothing was completed."""
    if requests <= 0:
        return None
    return used.total_s * 1_000_000 / requests


def parse_stat(text: str) -> CpuTimes:
    """(utime, stime) of one /proc/<pid>/stat line, in seconds.

    The command name (field 2) is in parentheses and may hold spaces and parentheses
    itself, so the fields are counted from the last ")".
    """
    fields = text.rpartition(")")[2].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return CpuTimes(int(fields[11]) / TICKS_PER_S, int(fields[12]) / TICKS_PER_S)


def read(pids: Iterable[int]) -> CpuTimes:
    """Summed CPU times of `pids` so far; a process that is gone counts nothing."""
    user = system = 0.0
    for pid in pids:
        try:
            times = parse_stat(Path(f"/proc/{pid}/stat").read_text())
        except (OSError, IndexError, ValueError):
            continue
        user += times.user_s
        system += times.system_s
    return CpuTimes(round(user, 6), round(system, 6))


def cpus_allowed(pids: Iterable[int]) -> list[str]:
    """The distinct CPU lists the threads of `pids` may run on ("1", "0-1"), for the record:
    a pinned server that moved any of its threads elsewhere shows here."""
    found = set()
    for pid in pids:
        try:
            tasks = list(Path(f"/proc/{pid}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                for line in (task / "status").read_text().splitlines():
                    if line.startswith("Cpus_allowed_list:"):
                        found.add(line.split(":", 1)[1].strip())
            except OSError:
                continue
    return sorted(found)
