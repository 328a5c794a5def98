"""Benchmark scenarios, one row each: an app from apps.py plus how wrk drives it."""

from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    app: str  # import string, resolved with loadtests/ as the server's working directory
    summary: str
    path: str = "/"
    script: Path | None = None  # a wrk Lua script, e.g. to send a request body
    wrk_args: tuple[str, ...] = ()  # extra wrk flags for this scenario only


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("hello", "apps:hello", 'GET / -> 13-byte "Hello, world!"'),
    Scenario("json", "apps:json_app", "GET / -> small JSON document serialised per request"),
    Scenario("big", "apps:big", "GET / -> 64 KiB body"),
    Scenario(
        "upload",
        "apps:upload",
        "POST / with a 16 KiB body, read in full",
        script=HERE / "lua" / "upload.lua",
    ),
)

DEFAULT_SCENARIOS = ("hello",)
BY_NAME = {scenario.name: scenario for scenario in SCENARIOS}
