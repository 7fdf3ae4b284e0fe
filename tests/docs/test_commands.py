"""Every command the documents show exists as written: docs drift fails CI, not a reader.

Each `agent-loader ...` in README.md, docs/, bench/README.md and deploy/ (code blocks,
inline code and unit files) must name real subcommands and options of the CLI; each
`dbt ... --selector NAME` a selector of selectors.yml and each `--target NAME` an output of
the shipped profile. What the commands do is tested elsewhere: here, that they parse.
"""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
import yaml

from loader.cli import main
from loader.ingest.commands import load

REPO = Path(__file__).resolve().parents[2]
DOCUMENTS = sorted(
    [
        REPO / "README.md",
        REPO / "bench" / "README.md",
        *(REPO / "docs").glob("*.md"),
        *(REPO / "deploy").rglob("*.service"),
    ]
)
# A command runs to the end of its line, an inline code span, a comment or a shell operator.
_LOADER = re.compile(r"agent-loader((?:[ \t]+(?:\\\n)?[^\s`#&>;]+)*)")
_DBT = re.compile(r"(?<![\w-])dbt ((?:build|run|test|ls|seed|snapshot|docs)[^`#\n&;]*)")
_OPTION = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*|-[a-z])\b")


def _loader_commands(text: str) -> list[str]:
    commands = []
    for match in _LOADER.finditer(text):
        words = []
        for word in match.group(1).replace("\\\n", " ").split():
            bare = word.rstrip(":),.")
            words.append(bare)
            if bare != word:  # prose around a command name: "agent-loader serve: the ..."
                break
        if words:
            commands.append(" ".join(words))
    return commands


def _resolved(words: list[str]) -> tuple[click.Command, list[str]]:
    """The subcommand the leading words name, and the words after it."""
    command: click.Command = main
    while words and isinstance(command, click.Group) and words[0] in command.commands:
        command, words = command.commands[words[0]], words[1:]
    return command, words


def _options(command: click.Command) -> set[str]:
    names = {"--help", "-h"}
    for parameter in command.params:
        names.update(getattr(parameter, "opts", []))
        names.update(getattr(parameter, "secondary_opts", []))
    return names


CASES = [
    (document, command)
    for document in DOCUMENTS
    for command in _loader_commands(document.read_text(encoding="utf-8"))
]


def test_the_documents_show_agent_loader_commands() -> None:
    """The scan finds the README's quick start: a scan that finds nothing would pass anything."""
    assert ("README.md", "demo") in {(d.name, c) for d, c in CASES}
    assert len(CASES) > 40


def _problems(command: str) -> list[str]:
    """What is wrong with `agent-loader COMMAND` as the CLI parses it (nothing: [])."""
    resolved, rest = _resolved(command.split())
    if resolved is main and rest and not (rest[0].startswith("-") or rest[0].isupper()):
        return [f"no subcommand {rest[0]}"]
    known = _options(resolved)
    return [
        f"{resolved.name} has no option {option} (it has {', '.join(sorted(known))})"
        for option in _OPTION.findall(" ".join(rest))
        if option not in known
    ]


@pytest.mark.parametrize(
    ("document", "command"), CASES, ids=[f"{d.name}:{c[:40]}" for d, c in CASES]
)
def test_every_agent_loader_command_in_the_docs_names_real_options(
    document: Path, command: str
) -> None:
    assert _problems(command) == [], f"{document.name}: `agent-loader {command}`"


def test_every_dbt_selector_and_target_in_the_docs_exists() -> None:
    selectors = {
        s["name"] for s in yaml.safe_load((REPO / "selectors.yml").read_text())["selectors"]
    }
    profile = yaml.safe_load((REPO / "profiles.yml").read_text())
    targets = set(next(iter(profile.values()))["outputs"])
    seen = 0
    for document in DOCUMENTS:
        for match in _DBT.finditer(document.read_text(encoding="utf-8")):
            seen += 1
            for selector in re.findall(r"--selector[ =]([a-z_][^\s%]*)", match.group(1)):
                assert selector in selectors, f"{document.name}: no selector {selector}"
            for target in re.findall(r"--target[ =](\S+)", match.group(1)):
                assert target in targets, f"{document.name}: no target {target}"
    assert seen > 5


def test_a_renamed_option_or_subcommand_would_be_caught() -> None:
    """The check itself: what the CLI lacks is reported, what it has is not."""
    text = "run `agent-loader load --follow /data --no-such-option` or `agent-loader lode x`"
    assert [_problems(command) for command in _loader_commands(text)] == [
        [f"load has no option --no-such-option (it has {', '.join(sorted(_options(load)))})"],
        ["no subcommand lode"],
    ]
    assert _problems("grant-tenant LOGIN TENANT") == []
