"""The package's shape, as the style asks it: short functions, a library without click,
exit codes given by the command line alone."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from loader import console, errors

PACKAGE = Path(__file__).resolve().parents[2] / "loader"
MAX_FUNCTION_LINES = 80
COMMAND_MODULES = {"cli.py", "console.py", "commands.py"}


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def long_functions(source: str, limit: int = MAX_FUNCTION_LINES) -> list[tuple[str, int]]:
    """(name, lines) of each function over `limit` lines (its `def` to its last line,
    decorators left out) without `# long: <reason>` on its `def` line."""
    lines = source.splitlines()
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            reason = lines[node.lineno - 1].partition("# long:")[2].strip()
            if length > limit and not reason:
                found.append((node.name, length))
    return found


def _function(def_line: str, body_lines: int) -> str:
    return def_line + "\n" + "".join(f"    x{i} = {i}\n" for i in range(body_lines))


def test_long_functions_finds_one_without_a_reason_only():
    assert long_functions(_function("def short():", 79)) == []  # 80 lines
    assert long_functions(_function("def tall():", 80)) == [("tall", 81)]
    assert long_functions(_function("def tall():  # long: a table of cases", 80)) == []
    assert long_functions(_function("def tall():  # long:", 80)) == [("tall", 81)]  # no reason


def test_no_function_in_the_package_is_over_80_lines_without_a_reason():
    found = {
        f"{path.relative_to(PACKAGE.parent)}: {name} ({length} lines)"
        for path in _modules()
        for name, length in long_functions(path.read_text())
    }
    assert found == set()


def test_only_the_command_modules_import_click():
    importing = set()
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            if any(name == "click" or name.startswith("click.") for name in names):
                importing.add(path.name)
    assert importing  # the command modules do
    assert importing <= COMMAND_MODULES


def test_every_library_error_has_a_documented_exit_code():
    kinds = set(errors.LoaderError.__subclasses__())
    assert kinds, "loader/errors.py defines the library's errors"
    assert kinds <= set(console.EXIT_CODES)
    operating = (PACKAGE.parent / "docs" / "operating.md").read_text()
    for code in set(console.EXIT_CODES.values()):
        assert f"\n| {code} |" in operating


def test_console_does_not_load_the_embedded_server():
    probe = "import sys, loader.console; print('loader.devtools.embedded' in sys.modules)"
    shown = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert shown.stdout.strip() == "False", shown.stderr
