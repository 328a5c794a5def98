"""loadtests/cost_budget.py runs the real sync path: checked by what it serves, not by time."""

import json
import sys
from pathlib import Path

import pytest

LOADTESTS = Path(__file__).resolve().parents[2] / "loadtests"
if str(LOADTESTS) not in sys.path:
    sys.path.append(str(LOADTESTS))  # appended: the harness's module names shadow nothing

import cost_budget  # noqa: E402


@pytest.mark.parametrize("kind", cost_budget.HEADS)
def test_whole_stage_serves_every_request_it_times(kind: str) -> None:
    rig = cost_budget.Rig(kind, 5)
    try:
        samples = cost_budget.whole(rig, 5)
        served = rig.worker.requests_served
    finally:
        rig.close()
    assert len(samples) == 5 and served == 5


def test_browser_heads_are_new_requests_and_hello_repeats_one() -> None:
    browser, hello = cost_budget.Rig("browser", 3), cost_budget.Rig("hello", 3)
    try:
        assert len({request.target for request in browser.requests}) == 3
        assert len(set(hello.heads)) == 1 and len(set(hello.requests)) == 1
    finally:
        browser.close()
        hello.close()


def test_every_stage_is_reported_for_both_heads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "budget.json"
    assert cost_budget.main(["--calls", "100", "--json", str(out)]) == 0
    figures = json.loads(out.read_text())["us"]
    stages = (*cost_budget.STAGES, cost_budget.WHOLE)
    assert set(figures) == {cost_budget._label(stage) for stage in stages}
    assert all(set(by_head) == set(cost_budget.HEADS) for by_head in figures.values())
    assert all(us >= 0 for by_head in figures.values() for us in by_head.values())
    printed = capsys.readouterr().out
    for name in ("poll", "read", "parse", "scope", "app", "park", "sum", "whole"):
        assert f"\n{name} " in printed
