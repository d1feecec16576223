"""Options ``anime run dcgan`` adds (click only: imported by the light entry-point module)."""

from __future__ import annotations

import click

from anime_core.budget import MAX_WALK_FRAMES, walk_frames

RUN_OPTIONS = (
    click.Option(["--class", "class_name"], default=None,
                 help="Class to generate (class-conditional weights; a folder name from training)."),
    click.Option(["--interpolate"], type=click.IntRange(2), default=None, callback=walk_frames,
                 help="Write a latent walk of N images between --seed and --seed+1 instead of a grid "
                      f"(at most {MAX_WALK_FRAMES:,})."),
    click.Option(["--truncation"], type=click.FloatRange(min=0, min_open=True), default=None,
                 help="Truncated sampling: redraw latent entries with |z| > T (smaller T, less spread)."),
)
