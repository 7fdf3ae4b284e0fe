"""Every command's --help is accurate: it lists every option, and docs/operating.md names it."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from loader.cli import main
from tests.conftest import REPO


def commands(group: click.Group, prefix: tuple[str, ...] = ()):
    for name, command in sorted(group.commands.items()):
        yield (*prefix, name), command
        if isinstance(command, click.Group):
            yield from commands(command, (*prefix, name))


ALL = list(commands(main))


@pytest.mark.parametrize(("path", "command"), ALL, ids=[" ".join(p) for p, _ in ALL])
def test_help_lists_every_option_and_readme_documents_the_command(path, command):
    result = CliRunner().invoke(main, [*path, "--help"], prog_name="agent-loader")
    assert result.exit_code == 0
    assert result.output.startswith(f"Usage: agent-loader {' '.join(path)} ")
    words = " ".join(result.output.split())
    assert command.help and " ".join(command.help.split("\n")[0].split()) in words
    for parameter in command.params:
        if isinstance(parameter, click.Option):
            assert parameter.opts[0] in result.output, parameter.opts[0]
    assert f"agent-loader {' '.join(path)}" in (REPO / "docs" / "operating.md").read_text()


def test_every_command_that_prints_a_result_takes_json():
    """docs/operating.md: `serve` (a server, logging to stderr) is the one exception."""
    without = [
        " ".join(path)
        for path, command in ALL
        if not isinstance(command, click.Group)
        and "--json" not in [opt for param in command.params for opt in param.opts]
    ]
    assert without == ["serve"]
