"""docs/settings.md is generated from the Config declaration and must stay current."""

from pathlib import Path

from pounce_sync.cli import build_parser
from pounce_sync.settings_doc import render

DOC = Path(__file__).parent.parent / "docs" / "settings.md"


def test_settings_page_is_current() -> None:
    assert DOC.read_text() == render(), "run: python -m pounce_sync.settings_doc > docs/settings.md"


def test_every_flag_on_the_page_exists() -> None:
    parser = build_parser()
    flags = {opt for action in parser._actions for opt in action.option_strings}
    for line in render().splitlines():
        if line.startswith("| `--"):
            flag = line.split("`")[1]
            assert flag in flags, flag
