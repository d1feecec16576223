"""Options ``anime run ae`` adds (click only: imported by the light entry-point module)."""

from __future__ import annotations

from pathlib import Path

import click

from anime_core.budget import MAX_WALK_FRAMES, walk_frames

STRENGTH_OPTION = click.Option(
    ["--strength"],
    type=click.FloatRange(0.0, 1.0),
    default=1.0,
    show_default=True,
    help="Chroma blend: 0 keeps the photo's colours, 1 is the full anime colouring.",
)
INTERPOLATE_OPTION = click.Option(
    ["--interpolate"],
    nargs=2,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="VAE weights: write a latent walk from photo A to photo B (see --steps).",
)
STEPS_OPTION = click.Option(
    ["--steps"], type=click.IntRange(2), default=8, show_default=True, callback=walk_frames,
    help=f"Frames of the --interpolate walk (at most {MAX_WALK_FRAMES:,}).",
)
RUN_OPTIONS = (STRENGTH_OPTION, INTERPOLATE_OPTION, STEPS_OPTION)
