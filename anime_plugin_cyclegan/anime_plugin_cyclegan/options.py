"""Options ``anime run cyclegan`` adds (click only: imported by the light entry-point module)."""

from __future__ import annotations

import click

#: --direction value -> the part of a cyclegan weights file that runs
DIRECTIONS = {"photo2anime": "generator", "anime2photo": "generator_inverse"}

DIRECTION_OPTION = click.Option(
    ["--direction"],
    type=click.Choice(list(DIRECTIONS)),
    default="photo2anime",
    show_default=True,
    help="photo2anime runs G, anime2photo runs the inverse generator F of the same weights file.",
)
RUN_OPTIONS = (DIRECTION_OPTION,)
