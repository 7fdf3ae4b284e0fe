"""Every `python bench/NAME.py ...` the documents show names a script that exists and only
options its `--help` lists: a renamed benchmark option fails CI, not a reader.

bench/HISTORY.md is left out on purpose: it records the commands as they were run then.
"""

from __future__ import annotations

import re
import subprocess
import sys
from functools import cache

import pytest

from tests.docs.blocks import REPO

DOCUMENTS = sorted(
    [REPO / "README.md", REPO / "bench" / "README.md", *(REPO / "docs").glob("*.md")]
)
# A command runs to the end of its line, an inline code span or a comment.
_BENCH = re.compile(r"python bench/(\w+)\.py([^`#\n]*)")
_OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


@cache
def help_options(script: str) -> frozenset[str]:
    """The options `python bench/SCRIPT.py --help` lists."""
    result = subprocess.run(
        [sys.executable, f"bench/{script}.py", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    return frozenset(_OPTION.findall(result.stdout))


CASES = [
    (document.relative_to(REPO).as_posix(), script, arguments.strip())
    for document in DOCUMENTS
    for script, arguments in _BENCH.findall(document.read_text(encoding="utf-8"))
]


def test_the_documents_show_every_benchmark() -> None:
    """The scan finds each script's commands: a scan that found nothing would pass anything."""
    shown = {script for _, script, _ in CASES}
    assert shown == {path.stem for path in (REPO / "bench").glob("*_bench.py")}


@pytest.mark.parametrize(
    ("document", "script", "arguments"), CASES, ids=[f"{d}:{s} {a}" for d, s, a in CASES]
)
def test_every_benchmark_command_names_real_options(
    document: str, script: str, arguments: str
) -> None:
    assert (REPO / "bench" / f"{script}.py").exists(), f"{document}: no bench/{script}.py"
    known = help_options(script)
    unknown = [option for option in _OPTION.findall(arguments) if option not in known]
    assert unknown == [], f"{document}: bench/{script}.py has no {unknown} (it has {sorted(known)})"


def test_a_renamed_benchmark_option_would_be_caught() -> None:
    """The check itself: the help lists what the script has, and nothing it lacks."""
    options = help_options("skip_bench")
    assert "--files" in options and "--no-such-option" not in options
