"""What a run did: the files it wrote, the inputs that failed (with the reason) and its remarks."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Report:
    """What a run wrote, what failed (path, reason) and what it noted (path, remark)."""

    written: list[Path] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def summary(self) -> str:
        return f"{len(set(self.written))} written, {len(self.failed)} failed, {self.seconds:.1f} s"

    def add(self, other: Report) -> None:
        """Append what ``other`` wrote, failed and noted (its time is not added)."""
        self.written += other.written
        self.failed += other.failed
        self.notes += other.notes
