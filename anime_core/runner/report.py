"""What a run did: the files it wrote, skipped and replaced, the inputs that failed (and why) and its remarks."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Report:
    """What a run wrote, what failed (path, reason) and what it noted (path, remark).

    ``skipped``: outputs that were already there (``--skip-existing``), whose inputs were not run;
    ``replaced``: written outputs that existed before the run and were overwritten.
    """

    written: list[Path] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    skipped: list[Path] = field(default_factory=list)
    replaced: list[Path] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def summary(self) -> str:
        """``N written (R replaced), S skipped (output exists), F failed, T s``; no replaced or skipped part when 0."""
        replaced = f" ({len(set(self.replaced))} replaced)" if self.replaced else ""
        skipped = f", {len(set(self.skipped))} skipped (output exists)" if self.skipped else ""
        return f"{len(set(self.written))} written{replaced}{skipped}, {len(self.failed)} failed, {self.seconds:.1f} s"

    def add(self, other: Report) -> None:
        """Append what ``other`` wrote, skipped, replaced, failed and noted (its time is not added)."""
        self.written += other.written
        self.failed += other.failed
        self.notes += other.notes
        self.skipped += other.skipped
        self.replaced += other.replaced


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run, raised once what was computed is written: ``report`` says what was written,
    ``remaining`` lists the inputs not processed. A ``KeyboardInterrupt``, so callers that stop on one still do."""

    def __init__(self, report: Report, remaining: list[Path]) -> None:
        super().__init__(f"interrupted: {len(set(report.written))} written, {len(remaining)} remain")
        self.report, self.remaining = report, remaining
