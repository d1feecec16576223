"""Fenced code blocks of a Markdown file, with the HTML comments just above each (the docs tests' markers)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

FENCE = re.compile(r"^(`{3,}|~{3,})\s*([\w+-]*)")
COMMENT = re.compile(r"^<!--\s*(.*?)\s*-->$")


@dataclass
class Block:
    """One fenced block: its info string (``bash``), body lines, first body line number, and the
    HTML comments on the lines right above its opening fence (blank lines between are allowed)."""

    lang: str
    lines: list[str]
    lineno: int
    heading: str
    comments: list[str] = field(default_factory=list)


def fenced_blocks(path: Path) -> list[Block]:
    """Every fenced block of ``path`` in order; an unclosed fence is an error, not a silent end of file."""
    blocks: list[Block] = []
    comments: list[str] = []
    heading = ""
    current: Block | None = None
    closer = ""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if current is not None:
            if line.strip().startswith(closer) and not line.strip().strip(closer[0]):
                blocks.append(current)
                current = None
            else:
                current.lines.append(line)
            continue
        stripped = line.strip()
        if match := FENCE.match(stripped):
            closer = match.group(1)
            current = Block(match.group(2), [], number + 1, heading, comments)
            comments = []
        elif match := COMMENT.match(stripped):
            comments.append(match.group(1))
        elif stripped.startswith("#"):
            heading, comments = stripped.lstrip("#").strip(), []
        elif stripped:
            comments = []
    if current is not None:
        raise AssertionError(f"{path}: the fence opened on line {current.lineno - 1} is never closed")
    return blocks
