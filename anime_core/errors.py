"""Error types that the CLI turns into one sentence and an exit code (DESIGN.md "CLI").

Exit codes: 0 success, 1 some inputs failed or a run failed, 2 usage or config error,
3 weights unavailable.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class AnimeError(Exception):
    """Base class: a user-facing error whose message is one actionable sentence."""

    exit_code = 1


class UsageError(AnimeError):
    """Bad command-line usage, unknown names, bad options (exit 2)."""

    exit_code = 2


class ConfigError(UsageError):
    """Bad config file or key=value override (exit 2)."""


class PluginError(UsageError):
    """A plugin registered something invalid or clashing (exit 2)."""


class WeightsUnavailable(AnimeError):
    """Weights cannot be downloaded, verified or recognised (exit 3)."""

    exit_code = 3


class TrainingError(AnimeError):
    """A training run stopped (NaN loss, interrupted): exit 1, the message says how to go on."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return ``"; did you mean 'x'?"`` for the closest choice, or a list of choices if none is close."""
    choices = sorted(set(choices))
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
    if close:
        return f"; did you mean '{close[0]}'?"
    if not choices:
        return "; none are available"
    shown = ", ".join(choices[:12]) + (", ..." if len(choices) > 12 else "")
    return f"; choose one of: {shown}"


def unknown(what: str, name: str, choices: Iterable[str]) -> UsageError:
    """A ``UsageError`` for an unknown name, with the closest match."""
    return UsageError(f"unknown {what} '{name}'{did_you_mean(name, choices)}")
