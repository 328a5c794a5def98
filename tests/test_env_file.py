"""The dotenv reader behind --env-file: one row a case, in-process (parse_env is sans-I/O).

Where python-dotenv (what uvicorn uses) reads a line the same way, the expected
value is what it gives; the differences are rows of their own, named so.
"""

from pathlib import Path

import pytest

from pounce_sync.sources.env_file import EnvFileError, load_env_file, parse_env

# (file text, the variables it defines)
PARSED: list[tuple[str, dict[str, str]]] = [
    ("A=1\n", {"A": "1"}),
    ("A=1", {"A": "1"}),  # no newline at the end
    ("A=1\r\nB=2\r\n", {"A": "1", "B": "2"}),
    ("\ufeffA=1\n", {"A": "1"}),  # a byte-order mark
    ("# comment\n\n   \nA=1\n  # indented comment\n", {"A": "1"}),
    ("export A=1\n", {"A": "1"}),
    ("export\tA=1\n", {"A": "1"}),
    ("export=1\n", {"export": "1"}),
    ("  A = spaced out  \n", {"A": "spaced out"}),
    ("A=value # a comment\n", {"A": "value"}),
    ("A=a#b\n", {"A": "a#b"}),  # no blank before '#': part of the value
    ("A=#x\n", {"A": "#x"}),
    ("A= # only a comment\n", {"A": ""}),
    ("A=\n", {"A": ""}),
    ("A=\nB=2\n", {"A": "", "B": "2"}),
    ("A='single # quoted'\n", {"A": "single # quoted"}),
    ("A='no $\\n escapes'\n", {"A": "no $\\n escapes"}),
    ("A='it\\'s'\n", {"A": "it's"}),
    ('A="double"\n', {"A": "double"}),
    ('A="tab\\there\\nnew line"\n', {"A": "tab\there\nnew line"}),
    ('A="quote \\" backslash \\\\ single \\\'"\n', {"A": "quote \" backslash \\ single '"}),
    ('A="unknown \\q stays"\n', {"A": "unknown \\q stays"}),
    ('A="multi\nline"\nB=2\n', {"A": "multi\nline", "B": "2"}),
    ("A='multi\nline'\n", {"A": "multi\nline"}),
    ('A="x" # comment\n', {"A": "x"}),
    ("A=1\nA=2\n", {"A": "2"}),  # the last one wins
    ("A.B-C_d=1\n", {"A.B-C_d": "1"}),
    ("postgres_URL=postgres://u:p@h/db?x=1\n", {"postgres_URL": "postgres://u:p@h/db?x=1"}),
    # ${VAR} and ${VAR:-default}: earlier lines, then the environment (HOME_ here).
    ("A=1\nB=${A}-x\n", {"A": "1", "B": "1-x"}),
    ('A=1\nB="${A}\\n"\n', {"A": "1", "B": "1\n"}),
    ("B=${HOME_}/app\n", {"B": "/home/u/app"}),
    ("B=${NOPE:-fallback}\n", {"B": "fallback"}),
    ("B=${NOPE}\n", {"B": ""}),
    ("B=$NOT_BRACED\n", {"B": "$NOT_BRACED"}),
    # Differs from python-dotenv, which expands single-quoted values too.
    ("A=1\nB='${A}'\n", {"A": "1", "B": "${A}"}),
]

ENVIRON = {"HOME_": "/home/u"}


@pytest.mark.parametrize(("text", "expected"), PARSED, ids=[repr(t) for t, _ in PARSED])
def test_parse(text: str, expected: dict[str, str]) -> None:
    assert parse_env(text, ".env", ENVIRON) == expected


def test_the_environment_wins_in_expansion_as_it_does_for_values() -> None:
    """python-dotenv without override: the value the process will see is the environment's."""
    assert parse_env("A=file\nB=${A}\n", ".env", {"A": "env"}) == {"A": "file", "B": "env"}


# (file text, the whole error message)
MALFORMED: list[tuple[str, str]] = [
    ("A=1\nnot an assignment\n", "app.env:2: expected NAME=VALUE, got 'not an assignment'"),
    ("A=1\nJUST_A_NAME\n", "app.env:2: expected NAME=VALUE, got 'JUST_A_NAME'"),
    ("export A\n", "app.env:1: expected NAME=VALUE, got 'export A'"),
    ("1A=x\n", "app.env:1: expected NAME=VALUE, got '1A=x'"),
    ("=x\n", "app.env:1: expected NAME=VALUE, got '=x'"),
    ("\n\nA='never closed\n", "app.env:3: ' is never closed"),
    ('A="x"\nB="never closed\n', 'app.env:2: " is never closed'),
    ('A="x" trailing\n', "app.env:1: unexpected 'trailing' after the closing \""),
    ('A="multi\nline"\nbad\n', "app.env:3: expected NAME=VALUE, got 'bad'"),
]


@pytest.mark.parametrize(("text", "message"), MALFORMED, ids=[repr(t) for t, _ in MALFORMED])
def test_malformed_line_is_one_line_error_with_file_and_line(text: str, message: str) -> None:
    with pytest.raises(EnvFileError) as caught:
        parse_env(text, "app.env", {})
    assert str(caught.value) == message


def test_load_sets_only_what_the_environment_lacks(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text("KEPT=file\nADDED=file\n")
    environ = {"KEPT": "env"}
    assert load_env_file(str(path), environ) == {"KEPT": "file", "ADDED": "file"}
    assert environ == {"KEPT": "env", "ADDED": "file"}


def test_load_of_a_missing_file_names_it(tmp_path: Path) -> None:
    missing = tmp_path / "missing.env"
    with pytest.raises(EnvFileError) as caught:
        load_env_file(str(missing), {})
    assert (
        str(caught.value)
        == f"--env-file {str(missing)!r}: cannot read it: No such file or directory"
    )
