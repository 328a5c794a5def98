"""`bench.py --per-core` without timing anything: the command lines it builds, the CPU lists
it accepts, the CPU-per-request arithmetic and how the report shows it."""

import os
import sys
from pathlib import Path

import pytest

LOADTESTS = Path(__file__).resolve().parents[2] / "loadtests"
if str(LOADTESTS) not in sys.path:
    sys.path.append(str(LOADTESTS))  # appended: the harness's module names shadow nothing

import bench  # noqa: E402
import cputime  # noqa: E402
import pinning  # noqa: E402
import report  # noqa: E402
import scenarios  # noqa: E402
import servers  # noqa: E402
import wrk  # noqa: E402
from cputime import CpuTimes  # noqa: E402

from .test_loadtests_parsing import WRK_REPORT  # noqa: E402  (17,523 requests)

BROWSER = scenarios.BY_NAME["browser"]
# The flag each server takes its worker count with.
WORKER_FLAGS = {"--workers", "-w"}
TWO_CPUS = pytest.mark.skipif(
    not {0, 1} <= os.sched_getaffinity(0), reason="needs CPUs 0 and 1 (the --per-core default)"
)


def _settings(*flags: str) -> bench.Settings:
    return bench.settings_from(bench.parse_args(list(flags)))


def _worker_count(argv: list[str]) -> str:
    (flag,) = [arg for arg in argv if arg in WORKER_FLAGS]
    return argv[argv.index(flag) + 1]


@TWO_CPUS
@pytest.mark.parametrize("name", [s.name for s in servers.SERVERS])
def test_per_core_server_runs_one_worker_under_taskset(name: str) -> None:
    server = servers.BY_NAME[name]
    scenario = BROWSER if name != "bengal-pounce" else scenarios.BY_NAME["hello"]
    argv = bench.command_for(server, scenario, "python", 8000, _settings("--per-core"))
    assert argv[:3] == [pinning.TASKSET, "-c", "1"]
    assert _worker_count(argv) == "1"


@TWO_CPUS
def test_per_core_load_is_one_wrk_thread_on_the_other_cpu() -> None:
    settings = _settings("--per-core")
    argv = wrk.command("http://127.0.0.1:1/", settings.load, BROWSER)
    assert argv[:4] == [pinning.TASKSET, "-c", "0", wrk.WRK]
    assert {"-t1", "-c64"} <= set(argv)
    assert settings.server_cpus == "1" and settings.workers == 1


@TWO_CPUS
def test_per_core_defaults_to_the_servers_of_record_and_pounce_threads_on_3_13t() -> None:
    args = bench.parse_args(["--per-core"])
    assert args.servers.split(",") == list(servers.PER_CORE_SERVERS)
    ft = servers.BY_NAME["pounce-sync-ft"]
    argv = bench.command_for(ft, BROWSER, "python3.13t", 8000, bench.settings_from(args))
    assert argv[argv.index("--worker-mode") + 1] == "thread"


def test_without_per_core_nothing_is_pinned() -> None:
    settings = _settings()
    argv = bench.command_for(servers.BY_NAME["uvicorn"], BROWSER, "python", 8000, settings)
    assert pinning.TASKSET not in argv and _worker_count(argv) == "2"
    assert wrk.command("u", settings.load, BROWSER)[0] == wrk.WRK
    assert "-t2" in wrk.command("u", settings.load, BROWSER)


@TWO_CPUS
@pytest.mark.parametrize(
    "flags",
    [
        ["--per-core", "--workers", "2"],
        ["--per-core", "--server-cpus", "0"],  # the load's CPU too
        ["--per-core", "--server-cpus", "x"],
        ["--per-core", "--server-cpus", "4096"],  # no such CPU here
    ],
)
def test_per_core_refuses_what_contradicts_it(flags: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        bench.parse_args(flags)
    assert exc.value.code == 2


@pytest.mark.parametrize(
    ("cpus", "expected"), [("1", {1}), ("0,2", {0, 2}), ("2-4", {2, 3, 4}), ("0, 3-4", {0, 3, 4})]
)
def test_cpu_lists(cpus: str, expected: set[int]) -> None:
    assert pinning.cpu_set(cpus) == expected
    assert pinning.pinned(["x"], cpus) == [pinning.TASKSET, "-c", cpus, "x"]
    assert pinning.pinned(["x"], None) == ["x"]


@pytest.mark.parametrize("cpus", ["", "a", "3-1", "1-"])
def test_bad_cpu_lists(cpus: str) -> None:
    with pytest.raises(ValueError):
        pinning.cpu_set(cpus)


def test_stat_times_are_read_after_the_command_name() -> None:
    # A command name with spaces and parentheses; utime 250 and stime 70 ticks.
    fields = ["S", "1", "1", "1", "0", "-1", "4194560", "10", "0", "0", "0", "250", "70"]
    line = "4242 (my (odd) name) " + " ".join([*fields, "0", "0", "20", "0", "3"])
    times = cputime.parse_stat(line)
    assert times == CpuTimes(250 / cputime.TICKS_PER_S, 70 / cputime.TICKS_PER_S)


def test_this_process_reads_its_own_cpu_and_affinity() -> None:
    times = cputime.read([os.getpid(), 2**22 + 1])  # the second pid cannot exist: skipped
    assert times.user_s >= 0 and times.system_s >= 0
    allowed = cputime.cpus_allowed([os.getpid()])
    assert allowed and all(pinning.cpu_set(cpus) for cpus in allowed)


def test_cpu_per_request() -> None:
    used = CpuTimes(3.5, 1.75) - CpuTimes(2.0, 1.25)  # 1.5 s user, 0.5 s system
    assert used == CpuTimes(1.5, 0.5) and used.total_s == 2.0
    assert cputime.per_request_us(used, 40_000) == 50.0
    assert cputime.per_request_us(used, 0) is None


def _run(server: str, round_no: int, user_s: float, system_s: float) -> report.Run:
    run = report.Run(server, "browser", round_no, ["x"])
    run.wrk = wrk.parse(WRK_REPORT)
    run.rss_peak_mib = 30.0
    run.cpu = CpuTimes(user_s, system_s)
    run.cpu_wall_s = 3.0
    return run


def test_report_gives_cpu_per_request_and_its_ratio_to_the_baseline() -> None:
    requests = wrk.parse(WRK_REPORT).requests
    runs = [
        _run("uvicorn", 1, 0.5, 0.25),
        _run("pounce-sync", 1, 1.0, 0.5),
        _run("pounce-sync", 2, 2.0, 1.0),
        _run("pounce-sync", 3, 1.5, 0.75),
    ]
    statuses = {"pounce-sync": "ok", "uvicorn": "ok"}
    rows = report.summarize(runs, "browser", "wrk", statuses, 3, ["uvicorn"])
    mine, base = rows
    assert base.status == "ok in 1/3 rounds"
    assert mine.cpu_us == pytest.approx(2.25e6 / requests)  # the median round
    assert mine.cpu_user_us == pytest.approx(1.5e6 / requests)
    assert mine.cpu_system_us == pytest.approx(0.75e6 / requests)
    assert mine.cpu_ratio == pytest.approx(3.0) and base.cpu_ratio == 1.0
    assert mine.cores == pytest.approx(0.75)  # 2.25 s of CPU in 3 s
    line = report.table(rows, "t", "uvicorn", "wrk").splitlines()
    assert "CPU µs/req" in line[1] and "cost vs uvicorn" in line[1]
    assert line[3].split()[4:7] == [f"{2.25e6 / requests:.1f}", "3.00x", "0.75"]


def test_runs_without_cpu_readings_have_no_cpu_figures() -> None:
    run = _run("uvicorn", 1, 0.5, 0.25)
    run.cpu = None
    (row,) = report.summarize([run], "browser", "wrk", {"uvicorn": "ok"}, 1, ["uvicorn"])
    assert row.rps and row.cpu_us is None and row.cpu_ratio is None and row.cores is None
