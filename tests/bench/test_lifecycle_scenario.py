"""loadtests/lifecycle.py, shortened: the counting client and each event's verdict on a
real server. The figures of record come from full runs (docs/deployment.md); here the
runs are a few seconds long and prove that the scenario sees what it claims to."""

import sys
from pathlib import Path

import pytest

LOADTESTS = Path(__file__).resolve().parents[2] / "loadtests"
if str(LOADTESTS) not in sys.path:
    sys.path.append(str(LOADTESTS))  # appended: the harness's module names shadow nothing

import lifecycle  # noqa: E402


def _run(event: str, mode: str) -> lifecycle.Outcome:
    plan = lifecycle.Plan(sys.executable, mode, 2, 4, 4.5, event)
    return lifecycle.run(plan, log=lambda line: None)


@pytest.mark.parametrize(("event", "mode"), [("term", "thread"), ("hup", "process")])
def test_an_event_under_load_loses_nothing(event: str, mode: str) -> None:
    outcome = _run(event, mode)
    assert outcome.verdict == "ok", outcome
    assert outcome.answered > 0 and outcome.lost == 0
    if event == "term":
        assert outcome.streams is not None and outcome.streams.websocket_code == 1001
    else:
        assert outcome.replaced == 2 and outcome.workers_seen > 2  # both SIGHUPs took


def test_a_killed_worker_is_seen_as_lost_requests_at_the_kill_only() -> None:
    outcome = _run("kill-worker", "process")
    assert outcome.verdict == "ok", outcome
    assert outcome.replaced == 1 and outcome.exit_code == 0


def test_the_restart_budget_trips_with_one_line_and_a_non_zero_exit() -> None:
    outcome = _run("budget", "process")
    assert outcome.verdict == "ok", outcome
    assert outcome.exit_code not in (0, None)
