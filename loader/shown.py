"""Text safe for one line of a log, a terminal or the ledger: the one escaping rule.

A file name is data a collector chooses: it can hold bytes that are not UTF-8 (a Latin-1
`caf\\xe9.ndjson`), a newline that forges a log line, an ESC that drives the terminal, a
line or paragraph separator (U+2028, U+2029, U+0085) that splits a line in a log viewer, or
a bidi override that reorders what is shown. `load`, `validate`, `history`, every log line
and `raw.load_batches.path` show such a name through `shown_path`, so it reads the same
everywhere and stores as valid text.
"""

from __future__ import annotations

import os
import re

# Unicode's control (Cc), format (Cf), line (Zl) and paragraph (Zp) separator characters,
# as of Unicode 15 (tests/loader/test_limits.py checks it against `unicodedata`): what a
# reader cannot see or what reorders what is shown. The contract refuses them in ids and
# names; `shown` escapes them.
_HIDDEN_CLASS = (
    "\x00-\x1f\x7f-\x9f\xad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2"
    "\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb"
    "\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    "\U000e0001\U000e0020-\U000e007f"
)
HIDDEN_CHARACTER = re.compile(f"[{_HIDDEN_CLASS}]")
# ... and, in a file name, surrogates: the bytes os.fsdecode could not decode.
_UNPRINTABLE = re.compile(f"[{_HIDDEN_CLASS}\ud800-\udfff]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:  # a byte os.fsdecode could not decode: shown as that byte
        return f"\\x{code - 0xDC00:02x}"
    return match.group().encode("unicode_escape").decode()  # \n, \x1b, \x85, \u2028


def shown(text: str) -> str:
    """`text` with every unprintable character above as an escape (`\\x1b`, `\\u2028`, and
    an undecodable byte of a file name as `\\xe9`): one line, valid UTF-8."""
    return _UNPRINTABLE.sub(_escape, text)


def shown_path(path: str | os.PathLike[str]) -> str:
    """A path as `load`, `validate`, `history`, the log and the ledger show and store it."""
    return shown(os.fspath(path))
