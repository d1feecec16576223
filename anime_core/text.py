"""Text from outside (file names, plugin metadata, names inside files) made safe to print on a terminal.

A file name or a plugin description may hold escape sequences (``\\x1b[31m``, a cursor move, a title
change) or a newline followed by a forged ``error:`` line. :func:`printable` shows such characters
as Python escapes instead, so what reaches the terminal is exactly one visible line of plain text.
It is applied where text is printed (the CLI error line, ``anime list``/``info``/``plugins``, the
per-file lines of ``anime run``, training warnings), not where it is stored: JSON output escapes
control characters by itself. :func:`table` lays rows out in plain-text columns (``anime list``, ``anime info``,
``anime eval``).
"""

from __future__ import annotations

import re

# C0 and C1 controls and DEL (ESC, CR, LF, TAB, BS, CSI ...), the Unicode line and paragraph separators,
# bidirectional overrides and isolates (text that displays in another order than it reads), and lone
# surrogates (undecodable bytes of a file name: printing one would raise UnicodeEncodeError)
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    ch = match.group()
    code = ord(ch)
    if ch in _NAMED:
        return _NAMED[ch]
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8, kept by the file-system decoding (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: object) -> str:
    """``str(text)`` with every control character escaped: ESC as ``\\x1b``, a newline as ``\\n``.

    Everything else, non-ASCII letters included, is kept as it is.
    """
    return _UNSAFE.sub(_escape, str(text))


def table(rows: list[list[str]], header: list[str]) -> str:
    """Left-aligned plain-text columns."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths)).rstrip()]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines)
