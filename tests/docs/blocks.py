"""Fenced code blocks of the documents, for the tests that run them as written."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
_HEADING = re.compile(r"^(#{1,6}) (.*)$", re.MULTILINE)


def code_blocks(document: Path, language: str, heading: str | None = None) -> list[str]:
    """The bodies of the ```LANGUAGE blocks of `document`, in order; with `heading`, only
    those in that section (from the heading to the next heading of its level or above)."""
    text = document.read_text(encoding="utf-8")
    if heading is not None:
        text = section(text, heading)
    return [body for lang, body in _FENCE.findall(text) if lang == language]


def section(text: str, heading: str) -> str:
    """The text under `heading` (its exact title, without the #s), up to the next heading
    of the same level or above. Headings inside code blocks are not headings."""
    fenced = [(m.start(), m.end()) for m in _FENCE.finditer(text)]
    headings = [
        m
        for m in _HEADING.finditer(text)
        if not any(start <= m.start() < end for start, end in fenced)
    ]
    for index, match in enumerate(headings):
        if match.group(2).strip() == heading:
            level = len(match.group(1))
            end = next(
                (m.start() for m in headings[index + 1 :] if len(m.group(1)) <= level),
                len(text),
            )
            return text[match.end() : end]
    raise LookupError(f"no heading {heading!r}")
