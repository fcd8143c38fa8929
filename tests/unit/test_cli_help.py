"""The command line's first screen: --version, help and defaults of every option, usage errors.

Parse-level tests through ``main``: nothing here opens a store or loads a model."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from dataclasses import fields
from importlib.metadata import version

import pytest

from qa_system.cli import build_parser, main
from qa_system.config import Settings
from qa_system.ingest import SUPPORTED_EXTENSIONS


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``main(argv)``'s exit code (argparse's SystemExit included), stdout and stderr."""
    try:
        code = main(list(argv))
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def subparsers(parser: argparse.ArgumentParser,
               name: str = "qa-system") -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every parser under ``parser`` (itself included), with its command line name."""
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from subparsers(sub, f"{name} {sub_name}")


def options(parser: argparse.ArgumentParser) -> Iterator[argparse.Action]:
    for action in parser._actions:
        if not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            yield action


def test_version_is_the_installed_one(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.strip() == f"qa-system {version('qa_system')}"


def test_top_level_help_is_for_users(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0
    assert "Answer questions from your own documents" in out
    # the typical sequence, as commands to copy
    assert "qa-system ingest docs/ --store .qa_store" in out and "qa-system ask " in out
    assert out.index("qa-system ingest docs/") < out.index("qa-system ask ")
    assert "The only place" not in out  # the module docstring is for developers
    for command in ("ingest", "ask", "delete", "check", "stats", "serve"):
        assert f"\n    {command} " in out


def test_every_option_of_every_command_has_help() -> None:
    missing = [f"{name} {action.option_strings or action.dest}"
               for name, parser in subparsers(build_parser()) for action in options(parser)
               if not (action.help or "").strip() or action.help == argparse.SUPPRESS]
    assert missing == []


def test_every_option_with_a_default_says_it() -> None:
    """A default worth showing (not None, not an off flag, not empty) is in the option's help."""
    silent = []
    for name, parser in subparsers(build_parser()):
        formatter = parser._get_formatter()
        for action in options(parser):
            if action.default in (None, [], argparse.SUPPRESS) or isinstance(action.default, bool):
                continue
            if not action.option_strings and action.nargs not in ("?", "*"):
                continue  # a required positional: its default is never used
            if "default" not in formatter._expand_help(action):
                silent.append(f"{name} {action.option_strings}")
    assert silent == []


def test_settings_named_as_defaults_exist() -> None:
    """A default said to come from $QA_SYSTEM_X names a setting that load_settings really reads."""
    settings = {f"QA_SYSTEM_{f.name.upper()}" for f in fields(Settings)}
    named = {m for _, parser in subparsers(build_parser()) for action in options(parser)
             for m in re.findall(r"\$(QA_SYSTEM_\w+)", action.help or "")}
    assert {"QA_SYSTEM_STORE_DIR", "QA_SYSTEM_TOP_K_RETRIEVER", "QA_SYSTEM_LEXICAL_WEIGHT"} <= named
    assert named <= settings


@pytest.mark.parametrize(("command", "option", "expected"), [
    ("ingest", "--csv-text-column", "(default: text)"),
    ("ask", "--top-k-retriever", "$QA_SYSTEM_TOP_K_RETRIEVER or 10"),
    ("ask", "--top-k-reader", "$QA_SYSTEM_TOP_K_READER or 3"),
    ("ask", "--batch-size", "(default: 16)"),
    ("ask", "--store", "$QA_SYSTEM_STORE_DIR or .qa_store"),
    ("ask", "--lexical-weight", "$QA_SYSTEM_LEXICAL_WEIGHT or 0.3"),
    ("serve", "--log-level", "(default: info)"),
    ("train-reader", "--seed", "(default: 13)"),
])
def test_defaults_are_shown_and_say_where_they_come_from(capsys: pytest.CaptureFixture[str], command: str,
                                                         option: str, expected: str) -> None:
    code, out, _ = run(capsys, *command.split(), "--help")
    assert code == 0
    joined = " ".join(out.split())  # argparse wraps lines
    entry = joined[joined.index(f" {option} "):]
    assert expected in entry[:300], entry[:300]


@pytest.mark.parametrize("flag", ["--json", "--no-progress", "--strict"])
def test_ingest_flags_say_what_they_do(capsys: pytest.CaptureFixture[str], flag: str) -> None:
    code, out, _ = run(capsys, "ingest", "--help")
    line = next(line for line in out.splitlines() if line.strip().startswith(flag))
    assert code == 0 and len(line.split()) > 2


def test_ingest_help_lists_the_supported_file_types(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "ingest", "--help")
    joined = " ".join(out.split())
    assert code == 0
    assert ", ".join(sorted(SUPPORTED_EXTENSIONS)) in joined


def test_delete_without_id_or_source_is_a_usage_error(capsys: pytest.CaptureFixture[str], tmp_path: object) -> None:
    code, out, err = run(capsys, "delete", "--store", str(tmp_path))
    assert code == 2 and out == ""
    assert err.startswith("usage: qa-system delete")
    assert "give at least one of --id or --source" in err


def test_delete_with_an_id_parses() -> None:
    args = build_parser().parse_args(["delete", "--id", "abc", "--source", "x.md", "--id", "def"])
    assert (args.id, args.source) == (["abc", "def"], ["x.md"])


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys)
    assert code == 2 and "usage: qa-system" in err and "COMMAND" in err


def test_an_unknown_option_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "ask", "why?", "--no-such-option")
    assert code == 2 and "unrecognized arguments" in err
