"""docs/deploy.md names only commands the project supports: every `waybill ...` command in it
parses with the CLI's own parser and its command answers --help; every `make` target exists;
every file of this repository it names is there."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys

import pytest

from tests.deploy.image import ROOT
from waybill_runtime.cli import build_parser

DOC = ROOT / "docs" / "deploy.md"
_SHELL_OPERATORS = {">", ">>", "|", "&&", ";", "2>", "<"}


def _shell_lines() -> list[str]:
    """The commands of the doc's ```sh blocks, continuation lines joined."""
    lines: list[str] = []
    for block in re.findall(r"```sh\n(.*?)```", DOC.read_text(), flags=re.S):
        lines += block.replace("\\\n", " ").splitlines()
    return [line.strip() for line in lines if line.strip()]


def _waybill_argv(line: str) -> list[str] | None:
    """The arguments after `waybill` in ``line`` (None: it runs no waybill command)."""
    words = shlex.split(line, comments=True)
    while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):
        words.pop(0)  # VAR=value before the program
    if not words or words[0] != "waybill":
        return None
    argv = []
    for word in words[1:]:
        if word in _SHELL_OPERATORS:
            break
        argv.append(word)
    return argv


def commands_in_blocks() -> list[list[str]]:
    found = [argv for line in _shell_lines() if (argv := _waybill_argv(line)) is not None]
    assert found, "docs/deploy.md shows no waybill command"
    return found


def commands_inline() -> list[list[str]]:
    """`waybill ...` in inline code: the command words (options and values left out)."""
    spans = re.findall(r"(?<!`)`(waybill [^`]+)`(?!`)", DOC.read_text())
    return [
        [w for w in shlex.split(span)[1:] if re.fullmatch(r"[a-z][a-z-]*", w)] for span in spans
    ]


def _command_path(argv: list[str]) -> list[str]:
    """The (sub)command words of ``argv``, as the parser knows them."""
    path: list[str] = []
    parser = build_parser()
    for word in argv:
        choices = (
            {
                name: sub
                for action in parser._subparsers._group_actions
                for name, sub in (getattr(action, "choices", None) or {}).items()
            }
            if parser._subparsers is not None
            else {}
        )
        if word not in choices:
            break
        path.append(word)
        parser = choices[word]
    return path


@pytest.mark.parametrize("argv", commands_in_blocks(), ids=shlex.join)
def test_every_waybill_command_shown_parses(argv: list[str]) -> None:
    try:
        build_parser().parse_args(argv)
    except SystemExit as exited:
        raise AssertionError(f"`waybill {shlex.join(argv)}` does not parse") from exited


def test_every_waybill_command_named_answers_help() -> None:
    paths = {tuple(_command_path(argv)) for argv in [*commands_in_blocks(), *commands_inline()]}
    assert all(paths), f"a waybill command in docs/deploy.md names no command: {paths}"
    for path in sorted(paths):
        result = subprocess.run(
            [sys.executable, "-m", "waybill_runtime", *path, "--help"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, f"waybill {' '.join(path)} --help: {result.stderr}"


def test_every_make_target_named_exists() -> None:
    targets = set(re.findall(r"`make ([a-z-]+)`", DOC.read_text()))
    assert targets
    makefile = (ROOT / "Makefile").read_text()
    missing = [t for t in targets if not re.search(rf"^{t}:", makefile, flags=re.M)]
    assert not missing, f"docs/deploy.md names make targets that do not exist: {missing}"


def test_every_file_of_the_repository_named_exists() -> None:
    named = set(
        re.findall(
            r"((?:deploy|docs|shared|tests)/[\w./-]+\.(?:yaml|py|md|in|lock|toml))", DOC.read_text()
        )
    )
    named |= set(re.findall(r"(deploy/docker/Dockerfile)", DOC.read_text()))
    missing = sorted(p for p in named if not (ROOT / p).exists())
    assert not missing, f"docs/deploy.md names files that do not exist: {missing}"
